//! Tests of the offline emulator itself, over loopback HTTP.

#[path = "../examples/emulator/mod.rs"]
mod emulator;

use emulator::{Emulator, Faults, Fixture, Options, Outcome, RateLimit, RetryAfter};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const BRIAN_ID: &str = "11000010499F33C";
const BRIAN_UUID: &str = "91de0ce8-c571-11e9-9714-5600023b2434";
const PENDING_UUID: &str = "0f9e8d7c-6b5a-4932-8170-fedcba987654";

fn start() -> Emulator {
    Emulator::start(Options::default()).expect("emulator starts")
}

fn start_with(faults: Faults) -> Emulator {
    Emulator::start(Options { faults, ..Options::default() }).expect("emulator starts")
}

fn client() -> reqwest::Client {
    client_timeout(Duration::from_secs(10))
}

fn client_timeout(t: Duration) -> reqwest::Client {
    // reqwest is built without a default TLS provider (the library brings its own configured
    // one); this test's plain client needs a process default even for http:// URLs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().no_proxy().timeout(t).build().expect("client")
}

#[derive(Debug)]
struct Resp {
    status: u16,
    ctype: String,
    body: String,
    retry_after: Option<String>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

async fn send(c: &reqwest::Client, url: String, ctype: Option<&str>, body: String) -> Result<Resp, reqwest::Error> {
    let mut rb = c.post(url).body(body);
    if let Some(ct) = ctype {
        rb = rb.header("Content-Type", ct);
    }
    let r = rb.send().await?;
    let status = r.status().as_u16();
    let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let ctype = h("content-type").unwrap_or_default();
    let retry_after = h("retry-after");
    let body = r.text().await?;
    Ok(Resp { status, ctype, body, retry_after })
}

async fn post(emu: &Emulator, path: &str, body: &Value) -> Resp {
    send(&client(), format!("{}{}", emu.base_url(), path), Some("application/json"), body.to_string())
        .await
        .expect("answered")
}

fn envelope(emu: &Emulator, ty: &str, data: Value) -> Value {
    json!({"id": emu.community_id(), "key": emu.api_key(), "type": ty, "data": data})
}

fn path_of(ty: &str) -> &'static str {
    match ty {
        "SET_API_ID" => "/general/set_api_id",
        "CHECK_APIID" => "/general/check_apiid",
        "GET_VERSION" => "/general/get_version",
        "GET_SERVERS" => "/general/get_servers",
        "GET_ACCOUNT" => "/general/get_account",
        "SET_ACCOUNT_PERMISSIONS" => "/general/set_account_permissions",
        "LINK_CHARACTER" => "/civilian/link_character",
        "MODIFY_IDENTIFIER" => "/emergency/modify_identifier",
        _ => panic!("unknown type {ty}"),
    }
}

async fn call(emu: &Emulator, ty: &str, data: Value) -> Resp {
    post(emu, path_of(ty), &envelope(emu, ty, data)).await
}

fn assert_text(r: &Resp, status: u16, body: &str) {
    assert_eq!((r.status, r.body.as_str()), (status, body), "{r:?}");
    assert!(r.ctype.starts_with("text/plain"), "{r:?}");
}

fn assert_malformed(r: &Resp, needle: &str) {
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.starts_with("EMULATOR: MALFORMED REQUEST: "), "{r:?}");
    assert!(r.body.contains(needle), "expected `{needle}` in {r:?}");
}

// ---------------------------------------------------------------- routes

#[tokio::test]
async fn check_apiid_linked_trimmed_case_sensitive_and_unlinked() {
    let emu = start();
    let r = call(&emu, "CHECK_APIID", json!([{"apiId": BRIAN_ID}])).await;
    assert_text(&r, 200, "SonoranBrian");
    let r = call(&emu, "CHECK_APIID", json!([{"apiId": format!("  {BRIAN_ID} ")}])).await;
    assert_text(&r, 200, "SonoranBrian");
    let r = call(&emu, "CHECK_APIID", json!([{"apiId": BRIAN_ID.to_lowercase()}])).await;
    assert_text(&r, 404, "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");
    let r = call(&emu, "CHECK_APIID", json!([{"apiId": "steam:nobody"}])).await;
    assert_text(&r, 404, "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");
    // The empty second slot of an account never matches.
    let r = call(&emu, "CHECK_APIID", json!([{"apiId": ""}])).await;
    assert_malformed(&r, "data[0].apiId: must not be empty");
}

#[tokio::test]
async fn get_version_with_empty_or_absent_data() {
    let emu = start();
    assert_text(&call(&emu, "GET_VERSION", json!([])).await, 200, "4");
    let body = json!({"id": emu.community_id(), "key": emu.api_key(), "type": "GET_VERSION"});
    assert_text(&post(&emu, "/general/get_version", &body).await, 200, "4");
    let r = call(&emu, "GET_VERSION", json!([{"extra": 1}])).await;
    assert_malformed(&r, "unknown key `extra`");
}

