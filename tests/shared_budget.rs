//! One rate budget for several servers of one key, through a real Redis (`shared_budget`):
//! pacing together, a 429 pausing the others, a fatal answer stopping them and `resume()` on one
//! lifting it for all, Redis unreachable from the start, the configuration's refusals, and
//! nothing of the API key in Redis. Three servers in three processes: tests/shared_budget_processes.rs.

mod common;

use common::emulator::Fixture;
use common::redis::Redis;
use common::*;
use serde_json::json;
use sonoran::{ApiVersion, Call, Client, Config, ErrorCode, Kind, Level, Rate, RateLimits, RefusalKind, SharedBudget};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

// ---- Pauses, stops, Redis away, configuration, what Redis holds ----

/// `cfg` sharing its budget through `redis` (defaults otherwise).
fn sharing(mut cfg: Config, redis: &Redis) -> Config {
    cfg.shared_budget = Some(SharedBudget::new(redis.url()));
    cfg
}

fn check_call(api: ApiVersion) -> Call {
    Call::for_api(api, Kind::CheckApiId, json!({"apiId": "11000010499F33C"})).unwrap()
}

/// Every line the client's log hook receives.
fn log_of(client: &Client) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    client.set_log_hook(Some(Box::new(move |_: Level, m: &str| l.lock().unwrap().push(m.to_string()))));
    lines
}

fn logged(lines: &Arc<Mutex<Vec<String>>>, needle: &str) -> usize {
    lines.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
}

