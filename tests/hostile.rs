//! Hostile servers and careless hosts, each a real attack over loopback: redirects to a second
//! server that records what reaches it, a server that echoes the request (and so the API key)
//! back, absurd `Retry-After` values, absurd rates, a burst that would open a socket per
//! request, answers in forms the seeds allow (JSON strings, padded text), and the emulator's
//! tolerance of what the official SDK sends.

mod common;

use common::hostile::{Received, Reply, Server};
use common::*;
use serde_json::{json, Value};
use sonoran::{Call, Client, Completion, Config, ErrorCode, Level, Rate, RateLimits};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const KEY: &str = "hostile-test-key-0123456789abcdef";
const BRIAN: &str = "11000010499F33C";

fn config_at(url: &str) -> Config {
    let mut cfg = Config::new("TESTCOMM", KEY).with_api_url(url);
    cfg.rate_limits = RateLimits::unlimited();
    cfg.retry_backoff = Duration::from_millis(10);
    cfg
}

fn run(client: &Client, call: Call) -> Completion {
    let col = Collector::default();
    let id = client.submit(call, col.handler()).expect("accepted");
    poll_until(client, &col, 1, WAIT);
    col.get(id)
}

fn check() -> Call {
    Call::check_api_id(json!({"apiId": BRIAN})).unwrap()
}

fn failure(c: &Completion) -> &sonoran::Failure {
    c.outcome.as_ref().err().unwrap_or_else(|| panic!("expected a failure, got {:?}", c.outcome))
}

/// Every piece of the key of `n` characters or more that appears in `text`.
fn key_pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = KEY.chars().collect();
    (0..=chars.len() - n)
        .map(|i| chars[i..i + n].iter().collect::<String>())
        .filter(|piece| text.contains(piece.as_str()))
        .collect()
}

fn capture_log(client: &Client) -> Arc<Mutex<Vec<(Level, String)>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    client.set_log_hook(Some(Box::new(move |level, msg| l.lock().unwrap().push((level, msg.to_string())))));
    lines
}

// ------------------------------------------------------------ the key stays at its origin

#[test]
fn a_redirect_is_never_followed_and_the_key_never_reaches_its_target() {
    for status in [301u16, 302, 303, 307, 308] {
        // The target would answer like the API: a followed redirect would be reported ok.
        let target = Server::start(|_| Reply::text(200, "SonoranBrian"));
        let to = format!("{}/general/check_apiid", target.url());
        let api = Server::start(move |_| Reply::text(status, "moved").header("location", to.clone()));
        let c = Client::new(config_at(&api.url())).unwrap();
        let r = run(&c, check());
        let f = failure(&r);
        assert_eq!((f.code, f.status), (ErrorCode::HttpError, status), "{status}: {f:?}");
        assert!(f.message.contains(&target.url()), "{status}: the message names the target origin: {}", f.message);
        assert!(f.message.contains("not followed"), "{}", f.message);
        assert!(!f.message.contains(KEY));
        assert!(target.received().is_empty(), "{status}: the redirect target received {:?}", target.received());
        assert_eq!(api.received().len(), 1, "{status}: a redirect is not retried");
    }
}

#[test]
fn a_redirect_with_a_relative_or_missing_location_names_what_it_can() {
    let api = Server::start(|r: &Received| {
        if r.target.contains("check_apiid") {
            Reply::text(307, "").header("location", "/elsewhere")
        } else {
            Reply::text(302, "")
        }
    });
    let c = Client::new(config_at(&api.url())).unwrap();
    let f = failure(&run(&c, check())).clone();
    assert!(f.message.contains(&api.url()), "{}", f.message);
    let f = failure(&run(&c, Call::get_account(json!({"username": "x"})).unwrap())).clone();
    assert_eq!(f.status, 302);
    assert!(f.message.contains("no usable Location"), "{}", f.message);
    assert_eq!(api.received().len(), 2);
}

