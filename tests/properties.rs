//! Property tests (bounded case counts, part of `cargo test`): request validation from arbitrary
//! JSON and the tablet capture parser from arbitrary text (response classification from
//! arbitrary answers is a property test beside the code, in `src/api/legacy_tests.rs`); and
//! arbitrary Unicode
//! (any character, not only ASCII) fed to every entry point that takes text: request fields,
//! player identifiers, captures, the configuration, type names, paths and sections. None may
//! panic; what they accept must hold up. `PROPTEST_CASES=100000 cargo test --release --test properties`
//! runs a longer search; a failure found is kept in `proptest-regressions/` and becomes a
//! regular case here.

use proptest::prelude::*;
use serde_json::{Map, Value};
use sonoran::{parse_session, Call, Client, Config, PlayerIds};
use std::sync::OnceLock;

/// Any text: arbitrary Unicode, mixed with the prefixes and separators the parsers look for
/// (`steam:`, `LOGIN`, braces), so that multi-byte characters land next to every cut.
fn any_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        "\\PC{0,6}",
        Just("steam:".to_string()),
        Just("steam".to_string()),
        Just("license:".to_string()),
        Just("discord:".to_string()),
        Just("é".to_string()),
        Just("🚓".to_string()),
        Just("LOGIN COMMUNITY: {".to_string()),
        Just("} USERNAME: {".to_string()),
        Just("} SESSIONID: {".to_string()),
        Just("}".to_string()),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

/// One client for the cases of a test (a client per case would start a runtime per case). Its
/// URL refuses connections, and every accepted request is cancelled at once.
fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let cfg = Config::new("TESTCOMM", "property-test-key-0123456789").with_api_url("http://127.0.0.1:9");
        Client::new(cfg).expect("client starts")
    })
}