#[tokio::test]
async fn get_servers_answers_the_fixture_servers_to_what_the_official_sdk_sends() {
    let emu = start();
    // The official JavaScript SDK's start-up call: an extra envelope key, and no request object.
    let body = json!({"id": emu.community_id(), "key": emu.api_key(), "type": "GET_SERVERS", "data": [], "product": 0});
    let r = post(&emu, "/general/get_servers", &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.ctype.starts_with("application/json"), "{r:?}");
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let servers = v["servers"].as_array().expect("a servers array");
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["id"], json!(1));
    assert!(servers[0]["listenerPort"].is_string());
    let r = call(&emu, "GET_SERVERS", json!([{"extra": 1}])).await;
    assert_malformed(&r, "unknown key `extra`");
}

#[tokio::test]
async fn get_account_by_each_selector() {
    let emu = start();
    for sel in [json!({"username": "SonoranBrian"}), json!({"apiId": BRIAN_ID}), json!({"account": BRIAN_UUID})] {
        let r = call(&emu, "GET_ACCOUNT", json!([sel])).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.ctype.starts_with("application/json"), "{r:?}");
        assert!(r.body.starts_with("{\"uuid\":"), "documented field order: {}", r.body);
        let a = r.json();
        assert_eq!(a["uuid"], BRIAN_UUID);
        assert_eq!(a["username"], "SonoranBrian");
        assert_eq!(a["status"], 1);
        assert_eq!(a["joined"], "2019-10-12T20:41:52.400299");
        assert_eq!(a["lastLogin"], "2020-08-15T13:43:17.607111");
        assert_eq!(a["apiIds"], json!([BRIAN_ID, ""]));
        let perms = a["permissions"].as_object().unwrap();
        assert_eq!(perms.len(), 41);
        assert!(perms.values().all(|v| v == &json!(true)));
        assert!(a.get("syncIds").is_none(), "emulator extras stay out of the wire object");
    }
    let r = call(&emu, "GET_ACCOUNT", json!([{"username": "Nobody"}])).await;
    assert_text(&r, 404, "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");
    let r = call(&emu, "GET_ACCOUNT", json!([{"username": "SonoranBrian", "apiId": BRIAN_ID}])).await;
    assert_malformed(&r, "only one of");
    // The pending account is still found.
    let r = call(&emu, "GET_ACCOUNT", json!([{"account": PENDING_UUID}])).await;
    assert_eq!(r.json()["status"], 0);
}

#[tokio::test]
async fn set_api_id_id1_id2_form() {
    let emu = start();
    // Only id2: id1 left untouched.
    let r = call(
        &emu,
        "SET_API_ID",
        json!([{"username": "OfficerJones", "sessionId": "75afeea-a869-4dea-b2", "id2": " discord:42 "}]),
    )
    .await;
    assert_text(&r, 200, "API ID(s) set!");
    assert_eq!(emu.account("OfficerJones").unwrap()["apiIds"], json!(["110000112345678", "discord:42"]));
    // An account without IDs gets padded.
    let r =
        call(&emu, "SET_API_ID", json!([{"account": "e5d8c1b0-9a7f-4e6d-b5c4-a3b2c1d0e9f8", "id1": "steam:1"}])).await;
    assert_text(&r, 200, "API ID(s) set!");
    assert_eq!(emu.account("CivilianNoIds").unwrap()["apiIds"], json!(["steam:1", ""]));
    assert_text(&call(&emu, "CHECK_APIID", json!([{"apiId": "steam:1"}])).await, 200, "CivilianNoIds");
    // A blank id still overrides.
    call(&emu, "SET_API_ID", json!([{"username": "OfficerJones", "id2": ""}])).await;
    assert_eq!(emu.account("OfficerJones").unwrap()["apiIds"], json!(["110000112345678", ""]));
    assert_eq!(emu.counts().applied, 3);
}

#[tokio::test]
async fn set_api_id_list_form_push_new_duplicates_trim_case() {
    let emu = start();
    let r =
        call(&emu, "SET_API_ID", json!([{"username": "CivilianNoIds", "apiIds": [" ABC ", "abc", "ABC", "", "  "]}]))
            .await;
    assert_text(&r, 200, "API ID(s) set!");
    assert_eq!(emu.account("CivilianNoIds").unwrap()["apiIds"], json!(["ABC", "abc"]));
    // pushNew default true: append new ones only.
    call(&emu, "SET_API_ID", json!([{"username": "CivilianNoIds", "apiIds": ["abc", "license:9"]}])).await;
    assert_eq!(emu.account("CivilianNoIds").unwrap()["apiIds"], json!(["ABC", "abc", "license:9"]));
    assert_text(
        &call(&emu, "CHECK_APIID", json!([{"apiId": "Abc"}])).await,
        404,
        "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY",
    );
    assert_text(&call(&emu, "CHECK_APIID", json!([{"apiId": "abc"}])).await, 200, "CivilianNoIds");
    // pushNew false: replace.
    call(
        &emu,
        "SET_API_ID",
        json!([{"username": "CivilianNoIds", "apiIds": ["steam:7", "steam:7"], "pushNew": false}]),
    )
    .await;
    assert_eq!(emu.account("CivilianNoIds").unwrap()["apiIds"], json!(["steam:7"]));
    assert_text(
        &call(&emu, "CHECK_APIID", json!([{"apiId": "ABC"}])).await,
        404,
        "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY",
    );
}