#[test]
fn an_http_proxy_in_the_configuration_must_be_loopback_or_https() {
    let base = json!({"community_id": "TESTCOMM", "api_key": KEY});
    let with = |proxy: Value| {
        let mut v = base.clone();
        v["proxy"] = proxy;
        Config::from_value(&v)
    };
    let e = with(json!("http://proxy.example.com:3128")).unwrap_err();
    assert!(e.message().starts_with("config.proxy:"), "{e}");
    assert!(e.message().contains("loopback"), "{e}");
    assert!(with(json!("https://proxy.example.com:3128")).is_ok());
    assert!(with(json!("http://127.0.0.1:3128")).is_ok());
    assert!(with(json!(null)).unwrap().proxy.is_none());
    assert!(with(json!("socks5://127.0.0.1:1080")).unwrap_err().message().starts_with("config.proxy:"));
    assert!(with(json!(5)).unwrap_err().message().starts_with("config.proxy:"));
}

#[test]
fn a_configured_proxy_is_used() {
    let proxy = Server::start(|_| Reply::text(200, "SonoranBrian"));
    let emu = start();
    let mut cfg = config_for(&emu);
    cfg.proxy = Some(proxy.url());
    let c = Client::new(cfg).unwrap();
    assert!(run(&c, check()).is_ok());
    let got = proxy.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].target.starts_with(&emu.base_url()), "a proxy request names the whole URL: {}", got[0].target);
    assert!(emu.log().is_empty(), "the request went through the proxy, not around it");
}

// ------------------------------------------------------------ redaction

#[test]
fn a_server_that_echoes_the_request_leaks_no_piece_of_the_key() {
    // The key lands at every offset around the clipping boundary.
    for pad in [400usize, 490, 500, 505, 510, 515, 520, 600, 640] {
        let api = Server::start(move |r: &Received| Reply::text(418, format!("{}{}", "x".repeat(pad), r.body)));
        let c = Client::new(config_at(&api.url())).unwrap();
        let log = capture_log(&c);
        let r = run(&c, check());
        let text = r.to_json();
        assert!(key_pieces(&text, 6).is_empty(), "pad {pad}: {:?} leaked in {text}", key_pieces(&text, 6));
        for (_, line) in log.lock().unwrap().iter() {
            assert!(key_pieces(line, 6).is_empty(), "pad {pad}: log line {line}");
        }
    }
}

#[test]
fn an_echo_cut_off_inside_the_key_leaks_no_piece_of_it() {
    // The server cuts its echo in the middle of the key, at every length.
    for cut in 8..KEY.len() {
        let api = Server::start(move |_| Reply::text(500, format!("your request: {{\"key\":\"{}", &KEY[..cut])));
        let mut cfg = config_at(&api.url());
        cfg.max_attempts = 1;
        let c = Client::new(cfg).unwrap();
        let text = run(&c, check()).to_json();
        assert!(key_pieces(&text, 8).is_empty(), "cut {cut}: {text}");
    }
}

#[test]
fn a_key_too_short_to_redact_safely_is_refused_at_configuration() {
    for key in ["k", "API", "0123456789abcde"] {
        let e = Config::from_json(&json!({"community_id": "c", "api_key": key}).to_string()).unwrap_err();
        assert!(e.message().starts_with("config.api_key:"), "{e}");
        assert!(e.message().contains("at least 16"), "{e}");
        assert!(!e.message().contains(&format!("'{key}'")), "{e}");
        assert!(Client::new(Config::new("c", key)).is_err());
    }
    assert!(Config::from_json(&json!({"community_id": "c", "api_key": "0123456789abcdef"}).to_string()).is_ok());
}

#[test]
fn redaction_does_not_mangle_the_servers_texts() {
    // Short session ids are removed only where they stand as a word: the server's own words
    // that contain them stay whole.
    let api = Server::start(|_| Reply::text(200, "Sonoran CAD: Backend Service Reached"));
    let c = Client::new(config_at(&api.url())).unwrap();
    let r = run(
        &c,
        Call::set_api_id(json!({"username": "u", "sessionId": "Serv", "apiIds": ["x"], "pushNew": true})).unwrap(),
    );
    let f = failure(&r);
    assert_eq!(f.code, ErrorCode::InvalidEndpoint);
    assert!(f.message.contains("Sonoran CAD: Backend Service Reached"), "{}", f.message);
    let emu = start();
    let c = client_for(&emu);
    let f = failure(&run(&c, Call::check_api_id(json!({"apiId": "nobody"})).unwrap())).clone();
    assert_eq!(f.message, "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");
}

