//! Pacing, retries and fault tolerance against the emulator's fault knobs: 429 pauses and
//! retries, exhaustion, 5xx and dropped connections retried only for requests safe to repeat,
//! sending stopped after fatal answers, the limiter's deadline, coalescing, the request size
//! cap, a 1,000-request burst at the emulator's own limit, stats and the log hook.

mod common;

use common::*;
use serde_json::{json, Value};
use sonoran::{Call, Client, Completion, Config, ErrorCode, Level, Rate, RateLimits};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const BRIAN: &str = "11000010499F33C";

fn code(c: &Completion) -> Option<ErrorCode> {
    c.code()
}

fn failure(c: &Completion) -> &sonoran::Failure {
    c.outcome.as_ref().err().unwrap_or_else(|| panic!("expected a failure, got {:?}", c.outcome))
}

/// Submit every call, poll until all have completed, return the completions in submit order.
fn run_all(client: &Client, calls: Vec<Call>) -> Vec<Completion> {
    let col = Collector::default();
    let ids: Vec<u64> = calls.into_iter().map(|c| client.submit(c, col.handler()).expect("accepted")).collect();
    poll_until(client, &col, ids.len(), WAIT);
    col.assert_each_once(&ids);
    ids.iter().map(|id| col.get(*id)).collect()
}

fn run(client: &Client, call: Call) -> Completion {
    run_all(client, vec![call]).pop().unwrap()
}

fn check() -> Call {
    Call::check_api_id(json!({"apiId": BRIAN})).unwrap()
}

/// Requests the emulator received on a path.
fn sent(emu: &Emulator, path: &str) -> usize {
    emu.log().iter().filter(|e| e.path == path).count()
}

/// Collects log hook lines.
fn capture_log(client: &Client) -> Arc<Mutex<Vec<(Level, String)>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    client.set_log_hook(Some(Box::new(move |level, msg| l.lock().unwrap().push((level, msg.to_string())))));
    lines
}

fn fast_retries(mut cfg: Config) -> Config {
    cfg.retry_backoff = Duration::from_millis(10);
    cfg
}

#[test]
fn the_default_limit_is_one_per_second_with_a_burst_of_five() {
    let cfg = Config::new("c", "k");
    assert_eq!(cfg.rate_limits.global, Some(Rate { per_second: 1.0, burst: 5 }));
    assert_eq!(cfg.rate_limits, RateLimits::default());
    assert!(cfg.rate_limits.per_type.is_empty());
    // The emulator enforcing the documented advice sees no 429 from a client on its defaults.
    let emu = start_with(Faults { rate_limit: Some(RateLimit::new(5, 1.0)), ..Faults::default() });
    let mut cfg = config_for(&emu);
    cfg.rate_limits = RateLimits::default();
    let c = Client::new(cfg).unwrap();
    let started = Instant::now();
    let results = run_all(&c, (0..7).map(|_| check()).collect());
    assert!(results.iter().all(Completion::is_ok));
    assert_eq!(emu.counts().rate_limited, 0);
    // Four at once (the fifth token is the margin), then one a second: the 7th waited about 3 s.
    assert!(started.elapsed() >= Duration::from_millis(2500), "the 5th to 7th waited: {:?}", started.elapsed());
    let stats = c.stats();
    assert!(stats.limiter_wait_ms > 0, "{stats:?}");
}

#[test]
fn a_429_pauses_the_type_and_the_request_is_retried_after_retry_after() {
    for mode in [RetryAfter::Seconds, RetryAfter::HttpDate, RetryAfter::None] {
        let rl = RateLimit { burst: 1, per_second: 1.0, retry_after: mode.clone(), tolerance_ms: 0 };
        let emu = start_with(Faults { rate_limit: Some(rl), ..Faults::default() });
        let mut cfg = config_for(&emu);
        cfg.rate_limit_pause = Duration::from_millis(1100);
        let c = Client::new(cfg).unwrap();
        let log = capture_log(&c);
        let started = Instant::now();
        let results = run_all(&c, vec![check(), check()]);
        assert!(results.iter().all(Completion::is_ok), "{mode:?}: {results:?}");
        let counts = emu.counts();
        assert!(counts.rate_limited >= 1, "{mode:?}: the second call met the emulator's limit");
        assert_eq!(c.stats().rate_limited_429, counts.rate_limited, "{mode:?}");
        assert!(c.stats().retries >= 1);
        assert!(started.elapsed() >= Duration::from_millis(500), "{mode:?}: waited for the pause");
        let lines = log.lock().unwrap();
        assert!(
            lines.iter().any(|(l, m)| *l == Level::Warn && m.contains("CHECK_APIID paused") && m.contains("429")),
            "{lines:?}"
        );
    }
}

