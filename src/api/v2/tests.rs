//! Unit tests of the v2 room: each call's route, the answers' mapping to codes, and what the
//! engine asks of it (retry classes, pacing keys, secrets, the UUID prerequisite).

use super::*;
use crate::request::ApiVersion;
use crate::request::Kind;
use serde_json::json;

const UUID: &str = "91de0ce8-c571-11e9-9714-5600023b2434";

fn v2() -> V2 {
    V2::new("key-0123456789abcdef", Duration::from_secs(30))
}

fn call(kind: Kind, data: Value) -> Call {
    Call::for_api(ApiVersion::V2, kind, data).unwrap()
}

fn route(c: &Call) -> (Method, String, Option<Value>) {
    let o = v2().encode(c).unwrap();
    (o.method, o.path, o.body.map(|b| serde_json::from_slice(&b).unwrap()))
}

fn raw(status: u16, ct: &str, body: &str) -> RawResponse {
    RawResponse {
        status,
        content_type: Some(ct.to_string()),
        retry_after: None,
        redirect_to: None,
        rate_limit_reset: None,
        trace_id: None,
        body: body.as_bytes().to_vec(),
    }
}

fn decode_for(c: &Call, r: RawResponse) -> Outcome {
    let api = v2();
    let out = api.encode(c).unwrap();
    api.decode(&out, &c.request_type, r)
}

#[test]
fn each_call_goes_to_its_route_with_the_legacy_names_as_aliases() {
    let (m, p, b) = route(&call(Kind::GetAccount, json!({"apiId": "steam:1 2"})));
    assert_eq!((m, p.as_str(), b), (Method::Get, "/v2/general/accounts/account?communityUserId=steam%3A1%202", None));
    let (m, p, b) = route(&call(Kind::CheckApiId, json!({"apiId": "abc"})));
    assert_eq!((m, p.as_str(), b), (Method::Post, "/v2/general/links/check", Some(json!({"communityUserId": "abc"}))));
    let (m, p, b) = route(&call(Kind::SetApiId, json!({"username": "u", "apiIds": ["x"]})));
    assert_eq!((m, p.as_str()), (Method::Put, "/v2/general/api-ids"));
    assert_eq!(b, Some(json!({"username": "u", "apiIds": ["x"], "pushNew": true})));
    let (m, p, b) =
        route(&call(Kind::LinkCharacter, json!({"apiId": "abc", "syncId": "citizen:12", "action": "REMOVE"})));
    assert_eq!(
        (m, p.as_str(), b),
        (Method::Delete, "/v2/civilian/character-links/citizen%3A12", Some(json!({"communityUserId": "abc"})))
    );
    let (m, p, b) = route(&call(
        Kind::ModifyIdentifier,
        json!({"account": UUID, "action": "EDIT", "identId": 4, "identifier": {"status": 2, "data": {"unitNum": "1A"}}}),
    ));
    assert_eq!((m, p), (Method::Patch, format!("/v2/emergency/accounts/{UUID}/identifiers/4")));
    assert_eq!(b, Some(json!({"status": 2, "unitNum": "1A"})));
    let (m, p, b) =
        route(&call(Kind::SetAccountPermissions, json!({"accId": UUID, "add": ["POLICE"], "active": true})));
    assert_eq!((m, p.as_str()), (Method::Patch, "/v2/general/accounts/permissions"));
    assert_eq!(b, Some(json!({"accountUuid": UUID, "add": ["POLICE"], "active": true})));
}

#[test]
fn fields_v2_does_not_have_are_refused_saying_what_it_uses() {
    let e = Call::for_api(ApiVersion::V2, Kind::SetApiId, json!({"username": "u", "sessionId": "s", "apiIds": ["x"]}))
        .unwrap_err();
    assert!(e.message().starts_with("data.sessionId:") && e.message().contains("link_from_tablet"), "{e}");
    let e = Call::for_api(ApiVersion::V2, Kind::SetApiId, json!({"username": "u", "id1": "x"})).unwrap_err();
    assert!(e.message().starts_with("data.id1:") && e.message().contains("apiIds"), "{e}");
    let e = Call::for_api(ApiVersion::V2, Kind::GetAccount, json!({"apiId": "a", "communityUserId": "b"})).unwrap_err();
    assert!(e.message().contains("give only one of"), "{e}");
    let e = Call::for_api(ApiVersion::V2, Kind::GetAccount, json!({"accountUuid": "not-a-uuid"})).unwrap_err();
    assert!(e.message().starts_with("data.accountUuid:"), "{e}");
    let e = Call::for_api(ApiVersion::V2, Kind::GetAccount, json!([{"username": "a"}, {"username": "b"}])).unwrap_err();
    assert!(e.message().contains("one request object"), "{e}");
    // The legacy rows refuse v2's names.
    assert!(Call::for_api(ApiVersion::Legacy, Kind::GetAccount, json!({"communityUserId": "a"})).is_err());
    assert!(Call::for_api(ApiVersion::V2, Kind::GetAccount, json!({"roblox": 12})).is_ok());
    assert!(Call::for_api(ApiVersion::V2, Kind::GetAccount, json!({"roblox": "12"})).is_err());
}