/// Wait (up to 5 s) until Redis holds a key matching `pattern` (`present`) or none (`!present`).
fn wait_for_keys(redis: &Redis, pattern: &str, present: bool) {
    let start = Instant::now();
    while redis.cli(&["--scan", "--pattern", pattern]).trim().is_empty() == present {
        assert!(start.elapsed() < Duration::from_secs(5), "no change of {pattern} in Redis (present: {present})");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Poll two clients until each has its one result; when each completed.
fn both_done(b: (&Client, &Collector), c: (&Client, &Collector), limit: Duration) -> (Instant, Instant) {
    let start = Instant::now();
    let (mut tb, mut tc) = (None, None);
    while tb.is_none() || tc.is_none() {
        assert!(start.elapsed() < limit, "B and C not both done after {limit:?}");
        b.0.poll(0, |_| {});
        c.0.poll(0, |_| {});
        if tb.is_none() && b.1.len() == 1 {
            tb = Some(Instant::now());
        }
        if tc.is_none() && c.1.len() == 1 {
            tc = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (tb.unwrap(), tc.unwrap())
}

/// A 429 that one server gets (Retry-After: 3) pauses that route on the other servers of the
/// key: their next request on it waits the pause out before it is sent, and their log says why.
#[test]
fn a_429_on_one_server_pauses_the_route_on_the_other_two() {
    for api in APIS {
        let redis = Redis::start();
        let always_429 = RateLimit { burst: 0, per_second: 0.0, retry_after: RetryAfter::Fixed(3), tolerance_ms: 0 };
        let emu_a = start_with(Faults { rate_limit: Some(always_429), ..Faults::default() });
        let emu_b = start();
        let mut cfg_a = sharing(config_for_api(&emu_a, api), &redis);
        cfg_a.max_attempts = 1;
        let a = Client::new(cfg_a).unwrap();
        let b = Client::new(sharing(config_for_api(&emu_b, api), &redis)).unwrap();
        let c = Client::new(sharing(config_for_api(&emu_b, api), &redis)).unwrap();
        let (log_b, log_c) = (log_of(&b), log_of(&c));

        let first = run_one(&a, check_call(api));
        let limited_at = Instant::now();
        assert_eq!(first.code(), Some(ErrorCode::RateLimited), "{api:?}: {}", first.to_json());
        wait_for_keys(&redis, "*:pause:*", true);
        let (cb, cc) = (Collector::default(), Collector::default());
        b.submit(check_call(api), cb.handler()).unwrap();
        c.submit(check_call(api), cc.handler()).unwrap();
        std::thread::sleep((limited_at + Duration::from_secs(2)).saturating_duration_since(Instant::now()));
        assert_eq!(emu_b.counts().received, 0, "{api:?}: B or C sent during the pause");
        let (tb, tc) = both_done((&b, &cb), (&c, &cc), Duration::from_secs(15));
        let (wb, wc) = (tb - limited_at, tc - limited_at);
        eprintln!("{api:?}: B completed {wb:?} and C {wc:?} after A's 429 (Retry-After: 3)");
        for (who, waited, col, log) in [("B", wb, &cb, &log_b), ("C", wc, &cc, &log_c)] {
            let r = col.results.lock().unwrap()[0].0.clone();
            assert!(r.is_ok(), "{api:?} {who}: {}", r.to_json());
            assert!(waited >= Duration::from_millis(2500), "{api:?} {who} did not wait out the pause: {waited:?}");
            assert!(waited < Duration::from_secs(8), "{api:?} {who} waited {waited:?}");
            let seen = logged(log, "another server of this API key got a 429");
            assert_eq!(seen, 1, "{api:?} {who}: {:?}", log.lock().unwrap());
        }
        assert_eq!(emu_b.counts().received, 2, "{api:?}");
    }
}

/// `INVALID_API_KEY` answered to one server stops all three: the others' requests complete
/// `API_DISABLED` without being sent, and say why in their log; `resume()` on one of them lifts
/// the stop for the others too.
#[test]
fn an_invalid_api_key_on_one_server_stops_all_three_until_one_resumes() {
    for api in APIS {
        let redis = Redis::start();
        let emu_b = start();
        let fixture = Fixture { api_key: "a-key-the-shared-key-is-not-1234".into(), ..Fixture::default_fixture() };
        let emu_a = Emulator::start(Options { fixture, ..Options::default() }).unwrap();
        // A has the same (shared) key as B and C, but its API does not take it.
        let a = Client::new(sharing(config_for_api(&emu_b, api).with_api_url(&emu_a.base_url()), &redis)).unwrap();
        let b = Client::new(sharing(config_for_api(&emu_b, api), &redis)).unwrap();
        let c = Client::new(sharing(config_for_api(&emu_b, api), &redis)).unwrap();
        let (log_b, log_c) = (log_of(&b), log_of(&c));

        let fatal = run_one(&a, check_call(api));
        assert_eq!(fatal.code(), Some(ErrorCode::InvalidApiKey), "{api:?}: {}", fatal.to_json());
        wait_for_keys(&redis, "*:stop*", true);
        for (who, client, log) in [("B", &b, &log_b), ("C", &c, &log_c)] {
            let r = run_one(client, check_call(api));
            let f = r.outcome.as_ref().expect_err("stopped");
            assert_eq!(f.code, ErrorCode::ApiDisabled, "{api:?} {who}: {}", r.to_json());
            assert_eq!(f.disabled_by, Some(ErrorCode::InvalidApiKey), "{api:?} {who}: {}", r.to_json());
            let seen = logged(log, "another server of this API key got INVALID_API_KEY");
            assert_eq!(seen, 1, "{api:?} {who}: {:?}", log.lock().unwrap());
        }
        assert_eq!(emu_b.counts().received, 0, "{api:?}: a stopped request was sent");
        assert_eq!(emu_a.counts().received, 1, "{api:?}");

        b.resume();
        wait_for_keys(&redis, "*:stop*", false);
        let r = run_one(&c, check_call(api));
        assert!(r.is_ok(), "{api:?}: C still stopped after B's resume(): {}", r.to_json());
        assert_eq!(emu_b.counts().received, 1, "{api:?}");
        let r = run_one(&b, check_call(api));
        assert!(r.is_ok(), "{api:?}: B after its own resume(): {}", r.to_json());
        assert_eq!(emu_b.counts().received, 2, "{api:?}");
    }
}

/// Redis away from the start, two ways: nothing listens on its port (each try is refused at
/// once), or something accepts but never answers (each try waits its whole `timeout_ms`).
/// Requests go out at the local share, no try of Redis holds them longer than `timeout_ms`,
/// stats say "local", and the log says it once, not once per request.
#[test]
fn redis_unreachable_from_the_start_paces_at_the_local_share_and_says_so_once() {
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let (limit, share, n) = (20.0, 0.25, 16u32);
    let (timeout, retry) = (Duration::from_millis(200), Duration::from_secs(1));
    for (what, port) in [("nothing listening", nothing), ("never answering", silent_port)] {
        let emu = start();
        let mut cfg = config_for(&emu);
        cfg.rate_limits = RateLimits { global: Some(Rate { per_second: limit, burst: 1 }), per_type: HashMap::new() };
        let mut budget = SharedBudget::new(format!("redis://127.0.0.1:{port}/0"));
        (budget.timeout, budget.retry, budget.fallback_share) = (timeout, retry, share);
        cfg.shared_budget = Some(budget);
        let client = Client::new(cfg).unwrap();
        let log = log_of(&client);
        let col = Collector::default();
        let started = Instant::now();
        let ids: Vec<u64> =
            (0..n).map(|_| client.submit(check_call(ApiVersion::Legacy), col.handler()).unwrap()).collect();
        poll_until(&client, &col, n as usize, Duration::from_secs(30));
        let elapsed = started.elapsed();
        col.assert_each_once(&ids);
        assert!(col.results.lock().unwrap().iter().all(|(c, _)| c.is_ok()), "{what}");
        let stats = client.stats().shared_budget;
        // The local share is 5/s with a burst of 1: the 16th request leaves 3 s after the first
        // (at the whole limit, 20/s, it would be 0.75 s). Redis is tried by the first request and
        // then at most once per retry_ms, each try bounded by timeout_ms: at most
        // 3 s / 1 s + 2 = 5 tries, 1 s in all even if every one waited its whole timeout.
        let pacing = Duration::from_secs_f64(f64::from(n - 1) / (limit * share));
        let tries = (pacing.as_secs_f64() / retry.as_secs_f64()).ceil() as u32 + 2;
        let bound = pacing + timeout * tries + Duration::from_millis(1500);
        eprintln!("Redis {what}: {n} requests in {elapsed:?} (local share: {pacing:?}; bound {bound:?}); {stats}");
        assert!(elapsed >= pacing - Duration::from_millis(100), "{what}: faster than the local share: {elapsed:?}");
        assert!(elapsed <= bound, "{what}: {elapsed:?}, over {bound:?}: Redis held requests past timeout_ms");
        assert_eq!(stats["mode"], "local", "{what}: {stats}");
        assert_eq!(stats["fallbacks"], 1, "{what}: {stats}");
        assert!(stats["redis_errors"].as_u64().unwrap() >= 1, "{what}: {stats}");
        assert_eq!(emu.counts().received, u64::from(n), "{what}");
        let lines = log.lock().unwrap().clone();
        assert_eq!(logged(&log, "Redis is unreachable"), 1, "{what}: {lines:?}");
        assert_eq!(logged(&log, "Redis"), 1, "{what}: one line about Redis in all: {lines:?}");
    }
    drop(silent);
}

/// `shared_budget` refusals name the field and are `INVALID_CONFIG`; the Redis URL (it may
/// carry a password) is in no refusal, no log line, no stats and no `Debug` output.
#[test]
fn shared_budget_configuration_is_refused_by_field_and_the_redis_url_is_never_shown() {
    const SECRET: &str = "pa55w0rd-in-the-redis-url";
    let url = format!("redis://user:{SECRET}@127.0.0.1:6379/0");
    let config = |shared: serde_json::Value| {
        json!({"community_id": "TESTCOMM", "api_key": "emulator-secret-key-0123456789", "shared_budget": shared})
            .to_string()
    };
    let cases = [
        (json!({"redis_url": format!("http://user:{SECRET}@127.0.0.1:6379")}), "config.shared_budget.redis_url"),
        (json!({"redis_url": format!("rediss://user:{SECRET}@127.0.0.1:6379")}), "config.shared_budget.redis_url"),
        (json!({"redis_url": SECRET}), "config.shared_budget.redis_url"),
        (json!({"redis_url": url, "prefix": "bad prefix"}), "config.shared_budget.prefix"),
        (json!({"redis_url": url, "prefix": ""}), "config.shared_budget.prefix"),
        (json!({"redis_url": url, "prefix": "p".repeat(65)}), "config.shared_budget.prefix"),
        (json!({"redis_url": url, "servers": 3, "fallback_share": 0.5}), "config.shared_budget"),
        (json!({"redis_url": url, "timeout_ms": 0}), "config.shared_budget.timeout_ms"),
        (json!({"redis_url": url, "timeout_ms": 10001}), "config.shared_budget.timeout_ms"),
        (json!({"redis_url": url, "fallback_share": 0}), "config.shared_budget.fallback_share"),
        (json!({"redis_url": url, "fallback_share": 1.5}), "config.shared_budget.fallback_share"),
        (json!({"redis_url": url, "servers": 0}), "config.shared_budget.servers"),
        (json!({"redis_url": url, "retry_ms": 99}), "config.shared_budget.retry_ms"),
        (json!({"redis_url": url, "password": SECRET}), "config.shared_budget.password"),
        (json!({"prefix": "sonoran"}), "config.shared_budget.redis_url"),
    ];
    for (shared, field) in cases {
        let r = Config::from_json(&config(shared.clone())).expect_err(&format!("{shared} accepted"));
        eprintln!("refused: {}", r.message());
        assert_eq!(r.kind(), RefusalKind::InvalidConfig, "{shared}: {r:?}");
        assert!(r.message().starts_with(&format!("{field}:")), "{shared}: {}", r.message());
        assert!(!r.message().contains(SECRET) && !format!("{r:?}").contains(SECRET), "{shared}: {r:?}");
    }
    // A redis:// URL the Redis client cannot use: refused when the client starts.
    let mut cfg = Config::from_json(&config(json!({"redis_url": format!("redis://user:{SECRET}@127.0.0.1:99999/0")})))
        .expect("a redis:// URL passes the configuration check");
    let r = Client::new(cfg.clone()).err().expect("an unusable Redis URL");
    eprintln!("at start: {}", r.message());
    assert_eq!(r.kind(), RefusalKind::InvalidConfig, "{r:?}");
    assert!(r.message().starts_with("config.shared_budget.redis_url:"), "{r:?}");
    assert!(!r.message().contains(SECRET), "{r:?}");

    // Accepted, with a password, at a Redis that is not there: nothing shows the URL.
    let emu = start();
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    cfg = config_for(&emu);
    let mut budget = SharedBudget::new(format!("redis://user:{SECRET}@127.0.0.1:{nothing}/0"));
    budget.retry = Duration::from_millis(100);
    cfg.shared_budget = Some(budget);
    let debug = format!("{cfg:?} {:?}", Config::from_json(&config(json!({"redis_url": url}))).unwrap());
    assert!(!debug.contains(SECRET) && debug.contains("[redacted]"), "{debug}");
    let client = Client::new(cfg).unwrap();
    let log = log_of(&client);
    for _ in 0..3 {
        let r = run_one(&client, check_call(ApiVersion::Legacy));
        assert!(r.is_ok() && !r.to_json().contains(SECRET), "{}", r.to_json());
        std::thread::sleep(Duration::from_millis(150));
    }
    let lines = log.lock().unwrap().clone();
    assert!(!lines.is_empty(), "the fallback is logged");
    assert!(lines.iter().all(|l| !l.contains(SECRET) && !l.contains("127.0.0.1:")), "{lines:?}");
    assert!(!client.stats().to_value().to_string().contains(SECRET));
}

/// What the library writes to Redis (rate cells, a 429 pause, a fatal stop, on both APIs) and
/// every command it sends there (`MONITOR`) hold nothing of the API key: no 8 characters of it
/// in a row, in keys, values or commands.
#[test]
fn redis_holds_nothing_of_the_api_key() {
    use std::io::{BufRead, BufReader, Read};
    let redis = Redis::start();
    let mut monitor = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "monitor"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let mut out = BufReader::new(monitor.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "OK", "MONITOR started");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });

    let emu = start();
    let key = emu.api_key();
    let limited = RateLimit { burst: 0, per_second: 0.0, retry_after: RetryAfter::Fixed(120), tolerance_ms: 0 };
    let emu_429 = start_with(Faults { rate_limit: Some(limited), ..Faults::default() });
    let fixture = Fixture { api_key: "a-key-the-shared-key-is-not-1234".into(), ..Fixture::default_fixture() };
    let emu_bad_key = Emulator::start(Options { fixture, ..Options::default() }).unwrap();
    for api in APIS {
        // Rate cells: the global bucket, and on v2 the route's.
        let mut cfg = sharing(config_for_api(&emu, api), &redis);
        cfg.rate_limits = RateLimits::defaults_for(api);
        let client = Client::new(cfg).unwrap();
        assert!(run_one(&client, check_call(api)).is_ok());
        // A pause: a 429 with Retry-After: 120.
        let mut cfg = sharing(config_for_api(&emu, api).with_api_url(&emu_429.base_url()), &redis);
        cfg.max_attempts = 1;
        let r = run_one(&Client::new(cfg).unwrap(), check_call(api));
        assert_eq!(r.code(), Some(ErrorCode::RateLimited), "{}", r.to_json());
    }
    // A stop: INVALID_API_KEY (on another type: CHECK_APIID is paused for every server now).
    let cfg = sharing(config_for(&emu).with_api_url(&emu_bad_key.base_url()), &redis);
    let r = run_one(&Client::new(cfg).unwrap(), Call::get_account(json!({"username": "SonoranBrian"})).unwrap());
    assert_eq!(r.code(), Some(ErrorCode::InvalidApiKey), "{}", r.to_json());
    wait_for_keys(&redis, "*:stop", true);
    wait_for_keys(&redis, "*:pause:*", true);

    let keys: Vec<String> = redis.cli(&["--scan", "--pattern", "*"]).lines().map(str::to_string).collect();
    let mut stored = String::new();
    for k in &keys {
        assert_eq!(redis.cli(&["type", k]).trim(), "string", "{k}");
        stored += &format!("{k} = {}\n", redis.cli(&["get", k]).trim());
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let commands = reader.join().unwrap();
    eprintln!("{stored}{} commands seen by MONITOR", commands.lines().count());
    assert!(keys.len() >= 5, "rate cells, pauses and a stop: {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("sonoran:{")), "{keys:?}");
    assert!(commands.contains("EVALSHA") && commands.lines().count() >= 10, "{commands}");
    let lower = key.to_ascii_lowercase();
    for w in 0..=lower.len() - 8 {
        let piece = &lower[w..w + 8];
        assert!(!stored.to_ascii_lowercase().contains(piece), "{piece:?} of the API key in Redis:\n{stored}");
        assert!(!commands.to_ascii_lowercase().contains(piece), "{piece:?} of the API key sent to Redis");
    }
}
