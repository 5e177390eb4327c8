//! The core against the emulator over loopback HTTP: request bodies on the wire, every error
//! code, refusals, cancellation, shutdown, both delivery modes, and the API key kept secret.

mod common;

use common::*;
use serde_json::{json, Value};
use sonoran::{Call, Client, Config, Delivery, ErrorCode};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Submit one call, poll until its result arrives, return it.
fn run(client: &Client, call: Call) -> sonoran::Completion {
    let col = Collector::default();
    let id = client.submit(call, col.handler()).expect("accepted");
    poll_until(client, &col, 1, WAIT);
    col.get(id)
}

fn code(c: &sonoran::Completion) -> ErrorCode {
    c.code().unwrap_or_else(|| panic!("expected a failure, got {:?}", c.outcome))
}

fn message(c: &sonoran::Completion) -> String {
    c.outcome.as_ref().err().map(|f| f.message.clone()).unwrap_or_default()
}

/// The last request the emulator saw: its path and body, and no wire violation.
fn last_wire(emu: &Emulator) -> (String, Value) {
    let log = emu.log();
    let e = log.last().expect("the emulator received a request");
    assert!(e.violations.is_empty(), "wire violations: {:?}", e.violations);
    assert!(e.content_type.as_deref().unwrap_or("").starts_with("application/json"));
    (e.path.clone(), e.body.clone())
}

fn expect_body(emu: &Emulator, path: &str, ty: &str, data: Value) {
    let (p, body) = last_wire(emu);
    assert_eq!(p, path);
    assert_eq!(
        body,
        json!({"id": emu.community_id(), "key": emu.api_key(), "type": ty, "data": data}),
        "body on the wire"
    );
}