#[test]
fn a_pause_holds_only_its_type() {
    let emu = start_with(Faults {
        rate_limit: Some(RateLimit {
            burst: 0,
            per_second: 0.001,
            retry_after: RetryAfter::Fixed(30),
            tolerance_ms: 0,
        }),
        ..Faults::default()
    });
    let mut cfg = config_for(&emu);
    cfg.timeout = Duration::from_secs(5);
    let c = Client::new(cfg).unwrap();
    // Retry-After 30 s is past the deadline: RATE_LIMITED at once, with retry_after_ms.
    let r = run(&c, check());
    let f = failure(&r);
    assert_eq!((f.code, f.status, f.retry_after_ms), (ErrorCode::RateLimited, 429, Some(30_000)));
    assert_eq!(emu.counts().received, 1);
    // While CHECK_APIID is paused, its requests are not sent and say so ...
    let r = run(&c, check());
    let f = failure(&r);
    assert_eq!((f.code, f.status), (ErrorCode::RateLimited, 0));
    assert!(f.retry_after_ms.unwrap() > 25_000, "{f:?}");
    assert!(f.message.starts_with("not sent"), "{}", f.message);
    assert_eq!(emu.counts().received, 1, "nothing sent while paused");
    assert_eq!(c.stats().to_value()["paused"]["CHECK_APIID"].as_u64().map(|ms| ms > 25_000), Some(true));
    // ... while other types still go.
    emu.set_faults(Faults::default());
    let r = run(&c, Call::get_account(json!({"username": "SonoranBrian"})).unwrap());
    assert!(r.is_ok(), "{:?}", r.outcome);
    c.resume();
    assert!(run(&c, check()).is_ok(), "resume() lifts the pause");
}

#[test]
fn exhausted_429_retries_complete_rate_limited_with_retry_after_ms() {
    let emu = start_with(Faults {
        rate_limit: Some(RateLimit { burst: 0, per_second: 0.001, retry_after: RetryAfter::Fixed(1), tolerance_ms: 0 }),
        ..Faults::default()
    });
    let mut cfg = config_for(&emu);
    cfg.max_attempts = 3;
    cfg.timeout = Duration::from_secs(10);
    let c = Client::new(cfg).unwrap();
    let r = run(&c, check());
    let f = failure(&r);
    assert_eq!((f.code, f.status, f.retry_after_ms), (ErrorCode::RateLimited, 429, Some(1000)));
    assert_eq!(emu.counts().received, 3, "max_attempts sends, no more");
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["retry_after_ms"], json!(1000));
}

