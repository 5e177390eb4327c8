//! Unit tests of the legacy room: the documented error strings, classification of arbitrary
//! answers (a property test), bodies and retry classes.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn raw(status: u16, ct: Option<&str>, body: &[u8]) -> RawResponse {
    RawResponse {
        status,
        content_type: ct.map(str::to_string),
        retry_after: None,
        redirect_to: None,
        rate_limit_reset: None,
        trace_id: None,
        body: body.to_vec(),
    }
}

#[test]
fn documented_error_strings_map_to_codes() {
    for (text, code) in ERROR_STRINGS {
        let f = classify("CHECK_APIID", raw(400, Some("text/plain"), text.as_bytes())).unwrap_err();
        assert_eq!(f.code, *code, "{text}");
        assert_eq!(f.message, *text);
    }
    assert_eq!(
        classify("CHECK_APIID", raw(200, Some("text/html"), b"Sonoran CAD: Backend Service Reached")).unwrap_err().code,
        ErrorCode::InvalidEndpoint
    );
    assert_eq!(
        classify("CHECK_APIID", raw(200, None, b"Backend Service Reached\n")).unwrap_err().code,
        ErrorCode::InvalidEndpoint
    );
    assert_eq!(classify("CHECK_APIID", raw(503, None, b"busy")).unwrap_err().code, ErrorCode::ServerError);
    assert_eq!(classify("CHECK_APIID", raw(418, None, b"teapot")).unwrap_err().code, ErrorCode::HttpError);
    assert_eq!(classify("CHECK_APIID", raw(200, None, &[0xff, 0xfe])).unwrap_err().code, ErrorCode::BadResponse);
    assert_eq!(
        classify("CHECK_APIID", raw(200, Some("application/json"), b"{oops")).unwrap_err().code,
        ErrorCode::BadResponse
    );
}

#[test]
fn failure_statuses_with_bodies_that_are_not_utf8_keep_their_code() {
    // Found by tests/properties.rs: a 429 with a non-UTF-8 body was BAD_RESPONSE.
    assert_eq!(classify("CHECK_APIID", raw(429, None, &[128])).unwrap_err().code, ErrorCode::RateLimited);
    assert_eq!(classify("CHECK_APIID", raw(503, None, &[0xff, 0xfe])).unwrap_err().code, ErrorCode::ServerError);
    assert_eq!(classify("CHECK_APIID", raw(418, None, &[0xff])).unwrap_err().code, ErrorCode::HttpError);
}

#[test]
fn bodies_are_json_by_content_type_with_a_parsing_fallback() {
    assert_eq!(
        classify("CHECK_APIID", raw(200, Some("application/json; charset=utf-8"), br#"{"a":1}"#)).unwrap().data,
        json!({"a": 1})
    );
    assert_eq!(classify("CHECK_APIID", raw(200, Some("text/plain"), br#"{"a":1}"#)).unwrap().data, json!({"a": 1}));
    assert_eq!(
        classify("CHECK_APIID", raw(200, Some("text/plain"), b"API ID(s) set!")).unwrap().data,
        json!("API ID(s) set!")
    );
    assert_eq!(classify("CHECK_APIID", raw(200, Some("text/plain"), b"{not json")).unwrap().data, json!("{not json"));
}

#[test]
fn a_429_carries_its_retry_after() {
    let mut r = raw(429, Some("application/json"), br#"{"message":"API rate limit exceeded"}"#);
    r.retry_after = Some("2".into());
    let f = classify("CHECK_APIID", r).unwrap_err();
    assert_eq!((f.code, f.retry_after_ms), (ErrorCode::RateLimited, Some(2000)));
    assert!(f.message.contains("API rate limit exceeded"));
}

#[test]
fn retry_classes_follow_the_documented_table() {
    use RetryClass::*;
    let one = |ty: &str, v: Value| retry_class(ty, &[v]);
    assert_eq!(one("GET_ACCOUNT", json!({"username": "a"})), Repeatable);
    assert_eq!(one("CHECK_APIID", json!({"apiId": "a"})), Repeatable);
    assert_eq!(retry_class("GET_VERSION", &[]), Repeatable);
    assert_eq!(one("SET_API_ID", json!({"username": "a", "apiIds": ["x"], "pushNew": true})), Repeatable);
    assert_eq!(one("LINK_CHARACTER", json!({"apiId": "a", "syncId": "s", "action": 0})), Repeatable);
    assert_eq!(one("SET_ACCOUNT_PERMISSIONS", json!({"apiId": "a", "add": ["DMV"]})), Repeatable);
    assert_eq!(one("SET_ACCOUNT_PERMISSIONS", json!({"accId": "a", "join": true})), Once);
    assert_eq!(one("MODIFY_IDENTIFIER", json!({"apiId": "a", "action": 0, "identifier": {}})), Once);
    assert_eq!(one("MODIFY_IDENTIFIER", json!({"apiId": "a", "action": 1, "identifier": {}})), Repeatable);
    assert_eq!(one("MODIFY_IDENTIFIER", json!({"apiId": "a", "action": 2, "identId": 3})), Once);
    assert_eq!(
        retry_class(
            "MODIFY_IDENTIFIER",
            &[
                json!({"apiId": "a", "action": 1, "identifier": {}}),
                json!({"apiId": "a", "action": 0, "identifier": {}})
            ]
        ),
        Once
    );
    assert_eq!(one("GET_CHARACTERS", json!({})), Repeatable);
    assert_eq!(one("UNIT_STATUS", json!({})), Repeatable);
    assert_eq!(one("CALL_911", json!({})), Once);
    assert_eq!(one("NEW_RECORD", json!({})), Once);
}

/// JSON texts of a few shapes, for bodies.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .prop_map(|v| v.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Classification never panics, and agrees with the status on the broad outcome.
#[test]
fn classification_of_arbitrary_answers(
    status in prop_oneof![100u16..600, Just(200u16), Just(400), Just(404), Just(429), Just(503)],
    content_type in proptest::option::of(prop_oneof![
        Just("application/json".to_string()),
        Just("text/plain; charset=utf-8".to_string()),
        Just("application/problem+json".to_string()),
        ".{0,30}",
    ]),
    retry_after in proptest::option::of(prop_oneof![
        "[0-9]{1,25}",
        "[0-9]{1,5}\\\\.[0-9]{1,4}",
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
        ".{0,40}",
    ]),
    body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        ".{0,64}".prop_map(String::into_bytes),
        json_text().prop_map(String::into_bytes),
        prop_oneof![
            Just("INVALID API KEY"), Just("API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY"),
            Just("Backend Service Reached"), Just("{\"message\":\"API rate limit exceeded\"}"),
        ].prop_map(|s| s.as_bytes().to_vec()),
    ],
) {
    let raw = RawResponse { status, content_type, retry_after: retry_after.clone(), redirect_to: None, rate_limit_reset: None, trace_id: None, body };
    match classify("CHECK_APIID", raw) {
        Ok(s) => prop_assert!((200..300).contains(&s.status)),
        Err(f) => {
            prop_assert_eq!(f.status, status);
            prop_assert!(f.message.len() <= 700, "messages are clipped: {}", f.message.len());
            if status == 429 {
                prop_assert_eq!(f.code, ErrorCode::RateLimited);
            }
            if f.code != ErrorCode::RateLimited {
                prop_assert_eq!(f.retry_after_ms, None);
            }
        }
    }
    if let Some(v) = retry_after {
        let _ = crate::api::answer::parse_retry_after(&v, std::time::SystemTime::now());
    }
}
}
