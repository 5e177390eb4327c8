//! One rate budget for several servers of one key, through a real Redis (`shared_budget`).

mod common;

use common::redis::Redis;
use common::*;
use serde_json::json;
use sonoran::{Call, Client, Config, Kind, Rate, RateLimits, SharedBudget};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn shared_config(emu: &Emulator, redis: &Redis, rate: Rate) -> Config {
    let mut cfg = config_for(emu);
    cfg.rate_limits = RateLimits { global: Some(rate), per_type: HashMap::new() };
    cfg.shared_budget = Some(SharedBudget::new(redis.url()));
    cfg
}

#[test]
fn two_clients_of_one_key_share_one_budget() {
    let redis = Redis::start();
    let limit = RateLimit { burst: 4, per_second: 20.0, retry_after: RetryAfter::Seconds, tolerance_ms: 0 };
    let emu = start_with(Faults { rate_limit: Some(limit), ..Faults::default() });
    let rate = Rate { per_second: 20.0, burst: 4 };
    let a = Client::new(shared_config(&emu, &redis, rate)).unwrap();
    let b = Client::new(shared_config(&emu, &redis, rate)).unwrap();
    let (ca, cb) = (Collector::default(), Collector::default());
    let started = Instant::now();
    let n = 60;
    for _ in 0..n {
        let call = || {
            Call::for_api(sonoran::ApiVersion::Legacy, Kind::CheckApiId, json!({"apiId": "11000010499F33C"})).unwrap()
        };
        a.submit(call(), ca.handler()).unwrap();
        b.submit(call(), cb.handler()).unwrap();
    }
    poll_until(&a, &ca, n, Duration::from_secs(30));
    poll_until(&b, &cb, n, Duration::from_secs(30));
    let elapsed = started.elapsed();
    let counts = emu.counts();
    eprintln!(
        "{} calls in {elapsed:?}: {counts:?}\n{:?}\n{:?}",
        2 * n,
        a.stats().shared_budget,
        b.stats().shared_budget
    );
    assert_eq!(counts.rate_limited, 0, "no 429: the two clients paced together");
    assert_eq!(a.stats().shared_budget["mode"], "shared");
    // 120 calls at 20/s with bursts of 3 usable: about 6 s; alone, each would take 3 s.
    assert!(elapsed >= Duration::from_secs(5), "{elapsed:?}: the clients shared one budget");
    let keys = redis.cli(&["--scan", "--pattern", "*"]);
    assert!(!keys.contains(&emu.api_key()) && keys.starts_with("sonoran:{"), "{keys}");
}