#[test]
fn server_errors_and_dropped_connections_are_retried_only_when_safe() {
    let emu = start_with(Faults { error_rate: 1.0, ..Faults::default() });
    let c = Client::new(fast_retries(config_for(&emu))).unwrap();
    let log = capture_log(&c);
    let add = || {
        Call::modify_identifier(json!({"apiId": BRIAN, "action": 0, "identifier": {"location": "faults-add"}})).unwrap()
    };
    let edit = || {
        Call::modify_identifier(json!({"apiId": BRIAN, "action": 1, "identId": 1, "identifier": {"status": 2}}))
            .unwrap()
    };
    assert_eq!(code(&run(&c, check())), Some(ErrorCode::ServerError));
    assert_eq!(sent(&emu, "/general/check_apiid"), 3, "a read is retried up to max_attempts");
    assert_eq!(code(&run(&c, add())), Some(ErrorCode::ServerError));
    assert_eq!(sent(&emu, "/emergency/modify_identifier"), 1, "MODIFY_IDENTIFIER ADD is never sent twice");
    assert_eq!(code(&run(&c, edit())), Some(ErrorCode::ServerError));
    assert_eq!(sent(&emu, "/emergency/modify_identifier"), 4, "EDIT is safe to repeat");
    assert!(log.lock().unwrap().iter().any(|(l, m)| *l == Level::Warn && m.contains("not retried")));

    emu.set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    emu.clear_log();
    assert_eq!(
        code(&run(&c, Call::get_account(json!({"username": "SonoranBrian"})).unwrap())),
        Some(ErrorCode::Network)
    );
    assert_eq!(sent(&emu, "/general/get_account"), 3);
    assert_eq!(code(&run(&c, add())), Some(ErrorCode::Network));
    assert_eq!(sent(&emu, "/emergency/modify_identifier"), 1, "a dropped ADD may have been applied: not resent");

    // A 5xx then a success: the caller sees only the success.
    emu.set_faults(Faults { error_rate: 0.5, seed: 7, ..Faults::default() });
    let results = run_all(&c, (0..20).map(|_| check()).collect());
    assert!(results.iter().filter(|r| r.is_ok()).count() >= 15, "{results:?}");
    assert!(c.stats().retries > 0);
    let state = emu.state();
    let adds = state["identifiers"].as_array().unwrap().iter().filter(|i| i["location"] == "faults-add").count();
    assert_eq!(adds, 0, "failed ADDs were not applied, and none was applied twice");
}

#[test]
fn connect_failures_are_retried_for_every_type() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = Config::new("TESTCOMM", "key-0123456789abcdef").with_api_url(&format!("http://127.0.0.1:{port}"));
    cfg.rate_limits = RateLimits::unlimited();
    let c = Client::new(fast_retries(cfg)).unwrap();
    let add = Call::modify_identifier(json!({"apiId": BRIAN, "action": 0, "identifier": {}})).unwrap();
    let r = run(&c, add);
    assert_eq!(code(&r), Some(ErrorCode::Network));
    assert!(failure(&r).message.starts_with("could not connect"));
    assert_eq!(c.stats().api_calls, 3, "nothing was sent, so even an ADD is retried");
}

#[test]
fn fatal_answers_stop_sending_until_the_cool_down_or_resume() {
    let emu = start();
    let mut cfg = Config::new(emu.community_id(), "wrong-key-123-0123456789").with_api_url(&emu.base_url());
    cfg.rate_limits = RateLimits { global: Some(Rate { per_second: 1.0, burst: 1 }), per_type: Default::default() };
    cfg.disable_cooldown = Duration::from_millis(1500);
    let c = Client::new(cfg).unwrap();
    let log = capture_log(&c);
    // Five queued behind the first: once it answers INVALID_API_KEY they complete at once.
    let calls: Vec<Call> = (0..6)
        .map(|i| if i % 2 == 0 { check() } else { Call::get_account(json!({"username": "SonoranBrian"})).unwrap() })
        .collect();
    let started = Instant::now();
    let results = run_all(&c, calls);
    // Whichever request reached the limiter first was sent (the request tasks start on two
    // worker threads, so that is not always the first one submitted); every other one stopped.
    let sent: Vec<&Completion> = results.iter().filter(|r| code(r) == Some(ErrorCode::InvalidApiKey)).collect();
    assert_eq!(sent.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| code(r) != Some(ErrorCode::InvalidApiKey)) {
        let f = failure(r);
        assert_eq!((f.code, f.status, f.disabled_by), (ErrorCode::ApiDisabled, 0, Some(ErrorCode::InvalidApiKey)));
        assert!(f.message.contains("INVALID_API_KEY"), "{}", f.message);
        assert!(!f.message.contains("wrong-key-123-0123456789"));
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["disabled_by"], json!("INVALID_API_KEY"));
        assert_eq!(v["error"]["code"], json!("API_DISABLED"));
    }
    // Waiting their turn at 1/s would take 5 s.
    assert!(started.elapsed() < Duration::from_millis(3000), "the queued ones did not wait their turn");
    assert_eq!(emu.counts().received, 1, "nothing after the fatal answer reached the API");
    assert_eq!(c.stats().to_value()["disabled"]["*"]["cause"], json!("INVALID_API_KEY"));
    assert!(log.lock().unwrap().iter().any(|(l, m)| *l == Level::Error && m.contains("sending stopped")));
    // After the cool-down it tries again (and is stopped again).
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(code(&run(&c, check())), Some(ErrorCode::InvalidApiKey));
    assert_eq!(emu.counts().received, 2);
    assert_eq!(code(&run(&c, check())), Some(ErrorCode::ApiDisabled));
    c.resume();
    assert_eq!(code(&run(&c, check())), Some(ErrorCode::InvalidApiKey), "resume() lifts the stop");
    assert_eq!(emu.counts().received, 3);

    // A wrong community id stops every type too.
    let mut cfg = config_for(&emu);
    cfg.community_id = "NOTOURS".into();
    let c = Client::new(cfg).unwrap();
    assert_eq!(code(&run(&c, check())), Some(ErrorCode::InvalidCommunityId));
    let r = run(&c, Call::generic("GET_VERSION", Value::Null).unwrap());
    assert_eq!(failure(&r).disabled_by, Some(ErrorCode::InvalidCommunityId));
    assert_eq!(emu.counts().received, 4);
}