/// Arbitrary JSON, biased towards the keys and values the validators look at.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("apiId".to_string()),
        Just("username".to_string()),
        Just("account".to_string()),
        Just("sessionId".to_string()),
        Just("apiIds".to_string()),
        Just("pushNew".to_string()),
        Just("id1".to_string()),
        Just("syncId".to_string()),
        Just("action".to_string()),
        Just("identifier".to_string()),
        Just("identId".to_string()),
        Just("add".to_string()),
        Just("set".to_string()),
        Just("join".to_string()),
        Just("accId".to_string()),
        Just("status".to_string()),
        Just("data".to_string()),
        Just("location".to_string()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u64..5).prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        any_text().prop_map(Value::String),
        prop_oneof![Just("ADD"), Just("EDIT"), Just("REMOVE"), Just("DMV"), Just("POLRECEDIT"), Just("")]
            .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn request_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SET_API_ID".to_string()),
        Just("LINK_CHARACTER".to_string()),
        Just("MODIFY_IDENTIFIER".to_string()),
        Just("SET_ACCOUNT_PERMISSIONS".to_string()),
        Just("GET_ACCOUNT".to_string()),
        Just("CHECK_APIID".to_string()),
        Just("UNIT_STATUS".to_string()),
        Just("GET_VERSION".to_string()),
        ".{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Validation never panics; what it accepts validates again to the same call, carries only
    /// objects, and names a proper type.
    #[test]
    fn validation_of_arbitrary_json(ty in request_type(), data in json_value()) {
        if let Ok(call) = Call::generic(&ty, data) {
            prop_assert!(call.data.iter().all(Value::is_object));
            prop_assert!(ty.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'));
            let again = Call::generic(&ty, Value::Array(call.data.clone()));
            if call.data.is_empty() {
                // Only untyped types take `null` / `[]`.
                prop_assert_eq!(call.kind(), sonoran::Kind::Other);
            } else {
                prop_assert_eq!(again.expect("accepted data validates again"), call.clone());
            }
        }
    }

    /// The capture parser never panics; what it accepts holds only each field's characters.
    #[test]
    fn session_capture_of_arbitrary_text(text in prop_oneof![
        ".{0,200}",
        any_text(),
        (".{0,12}", ".{0,12}", ".{0,12}", ".{0,12}").prop_map(|(a, c, u, s)| {
            format!("{a}LOGIN COMMUNITY: {{{c}}} USERNAME: {{{u}}} SESSIONID: {{{s}}}")
        }),
        (".{0,12}", ".{0,12}").prop_map(|(u, s)| serde_json::json!({"username": u, "session": s}).to_string()),
        json_value().prop_map(|v| v.to_string()),
    ]) {
        if let Ok(c) = parse_session(&text) {
            let only = |s: &str, max: usize, ok: &dyn Fn(char) -> bool| !s.is_empty() && s.len() <= max && s.chars().all(ok);
            match &c {
                sonoran::Capture::Login { community, username, session_id } => {
                    prop_assert!(
                        only(username, 64, &|ch| ch.is_alphanumeric() || "_-. ".contains(ch)) && username.trim() == username,
                        "username {:?}", username
                    );
                    prop_assert!(only(session_id, 128, &|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch)), "session {:?}", session_id);
                    if let Some(community) = community {
                        prop_assert!(only(community, 64, &|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch)), "community {:?}", community);
                    }
                }
                sonoran::Capture::AccountLink { account_uuid, secret_uuid } => {
                    prop_assert!(only(account_uuid, 36, &|ch| ch.is_ascii_hexdigit() || ch == '-'));
                    prop_assert!(only(secret_uuid, 36, &|ch| ch.is_ascii_hexdigit() || ch == '-'));
                }
            }
            prop_assert_eq!(parse_session(&text).unwrap(), c);
        }
    }

    /// Player identifiers of any text: the checker and the tablet flow refuse or accept them,
    /// never panic, and an accepted one leaves a request that completes.
    #[test]
    fn player_identifiers_of_arbitrary_text(ids in prop::collection::vec(any_text(), 0..4), api_id in any_text()) {
        let c = client();
        let submitted = [
            c.is_linked(PlayerIds::Identifiers(ids.clone()), None),
            c.is_linked(PlayerIds::ApiId(api_id), None),
            c.link_from_tablet(
                &sonoran::Capture::login(None, "SonoranBrian", "abcdef-0123"),
                &ids,
                None,
            ),
        ];
        for id in submitted.into_iter().flatten() {
            c.cancel(id);
        }
        c.poll(0, |_| {});
    }

    /// Captures of any text through the tablet flow: no panic.
    #[test]
    fn tablet_flow_of_arbitrary_captures(capture in any_text(), ids in prop::collection::vec(any_text(), 0..3)) {
        let c = client();
        if let Ok(cap) = parse_session(&capture) {
            if let Ok(id) = c.link_from_tablet(&cap, &ids, None) {
                c.cancel(id);
            }
        }
        let _ = sonoran::parse_session_value(&Value::String(capture));
        c.poll(0, |_| {});
    }

    /// Request fields, type names and whole requests of any text: validation and submission
    /// refuse or accept, never panic.
    #[test]
    fn requests_of_arbitrary_text(ty in any_text(), field in any_text(), value in any_text()) {
        let c = client();
        let obj = serde_json::json!({ field.clone(): value.clone() });
        let calls = [
            Call::generic(&ty, obj.clone()),
            Call::get_account(serde_json::json!({"username": value.clone()})),
            Call::set_api_id(serde_json::json!({"username": value.clone(), "sessionId": field.clone(), "apiIds": [value.clone()]})),
            Call::set_api_id(serde_json::json!({"account": field.clone(), "id1": value.clone(), "id2": ""})),
            Call::link_character(serde_json::json!({"apiId": value.clone(), "syncId": field.clone(), "action": value.clone()})),
            Call::modify_identifier(serde_json::json!({"apiId": value.clone(), "action": 0, "identifier": {"location": field.clone(), "data": {"name": value.clone()}}})),
            Call::set_account_permissions(serde_json::json!({"username": field.clone(), "add": [value.clone()]})),
            Call::check_api_id(serde_json::json!({"apiId": value})),
        ];
        for call in calls.into_iter().flatten() {
            if let Ok(id) = c.submit(call, None) {
                c.cancel(id);
            }
        }
        c.poll(0, |_| {});
    }

    /// The configuration with any text in any key: refused with a message naming a field, or
    /// accepted; never a panic.
    #[test]
    fn configuration_of_arbitrary_text(
        key in prop_oneof![
            Just("community_id"), Just("api_key"), Just("api_url"), Just("delivery"), Just("primary_identifier"),
            Just("set_api_id_form"), Just("proxy"), Just("paths"), Just("sections"), Just("coalesce"), Just("rate_limits"),
        ],
        text in any_text(),
        inner in any_text(),
    ) {
        let mut obj = serde_json::json!({"community_id": "TESTCOMM", "api_key": "property-test-key-0123456789"});
        let value = match key {
            "paths" | "sections" => serde_json::json!({ text.clone(): inner.clone() }),
            "coalesce" => serde_json::json!({ text.clone(): 5 }),
            "rate_limits" => serde_json::json!({ text.clone(): {"per_second": 1, "burst": 1} }),
            _ => Value::String(text.clone()),
        };
        obj[key] = value;
        match Config::from_value(&obj) {
            Ok(cfg) => prop_assert!(cfg.validate().is_ok()),
            Err(e) => prop_assert!(e.message().starts_with("config"), "{}", e.message()),
        }
        let text_form = obj.to_string();
        let _ = Config::from_json(&text_form);
        let _ = Config::from_json(&text);
    }
}