#[test]
fn every_typed_call_sends_its_documented_body() {
    let emu = start();
    let c = client_for(&emu);

    let r = run(&c, Call::check_api_id(json!({"apiId": "11000010499F33C"})).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data, json!("SonoranBrian"));
    expect_body(&emu, "/general/check_apiid", "CHECK_APIID", json!([{"apiId": "11000010499F33C"}]));

    let r = run(&c, Call::get_account(json!({"username": "SonoranBrian"})).unwrap());
    let acct = &r.outcome.as_ref().unwrap().data;
    assert_eq!(acct["uuid"], json!("91de0ce8-c571-11e9-9714-5600023b2434"));
    assert_eq!(acct["permissions"]["polRecEdit"], json!(true));
    expect_body(&emu, "/general/get_account", "GET_ACCOUNT", json!([{"username": "SonoranBrian"}]));

    // The current form: apiIds + pushNew.
    let r = run(
        &c,
        Call::set_api_id(
            json!({"username": "CivilianNoIds", "sessionId": "2daf5d1-8256-4373-9a", "apiIds": ["steam:1100001AAAA"]}),
        )
        .unwrap(),
    );
    assert_eq!(r.outcome.as_ref().unwrap().data, json!("API ID(s) set!"));
    expect_body(
        &emu,
        "/general/set_api_id",
        "SET_API_ID",
        json!([{"username": "CivilianNoIds", "sessionId": "2daf5d1-8256-4373-9a", "apiIds": ["steam:1100001AAAA"]}]),
    );
    // The seed's form: id1 / id2.
    let r = run(
        &c,
        Call::set_api_id(json!({"username": "CivilianNoIds", "id1": "11000010499F000", "id2": "Other"})).unwrap(),
    );
    assert!(r.is_ok(), "{:?}", r.outcome);
    expect_body(
        &emu,
        "/general/set_api_id",
        "SET_API_ID",
        json!([{"username": "CivilianNoIds", "id1": "11000010499F000", "id2": "Other"}]),
    );
    assert_eq!(emu.account("CivilianNoIds").unwrap()["apiIds"], json!(["11000010499F000", "Other"]));

    let r = run(
        &c,
        Call::link_character(json!({"apiId": "11000010499F33C", "syncId": "char-7", "action": "ADD"})).unwrap(),
    );
    assert!(r
        .outcome
        .as_ref()
        .unwrap()
        .data
        .as_str()
        .unwrap()
        .starts_with("Linked char sync ID 'char-7' to user 'SonoranBrian'"));
    expect_body(
        &emu,
        "/civilian/link_character",
        "LINK_CHARACTER",
        json!([{"apiId": "11000010499F33C", "syncId": "char-7", "action": 0}]),
    );

    let ident = json!({"status": 2, "location": "Legion Square", "aop": "City", "data": {"unitNum": "1A-12", "name": "Brian", "department": "LSPD"}});
    let r = run(
        &c,
        Call::modify_identifier(json!({"apiId": "11000010499F33C", "action": 0, "identifier": ident})).unwrap(),
    );
    let created = r.outcome.as_ref().unwrap().data.clone();
    let ident_id = created["id"].as_u64().expect("identifier id");
    expect_body(
        &emu,
        "/emergency/modify_identifier",
        "MODIFY_IDENTIFIER",
        json!([{"apiId": "11000010499F33C", "action": 0, "identifier": ident}]),
    );
    let r = run(&c, Call::modify_identifier(json!({"apiId": "11000010499F33C", "action": "EDIT", "identId": ident_id, "identifier": {"status": "BUSY"}})).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data["status"], json!(1));
    let r = run(
        &c,
        Call::modify_identifier(json!({"apiId": "11000010499F33C", "action": 2, "identId": ident_id})).unwrap(),
    );
    assert_eq!(r.outcome.as_ref().unwrap().data, json!(format!("Identifier {ident_id} removed!")));
    expect_body(
        &emu,
        "/emergency/modify_identifier",
        "MODIFY_IDENTIFIER",
        json!([{"apiId": "11000010499F33C", "action": 2, "identId": ident_id}]),
    );

    let r = run(&c, Call::set_account_permissions(json!({"username": "OfficerJones", "add": ["POLRECEDIT", "LIVEMAP"], "remove": ["CIVILIAN"], "active": true})).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data, json!("User account permissions updated."));
    expect_body(
        &emu,
        "/general/set_account_permissions",
        "SET_ACCOUNT_PERMISSIONS",
        json!([{"username": "OfficerJones", "add": ["POLRECEDIT", "LIVEMAP"], "remove": ["CIVILIAN"], "active": true}]),
    );
    assert_eq!(emu.account("OfficerJones").unwrap()["permissions"]["polRecEdit"], json!(true));

    // Generic request: any type, here GET_VERSION, whose data may be empty.
    let r = run(&c, Call::generic("GET_VERSION", Value::Null).unwrap());
    assert!(r.is_ok(), "{:?}", r.outcome);
    expect_body(&emu, "/general/get_version", "GET_VERSION", json!([]));

    // An array of request objects goes out as one call.
    let r = run(&c, Call::check_api_id(json!([{"apiId": "11000010499F33C"}, {"apiId": "110000112345678"}])).unwrap());
    assert!(r.is_ok(), "{:?}", r.outcome);
    expect_body(
        &emu,
        "/general/check_apiid",
        "CHECK_APIID",
        json!([{"apiId": "11000010499F33C"}, {"apiId": "110000112345678"}]),
    );
}

#[test]
fn result_envelope_has_the_documented_shape() {
    let emu = start();
    let c = client_for(&emu);
    let ok = run(&c, Call::check_api_id(json!({"apiId": "11000010499F33C"})).unwrap());
    let v: Value = serde_json::from_str(&ok.to_json()).unwrap();
    assert_eq!(v, json!({"id": ok.id, "type": "CHECK_APIID", "ok": true, "status": 200, "data": "SonoranBrian"}));
    let bad = run(&c, Call::check_api_id(json!({"apiId": "nobody"})).unwrap());
    let v: Value = serde_json::from_str(&bad.to_json()).unwrap();
    assert_eq!(
        v,
        json!({"id": bad.id, "type": "CHECK_APIID", "ok": false, "status": 404,
               "error": {"code": "NOT_LINKED", "message": "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY"}})
    );
}