#[test]
fn api_not_enabled_stops_only_its_type() {
    let mut fixture = emulator::Fixture::default_fixture();
    fixture.disabled_types = vec!["GET_ACCOUNT".into()];
    let emu = Emulator::start(Options { fixture, ..Options::default() }).unwrap();
    let mut cfg = config_for(&emu);
    cfg.disable_cooldown = Duration::from_millis(500);
    let c = Client::new(cfg).unwrap();
    let get = || Call::get_account(json!({"username": "SonoranBrian"})).unwrap();
    assert_eq!(code(&run(&c, get())), Some(ErrorCode::ApiNotEnabled));
    let r = run(&c, get());
    assert_eq!((code(&r), failure(&r).disabled_by), (Some(ErrorCode::ApiDisabled), Some(ErrorCode::ApiNotEnabled)));
    assert!(failure(&r).message.contains("GET_ACCOUNT"), "{}", failure(&r).message);
    assert!(run(&c, check()).is_ok(), "other types still go");
    assert_eq!(sent(&emu, "/general/get_account"), 1);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(code(&run(&c, get())), Some(ErrorCode::ApiNotEnabled), "sent again after the cool-down");
    assert_eq!(sent(&emu, "/general/get_account"), 2);
}

#[test]
fn a_request_still_queued_at_its_deadline_times_out_without_being_sent() {
    let emu = start();
    let mut cfg = config_for(&emu);
    cfg.rate_limits = RateLimits { global: Some(Rate { per_second: 1.0, burst: 1 }), per_type: Default::default() };
    // The bucket refills one token a second: within 800 ms only one of three can go.
    cfg.timeout = Duration::from_millis(800);
    let c = Client::new(cfg).unwrap();
    let results = run_all(&c, vec![check(), check(), check()]);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "exactly one got the token");
    for r in results.iter().filter(|r| !r.is_ok()) {
        let f = failure(r);
        assert_eq!((f.code, f.status), (ErrorCode::Timeout, 0));
        assert!(f.message.starts_with("not sent"), "{}", f.message);
    }
    assert_eq!(emu.counts().received, 1);
    // The tokens the timed-out requests never used are still there for the next one.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(run(&c, check()).is_ok());
}

#[test]
fn per_type_limits_pace_their_type_only() {
    let emu = start();
    let mut cfg = config_for(&emu);
    cfg.rate_limits.per_type.insert("CHECK_APIID".into(), Rate { per_second: 2.0, burst: 1 });
    let c = Client::new(cfg).unwrap();
    let started = Instant::now();
    let mut calls: Vec<Call> = (0..3).map(|_| check()).collect();
    calls.extend((0..20).map(|_| Call::generic("GET_VERSION", Value::Null).unwrap()));
    let results = run_all(&c, calls);
    assert!(results.iter().all(Completion::is_ok));
    assert!(started.elapsed() >= Duration::from_millis(900), "3 checks at 2/s take a second");
    let first_versions = emu.log().iter().position(|e| e.path == "/general/get_version").unwrap();
    assert!(first_versions < 3, "GET_VERSION did not wait behind CHECK_APIID");
}