#[tokio::test]
async fn set_api_id_errors() {
    let emu = start();
    let r = call(&emu, "SET_API_ID", json!([{"username": "Nobody", "id1": "x"}])).await;
    assert_text(&r, 404, "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");
    let r = call(&emu, "SET_API_ID", json!([{"username": "SonoranBrian", "id1": "x", "apiIds": ["y"]}])).await;
    assert_malformed(&r, "not both");
    let r = call(&emu, "SET_API_ID", json!([{"username": "SonoranBrian"}])).await;
    assert_malformed(&r, "one of `id1`, `id2` or `apiIds` is required");
    let r = call(&emu, "SET_API_ID", json!([{"username": "SonoranBrian", "id1": "x", "pushNew": true}])).await;
    assert_malformed(&r, "pushNew: only valid with `apiIds`");
    let r = call(&emu, "SET_API_ID", json!([{"username": "SonoranBrian", "apiIds": ["x", 5]}])).await;
    assert_malformed(&r, "apiIds[1]: expected string, got integer");
    assert_eq!(emu.account("SonoranBrian").unwrap()["apiIds"], json!([BRIAN_ID, ""]));
    assert_eq!(emu.counts().applied, 0);
}

#[tokio::test]
async fn account_permissions_add_remove_set_active_join() {
    let emu = start();
    let r = call(&emu, "SET_ACCOUNT_PERMISSIONS", json!([{"username": "CivilianNoIds", "add": ["POLICE", "LIVEMAP", "POLRECEDIT", "MODIFYSTREETSIGNS"], "remove": ["CIVILIAN"]}])).await;
    assert_text(&r, 200, "User account permissions updated.");
    let p = emu.account("CivilianNoIds").unwrap()["permissions"].clone();
    assert_eq!(
        p,
        json!({"civilian": false, "police": true, "liveMap": true, "polRecEdit": true, "modifyStreetSigns": true})
    );

    // set overrides add/remove.
    let r = call(&emu, "SET_ACCOUNT_PERMISSIONS", json!([{"apiId": "110000112345678", "set": ["DMV", "ADMININGAMEINTEGRATION"], "add": ["ADMIN"], "remove": ["DMV"]}])).await;
    assert_text(&r, 200, "User account permissions updated.");
    let p = emu.account("OfficerJones").unwrap()["permissions"].as_object().unwrap().clone();
    assert_eq!(p.len(), 43);
    let on: Vec<&String> = p.iter().filter(|(_, v)| **v == json!(true)).map(|(k, _)| k).collect();
    assert_eq!(on, vec!["adminInGameIntegration", "dmv"]);

    // active and join (join only with accId).
    let r = call(
        &emu,
        "SET_ACCOUNT_PERMISSIONS",
        json!([{"accId": PENDING_UUID, "active": true, "join": true, "add": ["CIVILIAN"]}]),
    )
    .await;
    assert_text(&r, 200, "User account permissions updated.");
    let a = emu.account("PendingRecruit").unwrap();
    assert_eq!(a["status"], 1);
    assert!(a["joined"].is_string(), "{a}");
    call(&emu, "SET_ACCOUNT_PERMISSIONS", json!([{"username": "SonoranBrian", "active": false}])).await;
    assert_eq!(emu.account("SonoranBrian").unwrap()["status"], 0);

    // Violations: bad permission name, join without accId, two selectors.
    let r = call(
        &emu,
        "SET_ACCOUNT_PERMISSIONS",
        json!([{"username": "SonoranBrian", "add": ["POLICE", "POLICERECEDIT"]}]),
    )
    .await;
    assert_malformed(&r, "data[0].add[1]: unknown permission name `POLICERECEDIT`");
    let last = emu.log().pop().unwrap();
    assert_eq!(last.violations, vec!["data[0].add[1]: unknown permission name `POLICERECEDIT`".to_string()]);
    let r = call(&emu, "SET_ACCOUNT_PERMISSIONS", json!([{"username": "SonoranBrian", "add": ["police"]}])).await;
    assert_malformed(&r, "unknown permission name `police`");
    let r = call(&emu, "SET_ACCOUNT_PERMISSIONS", json!([{"username": "SonoranBrian", "join": true}])).await;
    assert_malformed(&r, "join: only valid with `accId`");
    let r = call(&emu, "SET_ACCOUNT_PERMISSIONS", json!([{"username": "SonoranBrian", "accId": BRIAN_UUID}])).await;
    assert_malformed(&r, "only one of");
    let r = call(&emu, "SET_ACCOUNT_PERMISSIONS", json!([{"username": "SonoranBrian", "active": "yes"}])).await;
    assert_malformed(&r, "active: expected boolean, got string");
    let r = call(&emu, "SET_ACCOUNT_PERMISSIONS", json!([{"apiId": "steam:nobody", "add": ["POLICE"]}])).await;
    assert_text(&r, 404, "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");
    assert_eq!(emu.counts().applied, 4);
}