#[test]
fn each_documented_error_string_maps_to_its_code() {
    let emu = start();
    let key = emu.api_key();

    let mut cfg = config_for(&emu);
    cfg.community_id = "WRONGCOMM".into();
    let c = Client::new(cfg).unwrap();
    let r = run(&c, Call::get_account(json!({"username": "SonoranBrian"})).unwrap());
    assert_eq!((code(&r), r.outcome.as_ref().unwrap_err().status), (ErrorCode::InvalidCommunityId, 400));

    let cfg = Config::new(emu.community_id(), "not-the-key-0123456789").with_api_url(&emu.base_url());
    let c = Client::new(cfg).unwrap();
    let r = run(&c, Call::get_account(json!({"username": "SonoranBrian"})).unwrap());
    assert_eq!(code(&r), ErrorCode::InvalidApiKey);
    assert!(!message(&r).contains("not-the-key-0123456789"));

    let c = client_for(&emu);
    let r = run(&c, Call::check_api_id(json!({"apiId": "STEAM:nobody"})).unwrap());
    assert_eq!((code(&r), r.outcome.as_ref().unwrap_err().status), (ErrorCode::NotLinked, 404));
    assert_eq!(message(&r), "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");

    // A type sent to another type's path: the API answers INVALID REQUEST TYPE.
    let mut cfg = config_for(&emu);
    cfg.paths.insert("GET_ACCOUNT".into(), "/general/check_apiid".into());
    let c = Client::new(cfg).unwrap();
    let r = run(&c, Call::get_account(json!({"username": "SonoranBrian"})).unwrap());
    assert_eq!(code(&r), ErrorCode::InvalidRequestType);

    // A registered section the backend does not serve: HTTP 200 "Backend Service Reached".
    let mut cfg = config_for(&emu);
    cfg.sections.insert("GET_LOGS".into(), "general".into());
    let c = Client::new(cfg).unwrap();
    let r = run(&c, Call::generic("GET_LOGS", json!({})).unwrap());
    assert_eq!((code(&r), r.outcome.as_ref().unwrap_err().status), (ErrorCode::InvalidEndpoint, 200));
    assert!(message(&r).contains("Backend Service Reached"), "{}", message(&r));

    // The seed's plural path for MODIFY_IDENTIFIER is selectable by configuration.
    let mut cfg = config_for(&emu);
    cfg.paths.insert("MODIFY_IDENTIFIER".into(), "/emergency/modify_identifiers".into());
    let c = Client::new(cfg).unwrap();
    let r = run(
        &c,
        Call::modify_identifier(json!({"apiId": "11000010499F33C", "action": 0, "identifier": {"status": 2}})).unwrap(),
    );
    assert!(r.is_ok(), "{:?}", r.outcome);
    assert_eq!(emu.log().last().unwrap().path, "/emergency/modify_identifiers");

    // An answer over max_response_bytes: BAD_RESPONSE, not buffered whole.
    let mut cfg = config_for(&emu);
    cfg.max_response_bytes = 1024;
    let c = Client::new(cfg).unwrap();
    let r = run(&c, Call::get_account(json!([{"username": "SonoranBrian"}, {"username": "OfficerJones"}])).unwrap());
    assert_eq!(code(&r), ErrorCode::BadResponse);
    assert!(message(&r).contains("max_response_bytes"), "{}", message(&r));

    assert!(!message(&r).contains(&key));
}

#[test]
fn api_not_enabled_for_a_disabled_type() {
    let mut fixture = emulator::Fixture::default_fixture();
    fixture.disabled_types = vec!["GET_ACCOUNT".into(), "SET_ACCOUNT_PERMISSIONS".into()];
    let emu = Emulator::start(Options { fixture, ..Options::default() }).unwrap();
    let c = client_for(&emu);
    let r = run(&c, Call::get_account(json!({"username": "SonoranBrian"})).unwrap());
    assert_eq!(code(&r), ErrorCode::ApiNotEnabled);
    assert_eq!(message(&r), "API IS NOT ENABLED FOR THIS COMMUNITY");
    let r = run(&c, Call::set_account_permissions(json!({"username": "SonoranBrian", "add": ["DMV"]})).unwrap());
    assert_eq!(code(&r), ErrorCode::ApiNotEnabled);
    assert_eq!(message(&r), "API ENDPOINT IS NOT ENABLED FOR THIS COMMUNITY");
}

