//! Soak, on each API in turn: 10,000 requests of every type against the emulator with every
//! fault knob on (latency, a rate limit answering 429 with Retry-After in seconds, as an HTTP
//! date and not at all, 5xx, hanging and dropped connections). Checks that every callback runs
//! exactly once, that the client's counts reconcile with the emulator's, that no
//! MODIFY_IDENTIFIER ADD is applied twice, and that no library thread is left once the client
//! is dropped. On v2 the identifier EDITs name the player, so the account UUID is resolved
//! (links/check) under the same faults.
//!
//! `SONORAN_SOAK=long cargo test --release --test soak -- --nocapture` runs the long variant
//! (100,000 requests per API, a few minutes) for manual runs. Its own test binary, and the two
//! APIs one after the other, so that no other client counts as leftover threads.

mod common;

use common::*;
use serde_json::{json, Value};
use sonoran::{ApiVersion, Call, Client, Completion, ErrorCode, Kind, Rate, RateLimits};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const BRIAN: &str = "11000010499F33C";

/// The i-th request on `api`: all seven types, the same request objects on both APIs, with
/// every MODIFY_IDENTIFIER ADD at its own location.
fn call(api: ApiVersion, i: usize) -> Call {
    let typed = |kind, data| Call::for_api(api, kind, data).unwrap();
    match i % 10 {
        0 | 1 => typed(Kind::CheckApiId, json!({"apiId": if i.is_multiple_of(20) { "nobody" } else { BRIAN }})),
        2 => match api {
            ApiVersion::Legacy => Call::generic("GET_VERSION", Value::Null).unwrap(),
            ApiVersion::V2 => Call::v2_request("GET", "/v2/general/version", None).unwrap(),
        },
        3 => typed(Kind::GetAccount, json!({"username": "SonoranBrian"})),
        4 => typed(Kind::SetApiId, json!({"username": "CivilianNoIds", "apiIds": [format!("soak-{}", i % 13)]})),
        5 => {
            typed(Kind::SetAccountPermissions, json!({"username": "OfficerJones", "add": ["DMV"], "remove": ["FIRE"]}))
        }
        6 => typed(Kind::LinkCharacter, json!({"apiId": BRIAN, "syncId": format!("soak-{}", i % 17), "action": 0})),
        7 => typed(
            Kind::ModifyIdentifier,
            json!({"apiId": BRIAN, "action": 1, "identId": 1, "identifier": {"status": (i % 5) as u64}}),
        ),
        _ => typed(
            Kind::ModifyIdentifier,
            json!({"apiId": BRIAN, "action": 0, "identifier": {"location": format!("soak-add-{i}"), "status": 2}}),
        ),
    }
}

/// Whether a logged request is an identifier ADD, and its location.
fn add_location(api: ApiVersion, e: &LogEntry) -> Option<String> {
    let loc = match api {
        ApiVersion::Legacy if e.path == "/emergency/modify_identifier" => &e.body["data"][0]["identifier"]["location"],
        ApiVersion::V2 if e.method == "POST" && e.path.ends_with("/identifiers") => &e.body["location"],
        _ => return None,
    };
    loc.as_str().map(str::to_string)
}

fn is_add(i: usize) -> bool {
    i % 10 >= 8
}

#[test]
fn soak_every_type_under_every_fault_on_both_apis() {
    for api in APIS {
        soak(api);
    }
}