#[tokio::test]
async fn link_character_add_remove_and_unlinked() {
    let emu = start();
    let r = call(&emu, "LINK_CHARACTER", json!([{"apiId": BRIAN_ID, "syncId": "char-77", "action": 0}])).await;
    assert_text(&r, 200, &format!("Linked char sync ID 'char-77' to user 'SonoranBrian' - {BRIAN_UUID}"));
    call(&emu, "LINK_CHARACTER", json!([{"apiId": BRIAN_ID, "syncId": "char-78", "action": 0}])).await;
    assert_eq!(emu.account("SonoranBrian").unwrap()["syncIds"], json!(["char-77", "char-78"]));
    let r = call(&emu, "LINK_CHARACTER", json!([{"apiId": BRIAN_ID, "syncId": "char-77", "action": 2}])).await;
    assert_text(&r, 200, &format!("Unlinked char sync ID 'char-77' from user 'SonoranBrian' - {BRIAN_UUID}"));
    assert_eq!(emu.account("SonoranBrian").unwrap()["syncIds"], json!(["char-78"]));
    let r = call(&emu, "LINK_CHARACTER", json!([{"apiId": "steam:nobody", "syncId": "c", "action": 0}])).await;
    assert_text(&r, 404, "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");
    let r = call(&emu, "LINK_CHARACTER", json!([{"apiId": BRIAN_ID, "syncId": "c", "action": 1}])).await;
    assert_malformed(&r, "action: 1 is not one of [0, 2]");
    let r = call(&emu, "LINK_CHARACTER", json!([{"apiId": BRIAN_ID, "syncId": "c", "action": "0"}])).await;
    assert_malformed(&r, "action: expected integer, got string");
    let r = call(&emu, "LINK_CHARACTER", json!([{"apiId": BRIAN_ID, "action": 0}])).await;
    assert_malformed(&r, "required field `syncId` is missing");
    // The seed's parameter-table type is not the real one.
    let r = post(
        &emu,
        "/civilian/link_character",
        &envelope(&emu, "GET_CHARACTERS", json!([{"apiId": BRIAN_ID, "syncId": "c", "action": 0}])),
    )
    .await;
    assert_text(&r, 400, "INVALID REQUEST TYPE");
}

#[tokio::test]
async fn identifiers_add_edit_remove() {
    let emu = start();
    let add = json!([{"apiId": BRIAN_ID, "action": 0, "identifier": {"status": 2, "location": "Legion Square", "aop": "LS", "data": {"unitNum": "1A-12", "name": "Brian", "department": "LSPD"}}}]);
    let r = call(&emu, "MODIFY_IDENTIFIER", add).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.ctype.starts_with("application/json"));
    assert!(r.body.starts_with("{\"id\":1,\"accId\":"), "{}", r.body);
    let v = r.json();
    assert_eq!(v["accId"], BRIAN_UUID);
    assert_eq!(v["status"], 2);
    assert_eq!(v["location"], "Legion Square");
    assert_eq!(v["data"]["unitNum"], "1A-12");
    assert_eq!(v["data"]["rank"], "");

    // Plural path of the seed, account uuid selector, second identifier.
    let r = post(
        &emu,
        "/emergency/modify_identifiers",
        &envelope(
            &emu,
            "MODIFY_IDENTIFIER",
            json!([{"account": BRIAN_UUID, "action": 0, "identifier": {"data": {"unitNum": "2B"}}}]),
        ),
    )
    .await;
    assert_eq!(r.json()["id"], 2);

    // EDIT by identId merges.
    let r = call(
        &emu,
        "MODIFY_IDENTIFIER",
        json!([{"apiId": BRIAN_ID, "action": 1, "identId": 2, "identifier": {"status": 4, "data": {"rank": "Sgt"}}}]),
    )
    .await;
    let v = r.json();
    assert_eq!(
        (v["id"].clone(), v["status"].clone(), v["data"]["unitNum"].clone(), v["data"]["rank"].clone()),
        (json!(2), json!(4), json!("2B"), json!("Sgt"))
    );
    // EDIT without identId: the account's first identifier.
    let r = call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": BRIAN_ID, "action": 1, "identifier": {"aop": "Blaine"}}]))
        .await;
    assert_eq!((r.json()["id"].clone(), r.json()["aop"].clone()), (json!(1), json!("Blaine")));

    let r = call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": BRIAN_ID, "action": 2, "identId": 1}])).await;
    assert_text(&r, 200, "Identifier 1 removed!");
    let r = call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": BRIAN_ID, "action": 2, "identId": 1}])).await;
    assert_text(&r, 404, "IDENTIFIER NOT FOUND");
    // Someone else's identifier is not found either.
    let r = call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": "110000112345678", "action": 2, "identId": 2}])).await;
    assert_text(&r, 404, "IDENTIFIER NOT FOUND");
    let r = call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": "steam:nobody", "action": 0, "identifier": {}}])).await;
    assert_text(&r, 404, "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY");

    let ids = emu.state()["identifiers"].clone();
    assert_eq!(ids.as_array().unwrap().len(), 1);
    assert_eq!(ids[0]["id"], 2);

    // Violations.
    let r = call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": BRIAN_ID, "action": 2}])).await;
    assert_malformed(&r, "required field `identId` is missing");
    let r = call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": BRIAN_ID, "action": 0}])).await;
    assert_malformed(&r, "required field `identifier` is missing");
    let r =
        call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": BRIAN_ID, "action": 0, "identifier": {"status": 5}}])).await;
    assert_malformed(&r, "identifier.status: 5 is not one of");
    let r = call(
        &emu,
        "MODIFY_IDENTIFIER",
        json!([{"apiId": BRIAN_ID, "action": 0, "identifier": {"data": {"callsign": "x"}}}]),
    )
    .await;
    assert_malformed(&r, "identifier.data: unknown key `callsign`");
    let r = call(&emu, "MODIFY_IDENTIFIER", json!([{"apiId": BRIAN_ID, "action": 2, "identId": "1"}])).await;
    assert_malformed(&r, "identId: expected non-negative integer, got string");
}