#[test]
fn server_errors_rate_limits_and_http_errors() {
    let emu = start_with(Faults { error_rate: 1.0, ..Faults::default() });
    let c = client_for(&emu);
    let r = run(&c, Call::check_api_id(json!({"apiId": "x"})).unwrap());
    assert_eq!(code(&r), ErrorCode::ServerError);
    assert!(r.outcome.as_ref().unwrap_err().status >= 500);

    // How a 429 is reported, with automatic retries off (max_attempts 1) and a fresh client per
    // case so that one case's 429 pause does not hold the next (tests/faults.rs covers retries).
    let no_retry = || {
        let mut cfg = config_for(&emu);
        cfg.max_attempts = 1;
        Client::new(cfg).unwrap()
    };
    for (mode, expect_ms) in [(RetryAfter::Fixed(7), Some(7000)), (RetryAfter::None, None)] {
        let rl = RateLimit { burst: 0, per_second: 0.001, retry_after: mode, tolerance_ms: 0 };
        emu.set_faults(Faults { rate_limit: Some(rl), ..Faults::default() });
        let c = no_retry();
        let r = run(&c, Call::check_api_id(json!({"apiId": "x"})).unwrap());
        assert_eq!(code(&r), ErrorCode::RateLimited);
        let f = r.outcome.as_ref().unwrap_err();
        assert_eq!((f.status, f.retry_after_ms), (429, expect_ms));
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v.get("retry_after_ms").and_then(Value::as_u64), expect_ms);
    }
    let rl = RateLimit { burst: 0, per_second: 0.1, retry_after: RetryAfter::HttpDate, tolerance_ms: 0 };
    emu.set_faults(Faults { rate_limit: Some(rl), ..Faults::default() });
    let r = run(&no_retry(), Call::check_api_id(json!({"apiId": "x"})).unwrap());
    let ms = r.outcome.as_ref().unwrap_err().retry_after_ms.expect("HTTP-date Retry-After parsed");
    assert!(ms <= 11_000, "{ms}");

    // Any other status: HTTP_ERROR (the emulator answers 400 to a body it finds malformed).
    emu.set_faults(Faults::default());
    let mut cfg = config_for(&emu);
    cfg.paths.insert("UNIT_STATUS".into(), "/general/check_apiid".into());
    let c = Client::new(cfg).unwrap();
    let r = run(&c, Call::generic("UNIT_STATUS", json!({"apiId": "x", "status": 2})).unwrap());
    assert!(matches!(code(&r), ErrorCode::InvalidRequestType | ErrorCode::HttpError), "{:?}", r.outcome);
}

#[test]
fn timeouts_dropped_connections_and_refused_connections() {
    let emu = start_with(Faults { hang_rate: 1.0, ..Faults::default() });
    let mut cfg = config_for(&emu);
    cfg.timeout = Duration::from_millis(300);
    let c = Client::new(cfg).unwrap();
    let r = run(&c, Call::check_api_id(json!({"apiId": "x"})).unwrap());
    assert_eq!(code(&r), ErrorCode::Timeout);
    assert_eq!(r.outcome.as_ref().unwrap_err().status, 0);
    assert!(message(&r).contains("300 ms"), "{}", message(&r));

    emu.set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    let r = run(&c, Call::check_api_id(json!({"apiId": "x"})).unwrap());
    assert_eq!(code(&r), ErrorCode::Network, "{:?}", r.outcome);

    // Connection refused: a loopback port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = Config::new("TESTCOMM", "k-secret-123-0123456789").with_api_url(&format!("http://127.0.0.1:{port}"));
    let c = Client::new(cfg).unwrap();
    let r = run(&c, Call::check_api_id(json!({"apiId": "x"})).unwrap());
    assert_eq!(code(&r), ErrorCode::Network);
    let m = message(&r);
    assert!(m.starts_with("could not connect"), "{m}");
    assert!(m.to_lowercase().contains("refused"), "the cause chain names the OS error: {m}");
    assert!(!m.contains("k-secret-123-0123456789"));
}

