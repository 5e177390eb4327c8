//! The tablet's login capture: the legacy console line
//! `LOGIN COMMUNITY: {TEST2} USERNAME: {SonoranBrian1} SESSIONID: {75afeea-a869-4dea-b2}`, the
//! legacy iframe message `{"username": "...", "session": "..."}`, and the v2 CAD's iframe message
//! `{"type": "scad:account-link", "accountUuid": "...", "secretUuid": "..."}`.
//!
//! The parser is strict: each field has a character set it cannot leave, the JSON form takes no
//! other keys, and a text holding two logins is refused, so nothing can be smuggled through it.

use crate::error::Refusal;
use crate::request::is_uuid;
use serde_json::{Map, Value};

/// Longest capture text accepted.
pub const MAX_CAPTURE_BYTES: usize = 4096;

/// The `type` of the v2 CAD's iframe message.
pub const ACCOUNT_LINK_TYPE: &str = "scad:account-link";

/// A parsed login capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capture {
    /// A login on the legacy API's CAD: the console line or the `{username, session}` message.
    Login {
        /// The community named by the console line; `None` for the iframe form.
        community: Option<String>,
        username: String,
        session_id: String,
    },
    /// The v2 CAD's `scad:account-link` message. The secret is redacted from every text the
    /// library hands out once a request carries it.
    AccountLink { account_uuid: String, secret_uuid: String },
}

impl Capture {
    /// A legacy login.
    pub fn login(community: Option<String>, username: impl Into<String>, session_id: impl Into<String>) -> Capture {
        Capture::Login { community, username: username.into(), session_id: session_id.into() }
    }

    /// `{"community": ..., "username": ..., "sessionId": ...}` (community null for the iframe
    /// form), or `{"type": "scad:account-link", "accountUuid": ..., "secretUuid": ...}`.
    pub fn to_value(&self) -> Value {
        match self {
            Capture::Login { community, username, session_id } => {
                serde_json::json!({"community": community, "username": username, "sessionId": session_id})
            }
            Capture::AccountLink { account_uuid, secret_uuid } => {
                serde_json::json!({"type": ACCOUNT_LINK_TYPE, "accountUuid": account_uuid, "secretUuid": secret_uuid})
            }
        }
    }
}

/// Parse either form from text (a log line, or the iframe message as JSON text).
pub fn parse_session(text: &str) -> Result<Capture, Refusal> {
    if text.len() > MAX_CAPTURE_BYTES {
        return Err(Refusal::field("capture", format!("is longer than {MAX_CAPTURE_BYTES} bytes")));
    }
    let trimmed = text.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(obj)) => return parse_message(&obj),
            Ok(_) => return Err(Refusal::field("capture", "expected a {username, session} object")),
            Err(e) if !trimmed.contains("LOGIN") => {
                return Err(Refusal::field(
                    "capture",
                    format!("looks like JSON but does not parse ({:?} error at column {})", e.classify(), e.column()),
                ))
            }
            Err(_) => {}
        }
    }
    parse_console_line(text)
}

/// Parse the iframe message given as a JSON value (object) or as JSON text (string).
pub fn parse_session_value(v: &Value) -> Result<Capture, Refusal> {
    match v {
        Value::Object(obj) => parse_message(obj),
        Value::String(s) => parse_session(s),
        _ => Err(Refusal::field("capture", "expected the tablet's login text or a {username, session} object")),
    }
}

fn parse_message(obj: &Map<String, Value>) -> Result<Capture, Refusal> {
    if obj.get("type").is_some() {
        return parse_account_link(obj);
    }
    if let Some(k) = obj.keys().find(|k| k.as_str() != "username" && k.as_str() != "session") {
        return Err(Refusal::field(
            format!("capture.{}", crate::text::printable(k)),
            "unexpected field: the tablet's login message has only username and session",
        ));
    }
    let get = |key: &str| -> Result<&str, Refusal> {
        match obj.get(key) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(Refusal::field(format!("capture.{key}"), "expected a string")),
            None => Err(Refusal::field(format!("capture.{key}"), "is required")),
        }
    };
    let username = check_username(get("username")?)?;
    let session_id = check_session_id(get("session")?)?;
    Ok(Capture::Login { community: None, username, session_id })
}