#[tokio::test]
async fn several_objects_in_data() {
    let emu = start();
    let r = call(
        &emu,
        "SET_API_ID",
        json!([{"username": "MedicSmith", "id2": "a"}, {"username": "CivilianNoIds", "id1": "b"}]),
    )
    .await;
    assert_text(&r, 200, "API ID(s) set!");
    assert_eq!(emu.account("MedicSmith").unwrap()["apiIds"][1], "a");
    assert_eq!(emu.account("CivilianNoIds").unwrap()["apiIds"][0], "b");
    let r = call(
        &emu,
        "MODIFY_IDENTIFIER",
        json!([
            {"apiId": BRIAN_ID, "action": 0, "identifier": {"location": "one"}},
            {"apiId": BRIAN_ID, "action": 0, "identifier": {"location": "two"}}
        ]),
    )
    .await;
    assert!(r.ctype.starts_with("application/json"));
    let v = r.json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!((v[0]["id"].clone(), v[1]["location"].clone()), (json!(1), json!("two")));
    // One counted application per request.
    assert_eq!(emu.counts().applied, 2);
}

#[tokio::test]
async fn generic_general_path_dispatches_on_type() {
    let emu = start();
    let r = post(
        &emu,
        "/general",
        &envelope(&emu, "SET_API_ID", json!([{"username": "CivilianNoIds", "id1": "11000010000AAAA"}])),
    )
    .await;
    assert_text(&r, 200, "API ID(s) set!");
    let r = post(&emu, "/general", &envelope(&emu, "CHECK_APIID", json!([{"apiId": "11000010000AAAA"}]))).await;
    assert_text(&r, 200, "CivilianNoIds");
    let r = post(&emu, "/general", &envelope(&emu, "UNIT_STATUS", json!([{}]))).await;
    assert_text(&r, 400, "INVALID REQUEST TYPE");
}

#[tokio::test]
async fn backend_service_reached_for_unknown_paths_and_methods() {
    let emu = start();
    let c = client();
    for path in ["/", "/general/nope", "/emergency/unit_status", "/general/set_api_id/"] {
        let r = post(&emu, path, &envelope(&emu, "SET_API_ID", json!([]))).await;
        assert_text(&r, 200, "Sonoran CAD: Backend Service Reached");
    }
    // Under /v2/ the v2 API answers, as on the real host: a legacy envelope carries no Bearer
    // key, so it is refused as v2 refuses a request without one.
    let r = post(&emu, "/v2/general", &envelope(&emu, "SET_API_ID", json!([]))).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.ctype.starts_with("application/problem+json"), "{r:?}");
    assert!(!r.body.contains(&emu.api_key()), "{r:?}");
    let r = c.get(format!("{}/general/check_apiid", emu.base_url())).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "Sonoran CAD: Backend Service Reached");
    let legacy = emu.log().into_iter().filter(|e| !e.path.starts_with("/v2/"));
    assert!(legacy.into_iter().all(|e| e.violations.is_empty() && e.outcome == Outcome::Answered));
    let v2 = emu.log().into_iter().find(|e| e.path.starts_with("/v2/")).unwrap();
    assert!(!v2.violations.is_empty(), "a legacy envelope on a v2 route is a wire violation: {v2:?}");
}

// ---------------------------------------------------------------- envelope