#[test]
fn invalid_input_is_refused_and_nothing_is_sent() {
    let emu = start();
    let c = client_for(&emu);
    let refusals = [
        Call::set_api_id(json!({"apiIds": ["x"]})),
        Call::set_api_id(json!({"username": "a", "apiIds": "x"})),
        Call::set_api_id(json!({"username": "a", "id1": "x", "apiIds": ["y"]})),
        Call::link_character(json!({"apiId": "a", "syncId": "b", "action": 1})),
        Call::modify_identifier(json!({"apiId": "a", "action": 0})),
        Call::set_account_permissions(json!({"apiId": "a", "add": ["POLICERECEDIT"]})),
        Call::set_account_permissions(json!({"username": "a", "join": true})),
        Call::get_account(json!({"apiId": "a", "username": "b"})),
        Call::check_api_id(json!({"apiId": ""})),
        Call::check_api_id(json!([])),
        Call::generic("lower_case", json!({})),
        Call::generic("UNIT_STATUS", json!(42)),
    ];
    for r in &refusals {
        let e = r.as_ref().expect_err("refused");
        assert!(e.message().contains(':'), "names a field: {e}");
    }
    // Types with no known section are refused at submit.
    let e = c.submit(Call::generic("NOT_A_REAL_TYPE", json!({})).unwrap(), None).unwrap_err();
    assert!(e.message().contains("sections"), "{e}");
    assert_eq!(emu.counts().received, 0, "nothing reached the API");
    assert_eq!(c.pending(), 0);
}