/// `{"type": "scad:account-link", "accountUuid": "<uuid>", "secretUuid": "<uuid>"}`, nothing else.
fn parse_account_link(obj: &Map<String, Value>) -> Result<Capture, Refusal> {
    if obj.get("type").and_then(Value::as_str) != Some(ACCOUNT_LINK_TYPE) {
        return Err(Refusal::field("capture.type", format!("expected \"{ACCOUNT_LINK_TYPE}\"")));
    }
    if let Some(k) = obj.keys().find(|k| !["type", "accountUuid", "secretUuid"].contains(&k.as_str())) {
        return Err(Refusal::field(
            format!("capture.{}", crate::text::printable(k)),
            "unexpected field: the account-link message has only type, accountUuid and secretUuid",
        ));
    }
    let uuid = |key: &str| -> Result<String, Refusal> {
        match obj.get(key) {
            Some(Value::String(s)) if is_uuid(s) => Ok(s.to_ascii_lowercase()),
            Some(_) => {
                Err(Refusal::field(format!("capture.{key}"), "expected a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"))
            }
            None => Err(Refusal::field(format!("capture.{key}"), "is required")),
        }
    };
    Ok(Capture::AccountLink { account_uuid: uuid("accountUuid")?, secret_uuid: uuid("secretUuid")? })
}

/// Find `LOGIN COMMUNITY: {..} USERNAME: {..} SESSIONID: {..}` anywhere in a line.
fn parse_console_line(text: &str) -> Result<Capture, Refusal> {
    let start = find_marker(text, "LOGIN").ok_or_else(|| {
        Refusal::field("capture", "no tablet login found: expected `LOGIN COMMUNITY: {..} USERNAME: {..} SESSIONID: {..}` or a {username, session} message")
    })?;
    let rest = &text[start..];
    if find_marker(&rest[5..], "LOGIN").is_some() {
        return Err(Refusal::field("capture", "holds more than one login: refusing to guess which"));
    }
    let mut cur = Cursor { s: rest };
    cur.word("LOGIN")?;
    cur.word("COMMUNITY:")?;
    let community = cur.braced("community")?;
    cur.word("USERNAME:")?;
    let username = cur.braced("username")?;
    cur.word("SESSIONID:")?;
    let session = cur.braced("sessionId")?;
    Ok(Capture::Login {
        community: Some(check_community(community)?),
        username: check_username(username)?,
        session_id: check_session_id(session)?,
    })
}

/// The byte offset of `word` as a whole word.
fn find_marker(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before_ok = at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric();
        if before_ok {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

struct Cursor<'a> {
    s: &'a str,
}

impl<'a> Cursor<'a> {
    fn word(&mut self, w: &str) -> Result<(), Refusal> {
        let t = self.s.trim_start();
        if !t.starts_with(w) {
            return Err(Refusal::field("capture", format!("malformed login line: expected `{w}`")));
        }
        self.s = &t[w.len()..];
        Ok(())
    }

    fn braced(&mut self, field: &str) -> Result<&'a str, Refusal> {
        let t = self.s.trim_start();
        let Some(body) = t.strip_prefix('{') else {
            return Err(Refusal::field(format!("capture.{field}"), "expected a value in braces {..}"));
        };
        let end = body.find('}').ok_or_else(|| Refusal::field(format!("capture.{field}"), "has no closing brace"))?;
        self.s = &body[end + 1..];
        Ok(&body[..end])
    }
}

fn check_chars(
    field: &str,
    v: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    what: &str,
) -> Result<String, Refusal> {
    if v.is_empty() {
        return Err(Refusal::field(format!("capture.{field}"), "is empty"));
    }
    if v.len() > max {
        return Err(Refusal::field(format!("capture.{field}"), format!("is longer than {max} characters")));
    }
    if let Some(c) = v.chars().find(|c| !allowed(*c)) {
        return Err(Refusal::field(
            format!("capture.{field}"),
            format!("contains {:?}, which cannot belong to it ({what})", c),
        ));
    }
    Ok(v.to_string())
}

fn check_community(v: &str) -> Result<String, Refusal> {
    check_chars(
        "community",
        v,
        64,
        |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
        "letters, digits, '_' and '-'",
    )
}

fn check_username(v: &str) -> Result<String, Refusal> {
    if v.trim() != v {
        return Err(Refusal::field("capture.username", "has leading or trailing spaces"));
    }
    check_chars(
        "username",
        v,
        64,
        |c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == ' ',
        "letters, digits, spaces, '_', '-' and '.'",
    )
}