#[tokio::test]
async fn envelope_errors_in_order() {
    let emu = start();
    let url = format!("{}/general/check_apiid", emu.base_url());
    let c = client();
    let data = json!([{"apiId": BRIAN_ID}]);
    for body in ["not json", "[1,2]", "\"CHECK_APIID\""] {
        let r = send(&c, url.clone(), Some("application/json"), body.to_string()).await.unwrap();
        assert_text(&r, 400, "INVALID REQUEST TYPE");
    }
    let r = post(&emu, "/general/check_apiid", &json!({"id": "WRONG", "key": "wrong too", "type": "X", "data": data}))
        .await;
    assert_text(&r, 400, "INVALID COMMUNITY ID");
    let r =
        post(&emu, "/general/check_apiid", &json!({"key": emu.api_key(), "type": "CHECK_APIID", "data": data})).await;
    assert_text(&r, 400, "INVALID COMMUNITY ID");
    let r = post(
        &emu,
        "/general/check_apiid",
        &json!({"id": emu.community_id(), "key": "wrong", "type": "X", "data": data}),
    )
    .await;
    assert_text(&r, 400, "INVALID API KEY");
    let r = post(&emu, "/general/check_apiid", &envelope(&emu, "GET_ACCOUNT", data.clone())).await;
    assert_text(&r, 400, "INVALID REQUEST TYPE");
    let r = post(&emu, "/general/check_apiid", &envelope(&emu, "check_apiid", data.clone())).await;
    assert_text(&r, 400, "INVALID REQUEST TYPE");

    let mut fixture = Fixture::default_fixture();
    fixture.disabled_types = vec!["GET_VERSION".into(), "SET_ACCOUNT_PERMISSIONS".into()];
    let emu2 = Emulator::start(Options { fixture, ..Options::default() }).unwrap();
    assert_text(&call(&emu2, "GET_VERSION", json!([])).await, 400, "API IS NOT ENABLED FOR THIS COMMUNITY");
    let r = call(&emu2, "SET_ACCOUNT_PERMISSIONS", json!([{"username": "SonoranBrian", "add": ["POLICE"]}])).await;
    assert_text(&r, 400, "API ENDPOINT IS NOT ENABLED FOR THIS COMMUNITY");
    // The API-level error comes before the wire check.
    let r = call(&emu2, "SET_ACCOUNT_PERMISSIONS", json!([{"username": "SonoranBrian", "add": ["NOPE"]}])).await;
    assert_text(&r, 400, "API ENDPOINT IS NOT ENABLED FOR THIS COMMUNITY");
    assert_text(&call(&emu2, "CHECK_APIID", data).await, 200, "SonoranBrian");
}

#[tokio::test]
async fn strict_wire_checks_are_reported() {
    let emu = start();
    let c = client();
    let url = format!("{}/general/check_apiid", emu.base_url());
    let good = envelope(&emu, "CHECK_APIID", json!([{"apiId": BRIAN_ID}])).to_string();

    let r = send(&c, url.clone(), None, good.clone()).await.unwrap();
    assert_malformed(&r, "Content-Type header is missing");
    let r = send(&c, url.clone(), Some("text/plain"), good.clone()).await.unwrap();
    assert_malformed(&r, "Content-Type is `text/plain`");
    let r = send(&c, url.clone(), Some("application/json; charset=utf-8"), good.clone()).await.unwrap();
    assert_text(&r, 200, "SonoranBrian");

    // Extra envelope keys (the official JavaScript SDK sends "product": 0) are ignored, as by
    // the real API; the strict knob refuses them.
    let mut extra = envelope(&emu, "CHECK_APIID", json!([{"apiId": BRIAN_ID}]));
    extra["product"] = json!(0);
    assert_text(&post(&emu, "/general/check_apiid", &extra).await, 200, "SonoranBrian");
    let strict = Emulator::start(Options { strict_envelope: true, ..Options::default() }).expect("emulator starts");
    extra["debug"] = json!(true);
    let r = send(&c, format!("{}/general/check_apiid", strict.base_url()), Some("application/json"), extra.to_string())
        .await
        .unwrap();
    assert_malformed(&r, "envelope: unknown key `debug`");
    let cases = [
        (json!({"apiId": BRIAN_ID}), "envelope.data: expected array, got object"),
        (json!([]), "envelope.data: must not be empty"),
        (json!(["x"]), "data[0]: expected object, got string"),
        (json!([{"apiId": BRIAN_ID, "name": "x"}]), "data[0]: unknown key `name`"),
        (json!([{"apiId": 42}]), "data[0].apiId: expected string, got integer"),
        (json!([{}]), "data[0]: required field `apiId` is missing"),
    ];
    for (data, needle) in cases {
        let r = call(&emu, "CHECK_APIID", data).await;
        assert_malformed(&r, needle);
    }
    let r = post(
        &emu,
        "/general/check_apiid",
        &json!({"id": emu.community_id(), "key": emu.api_key(), "type": "CHECK_APIID"}),
    )
    .await;
    assert_malformed(&r, "required field `data` is missing");

    let log = emu.log();
    let bad: Vec<_> = log.iter().filter(|e| !e.violations.is_empty()).collect();
    assert_eq!(bad.len(), 9);
    assert_eq!(emu.counts().malformed, 9);
    assert!(log.iter().all(|e| e.status != 400 || !e.violations.is_empty()));
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn rate_limit_retry_after_seconds_date_and_none() {
    for (mode, check) in [
        (RetryAfter::Seconds, "seconds"),
        (RetryAfter::HttpDate, "date"),
        (RetryAfter::None, "none"),
        (RetryAfter::Fixed(30), "fixed"),
    ] {
        let mut rl = RateLimit::per(2, 20.0); // 2 at once, then one per 10 s
        rl.retry_after = mode;
        let emu = start_with(Faults { rate_limit: Some(rl), ..Faults::default() });
        for _ in 0..2 {
            assert_eq!(call(&emu, "GET_VERSION", json!([])).await.status, 200);
        }
        let r = call(&emu, "SET_API_ID", json!([{"username": "SonoranBrian", "id2": "x"}])).await;
        assert_eq!(r.status, 429, "{r:?}");
        assert!(r.ctype.starts_with("application/json"));
        assert_eq!(r.json(), json!({"message": "API rate limit exceeded"}));
        match check {
            "seconds" => {
                let s: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
                assert!((9..=10).contains(&s), "{s}");
            }
            "date" => {
                let d = httpdate::parse_http_date(r.retry_after.as_deref().unwrap()).unwrap();
                let ahead = d.duration_since(std::time::SystemTime::now()).unwrap_or_default();
                assert!(ahead >= Duration::from_secs(7) && ahead <= Duration::from_secs(11), "{ahead:?}");
            }
            "none" => assert!(r.retry_after.is_none()),
            _ => assert_eq!(r.retry_after.as_deref(), Some("30")),
        }
        assert_eq!(emu.account("SonoranBrian").unwrap()["apiIds"][1], "", "no state change");
        let c = emu.counts();
        assert_eq!((c.rate_limited, c.status(429), c.applied), (1, 1, 0));
        assert_eq!(emu.log()[2].outcome, Outcome::RateLimited);
    }
}

#[tokio::test]
async fn rate_limit_refills_and_tolerates_exact_pacing() {
    let emu = start_with(Faults { rate_limit: Some(RateLimit::new(1, 10.0)), ..Faults::default() });
    assert_eq!(call(&emu, "GET_VERSION", json!([])).await.status, 200);
    assert_eq!(call(&emu, "GET_VERSION", json!([])).await.status, 429);
    // Pacing at exactly the refill rate (one per 100 ms) is never refused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = Instant::now();
    for _ in 0..10 {
        let r = call(&emu, "GET_VERSION", json!([])).await;
        assert_eq!(r.status, 200, "{r:?}");
        next += Duration::from_millis(100);
        tokio::time::sleep_until(next.into()).await;
    }
    assert_eq!(emu.counts().rate_limited, 1);
}

#[tokio::test]
async fn error_rate_answers_5xx_without_state_change() {
    let emu = start_with(Faults { error_rate: 1.0, ..Faults::default() });
    for _ in 0..6 {
        let r = call(&emu, "SET_API_ID", json!([{"username": "SonoranBrian", "id2": "x"}])).await;
        assert!([500, 502, 503].contains(&r.status), "{r:?}");
        assert_eq!(r.body, "Internal Server Error");
    }
    assert_eq!(emu.account("SonoranBrian").unwrap()["apiIds"][1], "");
    let c = emu.counts();
    assert_eq!((c.faulted, c.applied, c.answered), (6, 0, 6));
    assert!(emu.log().iter().all(|e| e.outcome == Outcome::Fault5xx && e.body["type"] == "SET_API_ID"));
    // Faults can be switched off at run time.
    emu.set_faults(Faults::default());
    assert_text(
        &call(&emu, "SET_API_ID", json!([{"username": "SonoranBrian", "id2": "x"}])).await,
        200,
        "API ID(s) set!",
    );
}

#[tokio::test]
async fn fault_sequence_is_deterministic_for_a_seed() {
    async fn run(seed: u64) -> Vec<u16> {
        let emu = start_with(Faults { error_rate: 0.5, seed, ..Faults::default() });
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(call(&emu, "GET_VERSION", json!([])).await.status);
        }
        out
    }
    let a = run(7).await;
    assert_eq!(a, run(7).await);
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500), "{a:?}");
    assert_ne!(a, run(8).await);
}