fn soak(api: ApiVersion) {
    eprintln!("soak on the {api:?} API");
    let long = std::env::var("SONORAN_SOAK").is_ok_and(|v| v == "long");
    let total: usize = if long { 100_000 } else { 10_000 };
    let window: usize = std::env::var("SOAK_WINDOW").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let budget = if long { Duration::from_secs(1800) } else { Duration::from_secs(55) };

    let emu_limit = Rate { per_second: 1000.0, burst: 20 };
    let limit = |retry_after: RetryAfter| RateLimit {
        burst: emu_limit.burst,
        per_second: emu_limit.per_second,
        retry_after,
        tolerance_ms: 0,
    };
    let faults = |retry_after: RetryAfter, seed: u64| Faults {
        latency_ms: 2,
        rate_limit: Some(limit(retry_after)),
        error_rate: 0.03,
        hang_rate: 0.002,
        drop_rate: 0.02,
        seed,
    };
    let emu = Emulator::start(Options { faults: faults(RetryAfter::Seconds, 1), ..Options::default() }).unwrap();
    let before = library_threads();

    // Identifier 1, which the EDITs change.
    let setup = Client::new(config_for_api(&emu, api)).unwrap();
    let col = Collector::default();
    let add = json!({"apiId": BRIAN, "action": 0, "identifier": {"location": "soak-setup"}});
    // Under the steady faults the setup ADD may fail (it is never retried once it may have
    // been applied): try until one is applied.
    for attempt in 1.. {
        setup.submit(Call::for_api(api, Kind::ModifyIdentifier, add.clone()).unwrap(), col.handler()).unwrap();
        poll_until(&setup, &col, attempt, Duration::from_secs(10));
        if col.results.lock().unwrap()[attempt - 1].0.is_ok() {
            break;
        }
        assert!(attempt < 20, "the setup ADD never succeeded");
    }
    drop(setup);
    emu.clear_log();
    let received_before = emu.counts().received;

    let mut cfg = config_for_api(&emu, api);
    // Faster than the emulator allows, so that its limit answers 429s.
    let client_rate: f64 = std::env::var("SOAK_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(900.0);
    cfg.rate_limits =
        RateLimits { global: Some(Rate { per_second: client_rate, burst: 20 }), per_type: HashMap::new() };
    cfg.timeout = Duration::from_secs(3);
    cfg.max_attempts = 4;
    cfg.retry_backoff = Duration::from_millis(20);
    cfg.rate_limit_pause = Duration::from_millis(200);
    let client = Client::new(cfg).unwrap();

    let col = Collector::default();
    let started = Instant::now();
    let mut kinds: HashMap<u64, usize> = HashMap::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    // Three 429 storms, one per Retry-After form: for a moment the emulator lets about 20
    // requests a second through and answers the rest 429 (Retry-After 1 s, as an HTTP date,
    // or none), on top of the steady faults.
    let storm = |retry_after: RetryAfter, seed: u64| Faults {
        rate_limit: Some(RateLimit { burst: 0, per_second: 20.0, retry_after, tolerance_ms: 0 }),
        ..faults(RetryAfter::Seconds, seed)
    };
    let mut storms = vec![(3, RetryAfter::None), (2, RetryAfter::HttpDate), (1, RetryAfter::Seconds)];
    let mut storm_end: Option<(Instant, u64, u64)> = None;
    let mut storm_429s = Vec::new();
    for i in 0..total {
        if let Some((q, mode)) = storms.last().cloned() {
            if storm_end.is_none() && i == q * total / 4 {
                storms.pop();
                emu.set_faults(storm(mode, i as u64));
                storm_end = Some((Instant::now() + Duration::from_millis(150), emu.counts().rate_limited, i as u64));
            }
        }
        if let Some((end, before, seed)) = storm_end {
            if Instant::now() >= end {
                emu.set_faults(faults(RetryAfter::Seconds, seed + 1));
                storm_429s.push(emu.counts().rate_limited - before);
                storm_end = None;
            }
        }
        // Keep a bounded number outstanding, as a game server ticking poll() would.
        while client.pending() >= window {
            client.poll(0, |_| {});
            assert!(started.elapsed() < budget, "soak over its time budget at {i}/{total}");
            std::thread::sleep(Duration::from_millis(1));
        }
        let id = client.submit(call(api, i), col.handler()).expect("accepted");
        kinds.insert(id, i);
        ids.push(id);
    }
    if let Some((_, before, seed)) = storm_end {
        std::thread::sleep(Duration::from_millis(150));
        emu.set_faults(faults(RetryAfter::Seconds, seed + 1));
        storm_429s.push(emu.counts().rate_limited - before);
    }
    assert_eq!(storm_429s.len(), 3);
    assert!(storm_429s.iter().all(|n| *n > 0), "every storm answered 429s: {storm_429s:?}");
    poll_until(&client, &col, total, budget.saturating_sub(started.elapsed()));
    let elapsed = started.elapsed();
    col.assert_each_once(&ids);

    // Outcomes by code, from the callbacks.
    let results: Vec<Completion> = col.results.lock().unwrap().iter().map(|(c, _)| c.clone()).collect();
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for r in &results {
        let key = r.code().map_or("OK".to_string(), |c| c.as_str().to_string());
        *by_code.entry(key).or_default() += 1;
    }
    let count = |k: &str| by_code.get(k).copied().unwrap_or(0);
    let stats = client.stats();
    let counts = emu.counts();
    eprintln!("soak {api:?}: {total} requests in {elapsed:?}, 429s per storm {storm_429s:?}\n  by code {by_code:?}\n  client {stats:?}\n  emulator {counts:?}");

    // The client's own counts are the callbacks' counts.
    let completed: BTreeMap<String, u64> =
        stats.completed.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
    assert_eq!(completed, by_code);
    assert_eq!(stats.submitted, total as u64);
    assert_eq!((stats.pending, stats.queued, stats.in_flight), (0, 0, 0));

    for r in results.iter().filter(|r| r.code() == Some(ErrorCode::HttpError)) {
        eprintln!("HTTP_ERROR: {:?}", r.outcome);
    }
    // Every call the client made reached the emulator, except those cut off by their request's
    // deadline before the emulator had read them; each arrival is in the emulator's log.
    let received = counts.received - received_before;
    assert!(stats.api_calls >= received, "client calls vs emulator arrivals");
    assert!(stats.api_calls - received <= count("TIMEOUT"), "calls that never arrived");
    assert_eq!(emu.log().len() as u64, received);
    // Each 429 the emulator answered reached the client, unless the client gave up on that call
    // first (its request's deadline passed while the answer was on its way).
    assert!(
        stats.rate_limited_429 <= counts.rate_limited,
        "{} 429s seen, {} sent",
        stats.rate_limited_429,
        counts.rate_limited
    );
    assert!(counts.rate_limited - stats.rate_limited_429 <= count("TIMEOUT"), "429s that never arrived");
    assert_eq!(counts.malformed, 0, "no malformed request reached the API");
    assert!(counts.rate_limited > 0 && counts.faulted > 0 && counts.hung > 0 && counts.dropped > 0, "{counts:?}");

    // A 200 or 404 answer is final: each one is an OK / NOT_LINKED callback, unless the client
    // gave up on it first (its deadline passed while the answer was on its way). On v2 an
    // unlinked player is a 200 (`linked: false`), and an EDIT whose account UUID is not known
    // yet first makes a links/check call of its own (at most one per EDIT).
    let timeouts = count("TIMEOUT");
    let ok = count("OK");
    let nl = count("NOT_LINKED");
    let (s200, s404) = (counts.status(200), counts.status(404));
    match api {
        ApiVersion::Legacy => {
            assert!(ok <= s200 && s200 <= ok + timeouts, "OK {ok} vs 200s {s200}");
            assert!(nl <= s404 && s404 <= nl + timeouts);
        }
        ApiVersion::V2 => {
            let edits = (0..total).filter(|i| i % 10 == 7).count() as u64;
            assert!(ok + nl <= s200 + s404, "OK {ok} + NOT_LINKED {nl} vs 200s {s200} + 404s {s404}");
            assert!(s200 + s404 <= ok + nl + timeouts + edits, "OK {ok} + NOT_LINKED {nl} vs {s200} + {s404}");
            assert!(nl > 0, "the unlinked player's checks were answered");
        }
    }
    // Final failures are backed by as many faults at least.
    let answered_429 = results
        .iter()
        .filter(|r| r.outcome.as_ref().err().is_some_and(|f| f.code == ErrorCode::RateLimited && f.status == 429))
        .count();
    assert!(answered_429 as u64 <= counts.rate_limited);
    assert!(count("SERVER_ERROR") <= counts.faulted);
    assert!(count("NETWORK") <= counts.dropped);
    assert!(timeouts >= counts.hung, "every hung request ends as a TIMEOUT");
    assert_eq!(count("API_DISABLED") + count("CANCELLED") + count("SHUTDOWN") + count("BAD_RESPONSE"), 0);
    assert!(ok as f64 >= 0.8 * total as f64, "most requests succeed despite the faults: {by_code:?}");

    // No MODIFY_IDENTIFIER ADD reached the API twice (429-refused sends excepted: nothing was
    // applied), none is applied twice, and each one reported OK is applied once.
    let mut adds_on_wire: HashMap<String, usize> = HashMap::new();
    for e in emu.log() {
        if e.status != 429 {
            if let Some(loc) = add_location(api, &e) {
                *adds_on_wire.entry(loc).or_default() += 1;
            }
        }
    }
    let ok_adds = results.iter().filter(|r| is_add(kinds[&r.id]) && r.is_ok()).count();
    assert!(
        ok_adds > 0 && adds_on_wire.len() >= ok_adds,
        "{ok_adds} ADDs reported OK, {} on the wire",
        adds_on_wire.len()
    );
    let state = emu.state();
    let mut applied: HashMap<String, usize> = HashMap::new();
    for ident in state["identifiers"].as_array().unwrap() {
        if let Some(loc) = ident["location"].as_str().filter(|l| l.starts_with("soak-add-")) {
            *applied.entry(loc.to_string()).or_default() += 1;
        }
    }
    for (loc, n) in &adds_on_wire {
        assert_eq!(*n, 1, "{loc} was sent {n} times");
    }
    for (loc, n) in &applied {
        assert_eq!(*n, 1, "{loc} was applied {n} times");
    }
    for r in &results {
        let i = kinds[&r.id];
        if is_add(i) && r.is_ok() {
            assert_eq!(applied.get(&format!("soak-add-{i}")), Some(&1), "ADD {i} reported OK but not applied");
        }
    }

    drop(client);
    assert_eq!(library_threads_settled(before), before, "threads left running: {:?}", thread_names());
    // How long it took is reported, not asserted: speed belongs to the benchmarks.
    eprintln!("soak {api:?}: {total} requests in {elapsed:?}");
}