#[test]
fn coalesced_requests_go_out_as_one_call_and_each_caller_gets_its_answer() {
    let emu = start();
    let mut cfg = config_for(&emu);
    cfg.coalesce.insert("SET_API_ID".into(), Duration::from_millis(150));
    let c = Client::new(cfg).unwrap();
    let calls: Vec<Call> = (0..10)
        .map(|i| Call::set_api_id(json!({"username": "CivilianNoIds", "apiIds": [format!("coal-{i}")]})).unwrap())
        .collect();
    let results = run_all(&c, calls);
    for r in &results {
        assert_eq!(r.outcome.as_ref().unwrap().data, json!("API ID(s) set!"));
    }
    let log = emu.log();
    let sets: Vec<_> = log.iter().filter(|e| e.path == "/general/set_api_id").collect();
    assert_eq!(sets.len(), 1, "one call for ten requests");
    assert_eq!(sets[0].body["data"].as_array().unwrap().len(), 10);
    let ids = emu.account("CivilianNoIds").unwrap()["apiIds"].clone();
    for i in 0..10 {
        assert!(ids.as_array().unwrap().contains(&json!(format!("coal-{i}"))), "{ids}");
    }
    assert_eq!(c.stats().coalesced, 10);
    // A type that does not allow it is refused by name.
    let e = Config::from_json(
        r#"{"community_id":"c","api_key":"key-0123456789abcdef","coalesce":{"MODIFY_IDENTIFIER":50}}"#,
    )
    .unwrap_err();
    assert!(e.message().contains("config.coalesce.MODIFY_IDENTIFIER"), "{e}");
    // A cancelled member is left out of the call.
    let col = Collector::default();
    let a =
        c.submit(Call::set_api_id(json!({"username": "CivilianNoIds", "apiIds": ["keep"]})).unwrap(), col.handler());
    let b =
        c.submit(Call::set_api_id(json!({"username": "CivilianNoIds", "apiIds": ["drop"]})).unwrap(), col.handler());
    assert!(c.cancel(b.unwrap()));
    poll_until(&c, &col, 2, WAIT);
    assert!(col.get(a.unwrap()).is_ok());
    let last = emu.log().into_iter().rfind(|e| e.path == "/general/set_api_id").unwrap();
    assert_eq!(last.body["data"], json!([{"username": "CivilianNoIds", "apiIds": ["keep"]}]));
}