#[test]
fn configuration_is_checked() {
    let e = Config::from_json(r#"{"community_id":"c","api_key":"key-0123456789abcdef","colour":"red"}"#).unwrap_err();
    assert!(e.message().contains("'colour'"), "{e}");
    let e = Config::from_json(r#"{"community_id":"c"}"#).unwrap_err();
    assert!(e.message().contains("config.api_key"), "{e}");
    let e =
        Config::from_json(r#"{"community_id":"c","api_key":"key-0123456789abcdef","api_url":"http://example.com"}"#)
            .unwrap_err();
    assert!(e.message().contains("loopback"), "{e}");
    assert!(Config::from_json(
        r#"{"community_id":"c","api_key":"key-0123456789abcdef","api_url":"http://example.com","allow_insecure_http":true}"#
    )
    .is_ok());
    assert!(Config::from_json(r#"{"community_id":"c","api_key":"key-0123456789abcdef","api_url":"http://[::1]:9"}"#)
        .is_ok());
    let e = Config::from_json("{\"community_id\":\"c\",\"api_key\":\"k\\u0007ey\"}").unwrap_err();
    assert!(e.message().contains("control"), "{e}");
    let e = Config::from_json(r#"{"community_id":"c","api_key":"top-secret-key-0123456789","timeout_ms":"soon"}"#)
        .unwrap_err();
    assert!(!e.message().contains("top-secret-key-0123456789"));
    let c = Config::from_json(r#"{"community_id":"c","api_key":"top-secret-key-0123456789","api_url":"development"}"#)
        .unwrap();
    assert_eq!(c.base_url, "https://staging-api.dev.sonorancad.com");
    assert!(!format!("{c:?}").contains("top-secret-key-0123456789"), "Debug never shows the key");
}

#[test]
fn cancel_completes_once_with_cancelled() {
    let emu = start_with(Faults { hang_rate: 1.0, ..Faults::default() });
    let c = client_for(&emu);
    let col = Collector::default();
    let id = c.submit(Call::check_api_id(json!({"apiId": "x"})).unwrap(), col.handler()).unwrap();
    assert!(c.cancel(id));
    assert!(!c.cancel(id), "a second cancel finds nothing");
    assert!(!c.cancel(987_654), "unknown id");
    poll_until(&c, &col, 1, WAIT);
    assert_eq!(code(&col.get(id)), ErrorCode::Cancelled);
    std::thread::sleep(Duration::from_millis(50));
    c.poll(0, |_| {});
    col.assert_each_once(&[id]);
    assert_eq!(c.pending(), 0);
}

#[test]
fn queue_full_is_refused() {
    let emu = start_with(Faults { hang_rate: 1.0, ..Faults::default() });
    let mut cfg = config_for(&emu);
    cfg.max_pending = 3;
    let c = Client::new(cfg).unwrap();
    for _ in 0..3 {
        c.submit(Call::check_api_id(json!({"apiId": "x"})).unwrap(), None).unwrap();
    }
    let e = c.submit(Call::check_api_id(json!({"apiId": "x"})).unwrap(), None).unwrap_err();
    assert!(e.message().contains("max_pending"), "{e}");
}

#[test]
fn thread_delivery_runs_callbacks_on_the_delivery_thread() {
    let emu = start();
    let mut cfg = config_for(&emu);
    cfg.delivery = Delivery::Thread;
    let c = Client::new(cfg).unwrap();
    let col = Collector::default();
    let ids: Vec<u64> = (0..50)
        .map(|_| c.submit(Call::check_api_id(json!({"apiId": "11000010499F33C"})).unwrap(), col.handler()).unwrap())
        .collect();
    let start = std::time::Instant::now();
    while col.len() < ids.len() {
        assert!(start.elapsed() < WAIT);
        assert_eq!(c.poll(0, |_| {}), 0, "nothing to poll in thread delivery");
        std::thread::sleep(Duration::from_millis(2));
    }
    col.assert_each_once(&ids);
    for (completion, thread) in col.results.lock().unwrap().iter() {
        assert!(completion.is_ok());
        assert_eq!(thread, "sonoran-delivery");
    }
    assert_eq!(c.pending(), 0);
}

#[test]
fn a_callback_may_submit_a_new_request() {
    let emu = start();
    let c = std::sync::Arc::new(client_for(&emu));
    let col = Collector::default();
    let inner = col.clone();
    let weak = std::sync::Arc::downgrade(&c);
    c.submit(
        Call::check_api_id(json!({"apiId": "11000010499F33C"})).unwrap(),
        Some(Box::new(move |first| {
            let client = weak.upgrade().unwrap();
            assert!(first.is_ok());
            client.submit(Call::get_account(json!({"username": "SonoranBrian"})).unwrap(), inner.handler()).unwrap();
        })),
    )
    .unwrap();
    poll_until(&c, &col, 1, WAIT);
    assert!(col.results.lock().unwrap()[0].0.is_ok());
}

#[test]
fn the_api_key_is_in_no_error_text() {
    let emu = start();
    let key = emu.api_key();
    let mut texts = Vec::new();
    let c = client_for(&emu);
    for faults in [
        Faults::default(),
        Faults { error_rate: 1.0, ..Faults::default() },
        Faults { drop_rate: 1.0, ..Faults::default() },
        Faults { rate_limit: Some(RateLimit::new(0, 0.01)), ..Faults::default() },
    ] {
        emu.set_faults(faults);
        let r = run(&c, Call::check_api_id(json!({"apiId": "nobody"})).unwrap());
        assert!(!r.is_ok());
        texts.push(r.to_json());
    }
    emu.set_faults(Faults { hang_rate: 1.0, ..Faults::default() });
    let mut cfg = config_for(&emu);
    cfg.timeout = Duration::from_millis(100);
    texts.push(format!("{cfg:?}"));
    let c = Client::new(cfg).unwrap();
    texts.push(run(&c, Call::check_api_id(json!({"apiId": "x"})).unwrap()).to_json());
    let mut cfg = config_for(&emu);
    cfg.sections.insert("GET_LOGS".into(), "general".into());
    emu.set_faults(Faults::default());
    let c = Client::new(cfg).unwrap();
    texts.push(run(&c, Call::generic("GET_LOGS", json!({})).unwrap()).to_json());
    for t in &texts {
        assert!(!t.contains(&key), "the API key leaked into: {t}");
    }
    assert_eq!(texts.len(), 7);
}
