//! The legacy Sonoran CAD wire format, in one place: base URLs, the path of each request type,
//! the JSON body envelope and the error strings the API answers with.
//!
//! A second backend (the vendor's newer `/v2` API) would sit beside this module; nothing outside
//! it knows a path, an envelope key or an error string.

use crate::response::{ErrorCode, Failure, Success};
use serde_json::Value;
use std::borrow::Cow;

/// `api_url = "production"`.
pub const PRODUCTION_URL: &str = "https://api.sonorancad.com";
/// `api_url = "development"` (separate data, reset at random).
pub const DEVELOPMENT_URL: &str = "https://staging-api.dev.sonorancad.com";

/// The section (first path segment) of each request type this library knows.
/// Everything else must be registered with the `sections` or `paths` configuration.
const SECTIONS: &[(&str, &str)] = &[
    // general
    ("GET_VERSION", "general"),
    ("CHECK_APIID", "general"),
    ("SET_API_ID", "general"),
    ("GET_ACCOUNT", "general"),
    ("GET_ACCOUNTS", "general"),
    ("SET_ACCOUNT_PERMISSIONS", "general"),
    ("BAN_USER", "general"),
    ("KICK_USER", "general"),
    ("SET_PENAL_CODES", "general"),
    ("SET_POSTALS", "general"),
    ("SEND_PHOTO", "general"),
    ("GET_SERVERS", "general"),
    ("SET_SERVERS", "general"),
    ("SET_CLOCK", "general"),
    ("JOIN_COMMUNITY", "general"),
    ("LEAVE_COMMUNITY", "general"),
    // civilian
    ("GET_CHARACTERS", "civilian"),
    ("NEW_CHARACTER", "civilian"),
    ("EDIT_CHARACTER", "civilian"),
    ("REMOVE_CHARACTER", "civilian"),
    ("LINK_CHARACTER", "civilian"),
    // emergency
    ("MODIFY_IDENTIFIER", "emergency"),
    ("GET_IDENTIFIERS", "emergency"),
    ("SET_IDENTIFIER", "emergency"),
    ("UNIT_STATUS", "emergency"),
    ("UNIT_LOCATION", "emergency"),
    ("UNIT_PANIC", "emergency"),
    ("KICK_UNIT", "emergency"),
    ("GET_ACTIVE_UNITS", "emergency"),
    ("GET_CALLS", "emergency"),
    ("GET_CURRENT_CALL", "emergency"),
    ("CALL_911", "emergency"),
    ("REMOVE_911", "emergency"),
    ("NEW_DISPATCH", "emergency"),
    ("ATTACH_UNIT", "emergency"),
    ("DETACH_UNIT", "emergency"),
    ("SET_CALL_POSTAL", "emergency"),
    ("SET_CALL_PRIMARY", "emergency"),
    ("ADD_CALL_NOTE", "emergency"),
    ("CLOSE_CALL", "emergency"),
    ("LOOKUP", "emergency"),
    ("NEW_RECORD", "emergency"),
    ("EDIT_RECORD", "emergency"),
    ("REMOVE_RECORD", "emergency"),
    ("ADD_BLIP", "emergency"),
    ("MODIFY_BLIP", "emergency"),
    ("REMOVE_BLIP", "emergency"),
    ("GET_BLIPS", "emergency"),
];

/// The built-in section of a request type, if the library knows it.
pub fn builtin_section(request_type: &str) -> Option<&'static str> {
    SECTIONS.iter().find(|(t, _)| *t == request_type).map(|(_, s)| *s)
}

/// The default path of a type in a section: `/{section}/{lower(type)}`.
pub fn default_path(section: &str, request_type: &str) -> String {
    format!("/{section}/{}", request_type.to_ascii_lowercase())
}

/// The JSON body of one call: `{"id", "key", "type", "data": [...]}`. `data` is always an array.
///
/// The result holds the API key: it is handed to the HTTP layer and never logged or formatted.
pub fn encode_body(community_id: &str, api_key: &str, request_type: &str, data: &[Value]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        id: &'a str,
        key: &'a str,
        #[serde(rename = "type")]
        request_type: &'a str,
        data: &'a [Value],
    }
    serde_json::to_vec(&Envelope { id: community_id, key: api_key, request_type, data })
        .expect("serializing a JSON value cannot fail")
}