#[test]
fn problem_answers_map_to_codes_with_title_detail_and_trace_id() {
    let c = call(Kind::GetAccount, json!({"username": "nobody"}));
    let problem = |status: u16| {
        raw(
            status,
            "application/problem+json",
            &json!({"title": "T", "status": status, "detail": "D", "traceId": "00-abc-01"}).to_string(),
        )
    };
    for (status, code) in [
        (401, ErrorCode::InvalidApiKey),
        (403, ErrorCode::Forbidden),
        (404, ErrorCode::NotFound),
        (400, ErrorCode::InvalidRequest),
        (409, ErrorCode::Conflict),
        (500, ErrorCode::ServerError),
        (418, ErrorCode::HttpError),
    ] {
        let f = decode_for(&c, problem(status)).unwrap_err();
        assert_eq!((f.code, f.status), (code, status));
        assert_eq!(f.message, format!("HTTP {status}: T: D"));
        assert_eq!(f.trace_id.as_deref(), Some("00-abc-01"));
    }
    // A 404 about a player's link is NOT_LINKED, as in legacy.
    let by_player = call(Kind::GetAccount, json!({"apiId": "p"}));
    assert_eq!(decode_for(&by_player, problem(404)).unwrap_err().code, ErrorCode::NotLinked);
    // The trace id of a header, on a success too.
    let mut ok = raw(200, "application/json", r#"{"uuid": "u"}"#);
    ok.trace_id = Some("kong-1".into());
    assert_eq!(decode_for(&c, ok).unwrap().trace_id.as_deref(), Some("kong-1"));
}

#[test]
fn links_check_is_ok_only_when_linked_and_version_is_text() {
    let c = call(Kind::CheckApiId, json!({"apiId": "p"}));
    let linked = r#"{"communityUserId":"p","linked":true,"accountUuid":"u"}"#;
    assert_eq!(decode_for(&c, raw(200, "application/json", linked)).unwrap().data["accountUuid"], json!("u"));
    for unlinked in [r#"{"communityUserId":"p","linked":false,"accountUuid":null}"#, r#"{"success":false}"#] {
        let f = decode_for(&c, raw(200, "application/json", unlinked)).unwrap_err();
        assert_eq!(f.code, ErrorCode::NotLinked, "{unlinked}");
    }
    let version = Call::internal("GET_VERSION", json!({}));
    let v = decode_for(&version, raw(200, "application/json", r#"{"version":2,"name":"PLUS"}"#)).unwrap();
    assert_eq!(v.data, json!("2"));
}

#[test]
fn a_429_waits_for_retry_after_or_the_rate_limit_reset() {
    let c = call(Kind::CheckApiId, json!({"apiId": "p"}));
    let mut r = raw(429, "application/json", r#"{"message":"API rate limit exceeded","request_id":"ab"}"#);
    r.rate_limit_reset = Some("7".into());
    let f = decode_for(&c, r).unwrap_err();
    assert_eq!((f.code, f.retry_after_ms), (ErrorCode::RateLimited, Some(7000)));
    assert!(f.message.contains("API rate limit exceeded"), "{}", f.message);
    let mut r = raw(429, "application/json", "{}");
    r.retry_after = Some("3".into());
    r.rate_limit_reset = Some("7".into());
    assert_eq!(decode_for(&c, r).unwrap_err().retry_after_ms, Some(3000));
}

#[test]
fn retry_classes_pacing_keys_and_secrets() {
    let api = v2();
    let add = call(Kind::ModifyIdentifier, json!({"accountUuid": UUID, "action": 0, "identifier": {}}));
    assert_eq!(api.retry_class(&add), RetryClass::Once);
    assert_eq!(&*api.pacing_key(&add), "POST /v2/emergency/accounts/{accountUuid}/identifiers");
    let check = call(Kind::CheckApiId, json!({"apiId": "p"}));
    assert_eq!(api.retry_class(&check), RetryClass::Repeatable);
    let link = call(Kind::LinkCharacter, json!({"apiId": "p", "syncId": "s", "action": 0}));
    assert_eq!(api.retry_class(&link), RetryClass::Repeatable);
    assert_eq!(&*api.pacing_key(&link), "PUT /v2/civilian/character-links/{syncId}");
    let code = Call::internal(CREATE_LINK_CODE, json!({"communityUserId": "p"}));
    assert_eq!(api.retry_class(&code), RetryClass::Once);
    let set = Call::internal(
        SET_COMMUNITY_LINK,
        json!({"accountUuid": UUID, "secretUuid": "s3cr3t", "communityUserId": "p"}),
    );
    assert_eq!(api.secrets(&set), vec!["s3cr3t"]);
    let generic = Call::v2_request("get", "/v2/general/version?x=1", None).unwrap();
    assert_eq!(&*generic.request_type, "GET /v2/general/version");
    assert_eq!(api.retry_class(&generic), RetryClass::Repeatable);
    let (m, p, b) = route(&generic);
    assert_eq!((m, p.as_str(), b), (Method::Get, "/v2/general/version?x=1", None));
}

#[test]
fn an_identifier_call_by_player_resolves_the_account_first_and_remembers_it() {
    let api = v2();
    let add = call(Kind::ModifyIdentifier, json!({"apiId": "p", "action": 0, "identifier": {"aop": "City"}}));
    let first = api.prerequisite(&add).expect("the UUID comes first");
    assert_eq!(&*first.request_type, "CHECK_APIID");
    let answer = Success::new(200, json!({"linked": true, "accountUuid": UUID, "communityUserId": "p"}));
    let resolved = api.after_prerequisite(&add, &answer).unwrap();
    let o = api.encode(&resolved).unwrap();
    assert_eq!(o.path, format!("/v2/emergency/accounts/{UUID}/identifiers"));
    // Remembered: the next call of that player goes at once.
    assert!(api.prerequisite(&add).is_none());
    assert!(api.encode(&add).is_ok());
}
