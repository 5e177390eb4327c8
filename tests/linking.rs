//! The tablet link flow and the API ID checker against the emulator.

mod common;

use common::*;
use serde_json::json;
use sonoran::{parse_session, Client, ErrorCode, PlayerIds, SetApiIdForm};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn one(client: &Client, submit: impl FnOnce(&Client, Option<sonoran::Handler>) -> u64) -> sonoran::Completion {
    let col = Collector::default();
    let id = submit(client, col.handler());
    poll_until(client, &col, 1, WAIT);
    col.get(id)
}

fn api_calls(emu: &Emulator, path: &str) -> usize {
    emu.log().iter().filter(|e| e.path == path).count()
}

#[test]
fn not_linked_then_linked_then_already_linked() {
    let emu = start();
    let c = client_for(&emu);
    let player = ids(&["license:4f1c2a9be0d7aa", "steam:11000010AAAA001", "discord:99"]);
    let capture = parse_session(
        "console: LOGIN COMMUNITY: {TESTCOMM} USERNAME: {CivilianNoIds} SESSIONID: {75afeea-a869-4dea-b2}",
    )
    .unwrap();

    let r = one(&c, |c, h| c.is_linked(PlayerIds::Identifiers(player.clone()), h).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data, json!({"linked": false, "apiId": "11000010AAAA001"}));
    assert_eq!(&*r.request_type, "IS_LINKED");

    let r = one(&c, |c, h| c.link_from_tablet(&capture, &player, h).unwrap());
    assert_eq!(&*r.request_type, "LINK_FROM_TABLET");
    assert_eq!(r.outcome.as_ref().unwrap().data, json!({"outcome": "LINKED", "apiId": "11000010AAAA001"}));
    let set = emu.log().into_iter().rev().find(|e| e.path == "/general/set_api_id").expect("SET_API_ID sent");
    assert!(set.violations.is_empty());
    assert_eq!(
        set.body["data"],
        json!([{"username": "CivilianNoIds", "sessionId": "75afeea-a869-4dea-b2", "apiIds": ["11000010AAAA001"], "pushNew": true}])
    );
    assert_eq!(emu.account("CivilianNoIds").unwrap()["apiIds"], json!(["11000010AAAA001"]));

    // The cache was updated by the link: no new CHECK_APIID for this check.
    let checks = api_calls(&emu, "/general/check_apiid");
    let r = one(&c, |c, h| c.is_linked(PlayerIds::ApiId("11000010AAAA001".into()), h).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data, json!({"linked": true, "apiId": "11000010AAAA001"}));
    assert_eq!(api_calls(&emu, "/general/check_apiid"), checks);

    let r = one(&c, |c, h| c.link_from_tablet(&capture, &player, h).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data, json!({"outcome": "ALREADY_LINKED", "apiId": "11000010AAAA001"}));
    assert_eq!(api_calls(&emu, "/general/set_api_id"), 1, "SET_API_ID only when not linked");
}