/// The answer to `POST` on a path the backend does not route (HTTP 200).
fn is_backend_service_reached(text: &str) -> bool {
    let t = text.trim();
    t.eq_ignore_ascii_case("Backend Service Reached") || t.eq_ignore_ascii_case("Sonoran CAD: Backend Service Reached")
}

/// The documented error strings and their codes.
const ERROR_STRINGS: &[(&str, ErrorCode)] = &[
    ("INVALID REQUEST TYPE", ErrorCode::InvalidRequestType),
    ("INVALID COMMUNITY ID", ErrorCode::InvalidCommunityId),
    ("API IS NOT ENABLED FOR THIS COMMUNITY", ErrorCode::ApiNotEnabled),
    ("API ENDPOINT IS NOT ENABLED FOR THIS COMMUNITY", ErrorCode::ApiNotEnabled),
    ("INVALID API KEY", ErrorCode::InvalidApiKey),
    ("API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY", ErrorCode::NotLinked),
];

/// The code of a documented error string, matched on the trimmed body, case-insensitively.
pub fn error_code_of(text: &str) -> Option<ErrorCode> {
    let t = text.trim();
    ERROR_STRINGS.iter().find(|(s, _)| t.eq_ignore_ascii_case(s)).map(|(_, c)| *c)
}

/// An HTTP answer as the transport saw it.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    /// A 3xx answer's `Location`, as an origin (`scheme://host:port`), never followed.
    pub redirect_to: Option<String>,
    pub body: Vec<u8>,
}

/// Parse a `Retry-After` value (delay in seconds, or an HTTP date) into milliseconds from `now`.
/// Saturating: an absurd value gives a huge number, which the client caps.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<u64> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some((secs * 1000.0).ceil().min(u64::MAX as f64) as u64);
        }
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).map(|d| d.as_millis().min(u64::MAX as u128) as u64).unwrap_or(0))
}

/// The text of an answer as the API means it: surrounding whitespace trimmed, and a JSON string
/// (`"INVALID API KEY"`, `"Identifier 123 removed!"`) unquoted.
pub fn answer_text(text: &str) -> Cow<'_, str> {
    let t = text.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        if let Ok(Value::String(inner)) = serde_json::from_str::<Value>(t) {
            return Cow::Owned(inner.trim().to_string());
        }
    }
    Cow::Borrowed(t)
}

/// Turn an HTTP answer to a call of `request_type` into a success or a classified failure.
///
/// Server texts are carried whole into the failure's message: the client redacts secrets from
/// it first and clips it after.
pub fn classify(request_type: &str, raw: RawResponse) -> Result<Success, Failure> {
    let status = raw.status;
    let lossy;
    let text = match std::str::from_utf8(&raw.body) {
        Ok(t) => t,
        // A failure status is classified by its status whatever its body (a 429 must pause and
        // a 5xx may be retried even when the body is garbage).
        Err(_) if !(200..300).contains(&status) => {
            lossy = String::from_utf8_lossy(&raw.body).into_owned();
            &lossy
        }
        Err(_) => {
            return Err(Failure::new(
                status,
                ErrorCode::BadResponse,
                format!("HTTP {status}: the answer body ({} bytes) is not UTF-8", raw.body.len()),
            ))
        }
    };
    let is_json_type = raw
        .content_type
        .as_deref()
        .map(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            ct == "application/json" || ct.ends_with("+json")
        })
        .unwrap_or(false);
    let said = answer_text(text);

    if status == 429 {
        let retry_after_ms =
            raw.retry_after.as_deref().and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let detail = message_of(text).unwrap_or_else(|| "API rate limit exceeded".to_string());
        let mut f =
            Failure::new(status, ErrorCode::RateLimited, format!("rate limited by the API (HTTP 429): {detail}"));
        f.retry_after_ms = retry_after_ms;
        return Err(f);
    }
    if let Some(code) = error_code_of(&said) {
        return Err(Failure::new(status, code, said.into_owned()));
    }
    if (300..400).contains(&status) {
        let to = raw.redirect_to.as_deref().unwrap_or("an address it did not give (no Location)");
        return Err(Failure::new(
            status,
            ErrorCode::HttpError,
            format!(
                "HTTP {status}: the server redirected to {to}; not followed: the API documents no redirects, \
                 and following one would send the API key to another address (check api_url)"
            ),
        ));
    }
    if (200..300).contains(&status) {
        if is_backend_service_reached(&said) {
            return Err(Failure::new(
                status,
                ErrorCode::InvalidEndpoint,
                format!(
                    "the API answered '{said}': no endpoint at this path (check the type's section or the `paths` configuration)"
                ),
            ));
        }
        let data = parse_body(text, is_json_type).map_err(|e| {
            Failure::new(
                status,
                ErrorCode::BadResponse,
                format!("HTTP {status} with a JSON content type but an invalid JSON body: {e}"),
            )
        })?;
        return Ok(Success { status, data: shape(request_type, data) });
    }
    let detail = message_of(text).unwrap_or_else(|| said.into_owned());
    if (500..600).contains(&status) {
        return Err(Failure::new(status, ErrorCode::ServerError, format!("server error HTTP {status}: {detail}")));
    }
    Err(Failure::new(status, ErrorCode::HttpError, format!("HTTP {status}: {detail}")))
}