#[tokio::test]
async fn drop_closes_the_connection_without_answer() {
    let emu = start_with(Faults { drop_rate: 1.0, ..Faults::default() });
    let url = format!("{}/general/set_api_id", emu.base_url());
    let body = envelope(&emu, "SET_API_ID", json!([{"username": "SonoranBrian", "id2": "x"}])).to_string();
    let err = send(&client(), url, Some("application/json"), body).await.expect_err("connection closed");
    assert!(!err.is_timeout(), "{err:?}");
    assert_eq!(emu.account("SonoranBrian").unwrap()["apiIds"][1], "");
    let c = emu.counts();
    assert_eq!((c.dropped, c.answered, c.applied), (1, 0, 0));
    let e = &emu.log()[0];
    assert_eq!((e.outcome, e.status), (Outcome::Dropped, 0));
}

#[tokio::test]
async fn hang_holds_the_request_until_the_client_gives_up() {
    let emu = start_with(Faults { hang_rate: 1.0, ..Faults::default() });
    let url = format!("{}/general/get_version", emu.base_url());
    let body = envelope(&emu, "GET_VERSION", json!([])).to_string();
    let t = Instant::now();
    let err = send(&client_timeout(Duration::from_millis(300)), url, Some("application/json"), body)
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(t.elapsed() >= Duration::from_millis(290));
    let c = emu.counts();
    assert_eq!((c.hung, c.answered), (1, 0));
    assert_eq!(emu.log()[0].outcome, Outcome::Hung);
}

#[tokio::test]
async fn latency_is_added_to_every_answer() {
    let emu = start_with(Faults { latency_ms: 250, ..Faults::default() });
    let t = Instant::now();
    assert_text(&call(&emu, "GET_VERSION", json!([])).await, 200, "4");
    assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
    let t = Instant::now();
    let r = post(&emu, "/nowhere", &json!({})).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(250));
}