#[test]
fn seed_form_prefix_and_other_identifier_types() {
    let emu = start();
    let mut cfg = config_for(&emu);
    cfg.set_api_id_form = SetApiIdForm::Id1;
    cfg.primary_identifier = sonoran::IdentifierType::License;
    cfg.identifier_prefix = true;
    let c = Client::new(cfg).unwrap();
    let capture = parse_session(r#"{"username": "PendingRecruit", "session": "abc-123"}"#).unwrap();
    let r = one(&c, |c, h| c.link_from_tablet(&capture, &ids(&["steam:1", "license:9f9f9f"]), h).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data, json!({"outcome": "LINKED", "apiId": "license:9f9f9f"}));
    let set = emu.log().into_iter().rev().find(|e| e.path == "/general/set_api_id").unwrap();
    assert_eq!(
        set.body["data"],
        json!([{"username": "PendingRecruit", "sessionId": "abc-123", "id1": "license:9f9f9f"}])
    );
}

#[test]
fn no_identifier_wrong_community_and_bad_input() {
    let emu = start();
    let c = client_for(&emu);
    let capture = parse_session("LOGIN COMMUNITY: {TESTCOMM} USERNAME: {CivilianNoIds} SESSIONID: {x1}").unwrap();
    let r = one(&c, |c, h| c.link_from_tablet(&capture, &ids(&["license:abc", "discord:1"]), h).unwrap());
    assert_eq!(r.code(), Some(ErrorCode::NoIdentifier));
    let r = one(&c, |c, h| c.is_linked(PlayerIds::Identifiers(vec![]), h).unwrap());
    assert_eq!(r.code(), Some(ErrorCode::NoIdentifier));

    let other = parse_session("LOGIN COMMUNITY: {OTHERCOMM} USERNAME: {CivilianNoIds} SESSIONID: {x1}").unwrap();
    let e = c.link_from_tablet(&other, &ids(&["steam:1"]), None).unwrap_err();
    assert!(e.message().starts_with("capture.community:"), "{e}");
    let e = c.is_linked(PlayerIds::Identifiers(ids(&["steam:1 2"])), None).unwrap_err();
    assert!(e.message().starts_with("identifiers[0]:"), "{e}");
    assert_eq!(emu.counts().received, 0, "nothing was sent");
}

#[test]
fn a_join_storm_makes_a_bounded_number_of_api_calls() {
    let emu = start_with(Faults { latency_ms: 20, ..Faults::default() });
    let c = client_for(&emu);
    let col = Collector::default();
    let mut submitted = Vec::new();
    // 1,000 joins of 50 players (players rejoining, several scripts asking about one player).
    for i in 0..1000 {
        let player = ids(&[&format!("steam:1100001{:08}", i % 50), "license:x"]);
        submitted.push(c.is_linked(PlayerIds::Identifiers(player), col.handler()).unwrap());
    }
    poll_until(&c, &col, 1000, WAIT);
    col.assert_each_once(&submitted);
    let calls = api_calls(&emu, "/general/check_apiid");
    assert!(calls <= 50, "{calls} CHECK_APIID calls for 50 players");
    assert!(col.results.lock().unwrap().iter().all(|(r, _)| r.is_ok()));
}

#[test]
fn errors_are_not_not_linked_and_never_poison_the_cache() {
    let emu = start_with(Faults { error_rate: 1.0, ..Faults::default() });
    let c = client_for(&emu);
    let r = one(&c, |c, h| c.is_linked(PlayerIds::ApiId("11000010499F33C".into()), h).unwrap());
    assert_eq!(r.code(), Some(ErrorCode::ServerError), "a failure is an error, never linked:false");
    let capture = parse_session("LOGIN COMMUNITY: {TESTCOMM} USERNAME: {CivilianNoIds} SESSIONID: {s1}").unwrap();
    let r = one(&c, |c, h| c.link_from_tablet(&capture, &ids(&["steam:11000010BBBB"]), h).unwrap());
    assert_eq!(r.code(), Some(ErrorCode::ServerError));
    assert_eq!(api_calls(&emu, "/general/set_api_id"), 0, "no SET_API_ID after a failed check");

    emu.set_faults(Faults::default());
    let r = one(&c, |c, h| c.is_linked(PlayerIds::ApiId("11000010499F33C".into()), h).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data, json!({"linked": true, "apiId": "11000010499F33C"}));

    emu.set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    let r = one(&c, |c, h| c.is_linked(PlayerIds::ApiId("nobody-yet".into()), h).unwrap());
    assert_eq!(r.code(), Some(ErrorCode::Network));
    emu.set_faults(Faults::default());
    let r = one(&c, |c, h| c.is_linked(PlayerIds::ApiId("nobody-yet".into()), h).unwrap());
    assert_eq!(r.outcome.as_ref().unwrap().data, json!({"linked": false, "apiId": "nobody-yet"}));
}

#[test]
fn cancelling_a_check_does_not_strand_other_waiters() {
    let emu = start_with(Faults { latency_ms: 300, ..Faults::default() });
    let c = client_for(&emu);
    let col = Collector::default();
    let first = c.is_linked(PlayerIds::ApiId("11000010499F33C".into()), col.handler()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let second = c.is_linked(PlayerIds::ApiId("11000010499F33C".into()), col.handler()).unwrap();
    assert!(c.cancel(first));
    poll_until(&c, &col, 2, WAIT);
    assert_eq!(col.get(first).code(), Some(ErrorCode::Cancelled));
    assert_eq!(col.get(second).outcome.as_ref().unwrap().data["linked"], json!(true));
}