/// A success body: JSON when the content type says so, or when a text body parses as a JSON
/// object or array; otherwise the text itself. A text answer is trimmed, a JSON string
/// unquoted ([`answer_text`]).
fn parse_body(text: &str, is_json_type: bool) -> Result<Value, serde_json::Error> {
    if is_json_type {
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_str(text).map(|v| match v {
            Value::String(s) => Value::String(s.trim().to_string()),
            v => v,
        });
    }
    let t = text.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(v) = serde_json::from_str(text) {
            return Ok(v);
        }
    }
    Ok(Value::String(answer_text(text).into_owned()))
}

/// Answers whose type must not depend on the content type: GET_VERSION is always its text
/// (`"4"`, whether the server sent the number 4 or the text).
fn shape(request_type: &str, data: Value) -> Value {
    match (request_type, data) {
        ("GET_VERSION", Value::Number(n)) => Value::String(n.to_string()),
        ("GET_VERSION", Value::Object(o)) if o.get("version").is_some_and(|v| v.is_string() || v.is_number()) => {
            match &o["version"] {
                Value::String(s) => Value::String(s.trim().to_string()),
                v => Value::String(v.to_string()),
            }
        }
        (_, data) => data,
    }
}

/// The `message` of a JSON error body (`{"message": "..."}`), or `None`.
fn message_of(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    v.get("message").and_then(Value::as_str).map(|m| m.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(status: u16, ct: Option<&str>, body: &[u8]) -> RawResponse {
        RawResponse {
            status,
            content_type: ct.map(str::to_string),
            retry_after: None,
            redirect_to: None,
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
            classify("CHECK_APIID", raw(200, Some("text/html"), b"Sonoran CAD: Backend Service Reached"))
                .unwrap_err()
                .code,
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
        assert_eq!(
            classify("CHECK_APIID", raw(200, Some("text/plain"), b"{not json")).unwrap().data,
            json!("{not json")
        );
    }

    #[test]
    fn retry_after_in_seconds_or_http_date() {
        let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("5", now), Some(5000));
        assert_eq!(parse_retry_after("1.5", now), Some(1500));
        let later = httpdate::fmt_http_date(now + std::time::Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(30_000));
        assert_eq!(parse_retry_after("soon", now), None);
        let mut r = raw(429, Some("application/json"), br#"{"message":"API rate limit exceeded"}"#);
        r.retry_after = Some("2".into());
        let f = classify("CHECK_APIID", r).unwrap_err();
        assert_eq!((f.code, f.retry_after_ms), (ErrorCode::RateLimited, Some(2000)));
        assert!(f.message.contains("API rate limit exceeded"));
    }
}