fn check_session_id(v: &str) -> Result<String, Refusal> {
    check_chars(
        "sessionId",
        v,
        128,
        |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
        "letters, digits, '-' and '_'",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_console_line_anywhere_in_a_log_line() {
        let c = parse_session("[tablet] console: LOGIN COMMUNITY: {TEST2} USERNAME: {SonoranBrian1} SESSIONID: {75afeea-a869-4dea-b2} (index.js:12)").unwrap();
        assert_eq!(c, Capture::login(Some("TEST2".into()), "SonoranBrian1", "75afeea-a869-4dea-b2"));
        let c = parse_session("LOGIN   COMMUNITY:{TEST2}\tUSERNAME:  {Brian Smith}\nSESSIONID: {abc}").unwrap();
        assert_eq!(c, Capture::login(Some("TEST2".into()), "Brian Smith", "abc"));
    }

    #[test]
    fn iframe_message_as_object_or_text() {
        let c = parse_session_value(&json!({"username": "SonoranBrian", "session": "75afeea-a869"})).unwrap();
        assert_eq!(c, Capture::login(None, "SonoranBrian", "75afeea-a869"));
        assert_eq!(parse_session(r#" {"username": "SonoranBrian", "session": "75afeea-a869"} "#).unwrap(), c);
        assert_eq!(parse_session_value(&json!(r#"{"username":"SonoranBrian","session":"75afeea-a869"}"#)).unwrap(), c);
    }

    #[test]
    fn the_v2_account_link_message_as_object_or_text() {
        let msg = json!({"type": "scad:account-link", "accountUuid": "91DE0CE8-C571-11E9-9714-5600023B2434",
            "secretUuid": "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"});
        let c = parse_session_value(&msg).unwrap();
        assert_eq!(
            c,
            Capture::AccountLink {
                account_uuid: "91de0ce8-c571-11e9-9714-5600023b2434".into(),
                secret_uuid: "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3".into()
            }
        );
        assert_eq!(parse_session(&msg.to_string()).unwrap(), c);
        for bad in [
            json!({"type": "scad:account-link", "accountUuid": "x", "secretUuid": "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"}),
            json!({"type": "scad:account-link", "accountUuid": "91de0ce8-c571-11e9-9714-5600023b2434"}),
            json!({"type": "other", "accountUuid": "91de0ce8-c571-11e9-9714-5600023b2434"}),
            json!({"type": "scad:account-link", "accountUuid": "91de0ce8-c571-11e9-9714-5600023b2434",
                "secretUuid": "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3", "communityUserId": "smuggled"}),
        ] {
            let e = parse_session_value(&bad).expect_err(&bad.to_string());
            assert!(e.message().starts_with("capture."), "{e}");
        }
    }

    #[test]
    fn hostile_captures_are_refused() {
        let bad = [
            r#"{"username": "a", "session": "b", "community": "OTHER"}"#.to_string(),
            r#"{"username": "a\", \"apiIds\": [\"x\"]", "session": "b"}"#.to_string(),
            r#"{"username": "a", "session": "b\"c"}"#.to_string(),
            "LOGIN COMMUNITY: {TEST2} USERNAME: {a\"b} SESSIONID: {x}".to_string(),
            "LOGIN COMMUNITY: {TE ST} USERNAME: {a} SESSIONID: {x}".to_string(),
            "LOGIN COMMUNITY: {T} USERNAME: {a} SESSIONID: {x} LOGIN COMMUNITY: {U} USERNAME: {b} SESSIONID: {y}"
                .to_string(),
            "LOGIN COMMUNITY: {T} USERNAME: {} SESSIONID: {x}".to_string(),
            "LOGIN COMMUNITY: {T} USERNAME: {a}".to_string(),
            "hello world".to_string(),
            format!("LOGIN COMMUNITY: {{T}} USERNAME: {{a}} SESSIONID: {{{}}}", "x".repeat(5000)),
            r#"{"username": 5, "session": "b"}"#.to_string(),
            "[1,2]".to_string(),
        ];
        for b in &bad {
            let e = parse_session(b).expect_err(b);
            assert!(e.message().starts_with("capture"), "{e}");
        }
    }
}