#[test]
fn oversized_requests_and_bad_pacing_settings_are_refused() {
    let emu = start();
    let mut cfg = config_for(&emu);
    cfg.max_request_bytes = 2048;
    let c = Client::new(cfg).unwrap();
    let ids: Vec<String> = (0..100).map(|i| format!("steam:{i:040}")).collect();
    let e = c.submit(Call::set_api_id(json!({"username": "SonoranBrian", "apiIds": ids})).unwrap(), None).unwrap_err();
    assert!(e.message().contains("max_request_bytes"), "{e}");
    assert_eq!(emu.counts().received, 0);
    assert_eq!(c.pending(), 0);

    let base = r#""community_id":"c","api_key":"key-0123456789abcdef""#;
    for (extra, field) in [
        (r#""max_request_bytes":10"#, "config.max_request_bytes"),
        (r#""rate_limits":{"global":{"per_second":0,"burst":5}}"#, "config.rate_limits.global.per_second"),
        (r#""rate_limits":{"global":{"per_second":1,"burst":0}}"#, "config.rate_limits.global.burst"),
        (
            r#""rate_limits":{"GET_ACCOUNT":{"per_second":1,"burst":2,"jitter":1}}"#,
            "config.rate_limits.GET_ACCOUNT.jitter",
        ),
        (r#""rate_limits":{"lower":{"per_second":1}}"#, "config.rate_limits key 'lower'"),
        (r#""max_attempts":0"#, "config.max_attempts"),
        (r#""rate_limit_margin_ms":-1"#, "config.rate_limit_margin_ms"),
        (r#""rate_limit_margin_ms":60001"#, "config.rate_limit_margin_ms"),
        (r#""coalesce":{"SET_API_ID":0}"#, "config.coalesce.SET_API_ID"),
    ] {
        let e = Config::from_json(&format!("{{{base},{extra}}}")).unwrap_err();
        assert!(e.message().starts_with(field), "{extra}: {e}");
    }
    let cfg = Config::from_json(&format!(
        r#"{{{base},"rate_limits":{{"global":null,"SET_API_ID":{{"per_second":0.5,"burst":2}}}},"max_attempts":5,
            "retry_backoff_ms":100,"rate_limit_pause_ms":2000,"disable_cooldown_ms":60000,
            "coalesce":{{"LINK_CHARACTER":25}},"max_request_bytes":65536,"rate_limit_margin_ms":0}}"#
    ))
    .unwrap();
    assert_eq!(cfg.rate_limits.global, None);
    assert_eq!(cfg.rate_limits.per_type["SET_API_ID"], Rate { per_second: 0.5, burst: 2 });
    assert_eq!((cfg.max_attempts, cfg.max_request_bytes), (5, 65536));
    assert_eq!(cfg.retry_backoff, Duration::from_millis(100));
    assert_eq!(cfg.rate_limit_pause, Duration::from_secs(2));
    assert_eq!(cfg.rate_limit_margin, Duration::ZERO);
    assert_eq!(Config::new("c", "k").rate_limit_margin, Duration::from_millis(250));
    assert_eq!(cfg.disable_cooldown, Duration::from_secs(60));
    assert_eq!(cfg.coalesce["LINK_CHARACTER"], Duration::from_millis(25));
}

#[test]
fn a_burst_of_1000_at_the_emulators_own_limit_gets_no_429() {
    // 200/s: fast enough to finish in about five seconds, slow enough that the default margin
    // (250 ms of jitter) covers the first connections' set-up on a loaded machine.
    let rate = Rate { per_second: 200.0, burst: 20 };
    let emu = Emulator::start(Options {
        faults: Faults { rate_limit: Some(RateLimit::new(rate.burst, rate.per_second)), ..Faults::default() },
        log: false,
        ..Options::default()
    })
    .unwrap();
    let mut cfg = config_for(&emu);
    cfg.rate_limits = RateLimits { global: Some(rate), per_type: Default::default() };
    let c = Client::new(cfg).unwrap();
    let calls: Vec<Call> = (0..1000)
        .map(|i| match i % 4 {
            0 => check(),
            1 => Call::get_account(json!({"username": "SonoranBrian"})).unwrap(),
            2 => Call::generic("GET_VERSION", Value::Null).unwrap(),
            _ => Call::link_character(json!({"apiId": BRIAN, "syncId": format!("burst-{}", i % 7), "action": 0}))
                .unwrap(),
        })
        .collect();
    let results = run_all(&c, calls);
    let counts = emu.counts();
    assert_eq!(counts.rate_limited, 0, "{counts:?}");
    assert_eq!(c.stats().rate_limited_429, 0);
    assert!(results.iter().all(Completion::is_ok));
    assert_eq!(counts.received, 1000);
}

#[test]
fn stats_count_what_happened_and_the_log_never_shows_secrets() {
    let emu = start_with(Faults { error_rate: 0.3, drop_rate: 0.1, seed: 11, latency_ms: 2, ..Faults::default() });
    let c = Client::new(fast_retries(config_for(&emu))).unwrap();
    let log = capture_log(&c);
    let mut calls: Vec<Call> = (0..30).map(|_| check()).collect();
    calls.extend((0..10).map(|i| {
        Call::set_api_id(
            json!({"username": "CivilianNoIds", "sessionId": format!("sess-{i}-secret"), "apiIds": [format!("s{i}")]}),
        )
        .unwrap()
    }));
    calls.push(Call::check_api_id(json!({"apiId": "nobody"})).unwrap());
    let results = run_all(&c, calls);
    let stats = c.stats();
    let v = stats.to_value();
    let by_code = v["completed"].as_object().unwrap();
    let total: u64 = by_code.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, 41);
    assert_eq!(by_code["OK"].as_u64().unwrap() as usize, results.iter().filter(|r| r.is_ok()).count());
    assert_eq!(v["submitted"], json!(41));
    assert_eq!(v["pending"], json!(0));
    assert_eq!(v["queued"], json!(0));
    assert_eq!(v["in_flight"], json!(0));
    assert_eq!(stats.api_calls, emu.counts().received);
    assert_eq!(stats.retries, stats.api_calls - 41, "every call past the first of a request is a retry");
    assert_eq!(v["latency_ms"]["count"].as_u64(), Some(stats.api_calls));
    assert!(v["latency_ms"]["p50"].as_u64().is_some());
    assert_eq!(v["request_latency_ms"]["count"], json!(41));
    let lines = log.lock().unwrap();
    assert!(lines.iter().any(|(l, m)| *l == Level::Info && m.starts_with("retrying")), "{lines:?}");
    for (_, m) in lines.iter() {
        assert!(!m.contains(&emu.api_key()), "{m}");
        assert!(!m.contains("-secret"), "{m}");
    }
    c.set_log_hook(None);
}

mod c_surface {
    use super::*;
    use sonoran::ffi::*;
    use std::ffi::{c_char, c_void, CStr, CString};

    unsafe extern "C" fn on_log(user_data: *mut c_void, level: i32, message: *const c_char) {
        let lines = &*(user_data as *const Mutex<Vec<(i32, String)>>);
        lines.lock().unwrap().push((level, CStr::from_ptr(message).to_string_lossy().into_owned()));
    }

    #[test]
    fn stats_log_callback_and_resume_over_the_c_abi() {
        let emu = start();
        let cfg = CString::new(format!(
            r#"{{"community_id":"{}","api_key":"bad-key-0123456789abcdef","api_url":"{}","rate_limits":{{"global":null}}}}"#,
            emu.community_id(),
            emu.base_url()
        ))
        .unwrap();
        let lines: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());
        unsafe {
            let c = sonoran_client_new(cfg.as_ptr());
            assert!(!c.is_null());
            assert_eq!(sonoran_set_log_callback(c, Some(on_log), &lines as *const _ as *mut c_void), 1);
            let data = CString::new(r#"{"apiId":"x"}"#).unwrap();
            for _ in 0..2 {
                assert!(sonoran_check_api_id(c, data.as_ptr(), None, std::ptr::null_mut()) > 0);
                let start = Instant::now();
                while sonoran_pending(c) > 0 {
                    sonoran_poll(c, 0);
                    assert!(start.elapsed() < WAIT);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let s = sonoran_stats(c);
            assert!(!s.is_null());
            let v: Value = serde_json::from_str(CStr::from_ptr(s).to_str().unwrap()).unwrap();
            sonoran_string_free(s);
            assert_eq!(v["completed"], json!({"INVALID_API_KEY": 1, "API_DISABLED": 1}));
            assert_eq!(v["disabled"]["*"]["cause"], json!("INVALID_API_KEY"));
            assert_eq!(sonoran_resume(c), 1);
            let s = sonoran_stats(c);
            let v: Value = serde_json::from_str(CStr::from_ptr(s).to_str().unwrap()).unwrap();
            sonoran_string_free(s);
            assert_eq!(v["disabled"], json!({}));
            assert_eq!(sonoran_set_log_callback(c, None, std::ptr::null_mut()), 1);
            assert!(sonoran_stats(std::ptr::null()).is_null());
            assert_eq!(sonoran_set_log_callback(std::ptr::null_mut(), None, std::ptr::null_mut()), 0);
            assert_eq!(sonoran_resume(std::ptr::null_mut()), 0);
            sonoran_client_free(c);
        }
        let lines = lines.lock().unwrap();
        assert!(lines.iter().any(|(l, m)| *l == SONORAN_LOG_ERROR && m.contains("sending stopped")), "{lines:?}");
        assert!(lines.iter().all(|(_, m)| !m.contains("bad-key-0123456789abcdef")));
    }
}