// ------------------------------------------------------------ waits the server asks for

#[test]
fn an_absurd_retry_after_is_capped_at_an_hour_and_the_log_says_so() {
    for value in ["1000000000000", "Fri, 31 Dec 9999 23:59:59 GMT", "1e300"] {
        let api = Server::start(move |_| {
            Reply::new(429, "application/json", r#"{"message":"API rate limit exceeded"}"#).header("retry-after", value)
        });
        let c = Client::new(config_at(&api.url())).unwrap();
        let log = capture_log(&c);
        let r = run(&c, check());
        let f = failure(&r);
        assert_eq!(f.code, ErrorCode::RateLimited, "{value}");
        assert_eq!(f.retry_after_ms, Some(3_600_000), "{value}: {f:?}");
        let paused = c.stats().paused["CHECK_APIID"].as_u64().unwrap();
        assert!(paused <= 3_600_000 && paused > 3_500_000, "{value}: paused {paused} ms");
        let lines = log.lock().unwrap();
        assert!(
            lines.iter().any(|(l, m)| *l == Level::Warn && m.contains("capped") && m.contains("3600 s")),
            "{value}: {lines:?}"
        );
        // resume() lifts it: the server is healthy again.
        c.resume();
        assert!(c.stats().paused.as_object().unwrap().is_empty());
    }
}

#[test]
fn rates_outside_the_documented_range_are_refused_with_the_field_named() {
    for (spec, field) in [
        (json!({"global": {"per_second": 1e-300, "burst": 1}}), "config.rate_limits.global.per_second"),
        (json!({"global": {"per_second": 0.0001, "burst": 1}}), "config.rate_limits.global.per_second"),
        (json!({"CHECK_APIID": {"per_second": 1e300, "burst": 1}}), "config.rate_limits.CHECK_APIID.per_second"),
        (json!({"global": {"per_second": 1, "burst": 0}}), "config.rate_limits.global.burst"),
    ] {
        let cfg = json!({"community_id": "c", "api_key": KEY, "rate_limits": spec});
        let e = Config::from_value(&cfg).unwrap_err();
        assert!(e.message().starts_with(field), "{spec}: {e}");
    }
    // Built in Rust, the same ranges are checked by the client.
    let mut cfg = Config::new("c", KEY);
    cfg.rate_limits.global = Some(Rate { per_second: 1e-300, burst: 1 });
    assert!(Client::new(cfg).is_err());
    // The slowest accepted rate paces without overflow: the second request waits its turn
    // and times out, it is not lost.
    let emu = start();
    let mut cfg = config_for(&emu);
    cfg.rate_limits.global = Some(Rate { per_second: 1.0 / 3600.0, burst: 1 });
    cfg.timeout = Duration::from_millis(300);
    let c = Client::new(cfg).unwrap();
    let col = Collector::default();
    let ids: Vec<u64> = (0..2).map(|_| c.submit(check(), col.handler()).unwrap()).collect();
    poll_until(&c, &col, 2, WAIT);
    col.assert_each_once(&ids);
    let codes: Vec<Option<ErrorCode>> = ids.iter().map(|id| col.get(*id).code()).collect();
    assert!(codes.contains(&None) && codes.contains(&Some(ErrorCode::Timeout)), "{codes:?}");
}

// ------------------------------------------------------------ connections

#[test]
fn a_burst_opens_no_more_connections_than_max_connections() {
    for (max, n) in [(None, 200usize), (Some(4usize), 40)] {
        let emu = start_with(Faults { latency_ms: 200, ..Faults::default() });
        let mut cfg = config_for(&emu);
        if let Some(m) = max {
            cfg.max_connections = m;
        }
        let limit = cfg.max_connections as u64;
        let c = Client::new(cfg).unwrap();
        let col = Collector::default();
        let ids: Vec<u64> = (0..n).map(|_| c.submit(check(), col.handler()).unwrap()).collect();
        poll_until(&c, &col, n, Duration::from_secs(60));
        col.assert_each_once(&ids);
        assert!(ids.iter().all(|id| col.get(*id).is_ok()));
        let counts = emu.counts();
        assert!(counts.max_open_connections <= limit, "{max:?}: {counts:?}");
        assert!(counts.max_open_connections >= limit.min(4), "the burst did run in parallel: {counts:?}");
    }
    assert_eq!(Config::new("c", KEY).max_connections, 32);
    let e = Config::from_json(&json!({"community_id": "c", "api_key": KEY, "max_connections": 0}).to_string());
    assert!(e.unwrap_err().message().starts_with("config.max_connections"));
}

// ------------------------------------------------------------ fidelity

#[test]
fn a_json_string_error_body_is_the_same_error_as_its_text() {
    let api = Server::start(|_| Reply::new(400, "application/json", r#""INVALID API KEY""#));
    let c = Client::new(config_at(&api.url())).unwrap();
    let f = failure(&run(&c, check())).clone();
    assert_eq!((f.code, f.message.as_str()), (ErrorCode::InvalidApiKey, "INVALID API KEY"));
    // And so the fatal-configuration stop engages: the next request is not sent.
    let f = failure(&run(&c, check())).clone();
    assert_eq!((f.code, f.disabled_by), (ErrorCode::ApiDisabled, Some(ErrorCode::InvalidApiKey)));
    assert_eq!(api.received().len(), 1);
}

#[test]
fn text_answers_are_trimmed_and_json_strings_unquoted() {
    let api = Server::start(|r: &Received| match r.target.as_str() {
        "/general/check_apiid" => Reply::text(200, "SonoranBrian\n"),
        "/emergency/modify_identifier" => Reply::text(200, "\"Identifier 123 removed!\""),
        "/general/get_account" => Reply::new(200, "application/json", "\"  SonoranBrian  \""),
        _ => Reply::new(200, "application/json", "4"),
    });
    let c = Client::new(config_at(&api.url())).unwrap();
    let data = |r: Completion| r.outcome.unwrap().data;
    assert_eq!(data(run(&c, check())), json!("SonoranBrian"));
    let remove = Call::modify_identifier(json!({"apiId": BRIAN, "action": 2, "identId": 123})).unwrap();
    assert_eq!(data(run(&c, remove)), json!("Identifier 123 removed!"));
    assert_eq!(data(run(&c, Call::get_account(json!({"username": "x"})).unwrap())), json!("SonoranBrian"));
    // GET_VERSION is its text, whether the server sent a JSON number or the text.
    assert_eq!(data(run(&c, Call::generic("GET_VERSION", Value::Null).unwrap())), json!("4"));
    let emu = start();
    let c = client_for(&emu);
    assert_eq!(data(run(&c, Call::generic("GET_VERSION", Value::Null).unwrap())), json!("4"));
}

#[test]
fn an_empty_id2_is_sent_and_clears_that_slot() {
    let emu = start();
    let c = client_for(&emu);
    let before = emu.account("OfficerJones").unwrap();
    assert_eq!(before["apiIds"][1], json!("license:4f1c2a9be0d7"), "{before}");
    let r = run(&c, Call::set_api_id(json!({"username": "OfficerJones", "id2": ""})).unwrap());
    assert!(r.is_ok(), "{r:?}");
    let sent = emu.log().pop().unwrap();
    assert_eq!(sent.body["data"][0]["id2"], json!(""));
    assert!(sent.violations.is_empty(), "{:?}", sent.violations);
    let after = emu.account("OfficerJones").unwrap();
    assert_eq!(after["apiIds"][1], json!(""), "{after}");
    assert_eq!(after["apiIds"][0], before["apiIds"][0]);
}

#[test]
fn get_servers_reaches_the_emulator_like_the_official_sdks_start_up_call() {
    let emu = start();
    let c = client_for(&emu);
    let r = run(&c, Call::generic("GET_SERVERS", Value::Null).unwrap());
    let data = r.outcome.expect("GET_SERVERS answers").data;
    assert_eq!(data["servers"][0]["id"], json!(1));
    assert_eq!(emu.log().pop().unwrap().path, "/general/get_servers");
}