#[test]
fn stop_returns_promptly_with_a_hung_request_open() {
    let emu = start_with(Faults { hang_rate: 1.0, ..Faults::default() });
    let addr = emu.addr();
    let body = envelope(&emu, "GET_VERSION", json!([])).to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /general/get_version HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while emu.counts().hung == 0 {
        assert!(Instant::now() < deadline, "request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    emu.stop();
    // The hung request would hold it forever; a few seconds only allow for a loaded machine.
    assert!(t.elapsed() < Duration::from_secs(5), "stop took {:?}", t.elapsed());
    let got = reader.join().unwrap();
    assert!(got.is_empty(), "no answer for a hung request");
    // The port is free again.
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
}

// ---------------------------------------------------------------- log, counts, fixture, load

#[tokio::test]
async fn log_records_bodies_and_answers() {
    let emu = start();
    let r = call(&emu, "CHECK_APIID", json!([{"apiId": BRIAN_ID}])).await;
    assert_eq!(r.status, 200);
    send(&client(), format!("{}/general/get_account", emu.base_url()), Some("application/json"), "{oops".into())
        .await
        .unwrap();
    let log = emu.log();
    assert_eq!(log.len(), 2);
    let e = &log[0];
    assert_eq!((e.seq, e.path.as_str(), e.method.as_str()), (0, "/general/check_apiid", "POST"));
    assert_eq!(e.request_type.as_deref(), Some("CHECK_APIID"));
    assert_eq!(e.body["data"][0]["apiId"], BRIAN_ID);
    assert_eq!(serde_json::from_str::<Value>(&e.raw_body).unwrap(), e.body);
    assert_eq!(e.content_type.as_deref(), Some("application/json"));
    assert_eq!((e.status, e.response.as_str(), e.outcome), (200, "SonoranBrian", Outcome::Answered));
    assert!(e.violations.is_empty());
    let e = &log[1];
    assert_eq!((e.body.clone(), e.raw_body.as_str(), e.status), (Value::Null, "{oops", 400));
    assert_eq!(e.response, "INVALID REQUEST TYPE");
    assert_eq!(e.violations, vec!["body is not a JSON object".to_string()]);
    emu.clear_log();
    assert!(emu.log().is_empty());
    assert_eq!(emu.counts().received, 2);
}

#[tokio::test]
async fn log_off_keeps_only_counts() {
    let emu = Emulator::start(Options { log: false, ..Options::default() }).unwrap();
    call(&emu, "GET_VERSION", json!([])).await;
    call(&emu, "CHECK_APIID", json!([{"apiId": "nope"}])).await;
    call(&emu, "CHECK_APIID", json!([{"apiId": 1}])).await;
    assert!(emu.log().is_empty());
    let c = emu.counts();
    assert_eq!((c.received, c.answered, c.status(200), c.status(404), c.status(400), c.malformed), (3, 3, 1, 1, 1, 1));
}

#[tokio::test]
async fn keep_alive_load_and_concurrency() {
    let emu = Emulator::start(Options { log: false, ..Options::default() }).unwrap();
    let c = client();
    let url = format!("{}/general/check_apiid", emu.base_url());
    let body = envelope(&emu, "CHECK_APIID", json!([{"apiId": BRIAN_ID}])).to_string();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, url, body) = (c.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                let r = send(&c, url.clone(), Some("application/json"), body.clone()).await.unwrap();
                assert_eq!(r.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(emu.counts().status(200), 1000);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn fixture_default_and_errors() {
    let f = Fixture::default_fixture();
    assert_eq!((f.community_id.as_str(), f.api_key.as_str()), ("TESTCOMM", "emulator-secret-key-0123456789"));
    assert!(f.disabled_types.is_empty());
    assert!(f.accounts.iter().any(|a| a.api_ids.is_empty()));
    assert!(f.accounts.iter().any(|a| a.status == 0));
    assert!(Fixture::from_json("{}").is_err());
    assert!(Fixture::from_json(
        r#"{"community_id":"A","api_key":"k","accounts":[{"uuid":"u","username":"x"},{"uuid":"u","username":"y"}]}"#
    )
    .is_err());
    assert!(Fixture::from_json(r#"{"community_id":"A","api_key":"k","surprise":1}"#).is_err());
    let f = Fixture::from_json(r#"{"community_id":"A","api_key":"k"}"#).unwrap();
    assert_eq!((f.version, f.accounts.len()), (4, 0));
    // Non-loopback addresses are refused.
    let opts = Options { addr: "0.0.0.0:0".parse().unwrap(), ..Options::default() };
    assert!(Emulator::start(opts).is_err());
}

#[test]
fn works_from_sync_code_and_drop_stops_it() {
    let emu = start();
    let addr = emu.addr();
    let body = envelope(&emu, "GET_VERSION", json!([])).to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /general/get_version HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n4"), "{out}");
    let t = Instant::now();
    drop(emu);
    assert!(t.elapsed() < Duration::from_secs(5), "drop took {:?}", t.elapsed());
}

#[test]
fn the_emulator_and_the_library_know_the_same_43_permission_names() {
    let mut emulator: Vec<&str> = emulator::PERMISSION_NAMES.to_vec();
    let mut library: Vec<&str> = sonoran::PERMISSIONS.to_vec();
    emulator.sort_unstable();
    library.sort_unstable();
    assert_eq!(emulator, library);
    emulator.dedup();
    assert_eq!(emulator.len(), 43);
}
