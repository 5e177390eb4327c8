//! The legacy Sonoran CAD wire format, in one room: the path of each request type, the JSON
//! body envelope `{"id", "key", "type", "data"}` that carries the community id and the API key,
//! the error strings the API answers with, and which calls may be repeated or coalesced.

use super::answer::{answer_text, body_text, is_json, message_of, parse_retry_after, redirect_failure};
use super::{Api, Header, Method, Outgoing, RawResponse, RetryClass};
use crate::error::Refusal;
use crate::request::{Call, Kind};
use crate::response::{ErrorCode, Failure, Outcome, Success};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The legacy API of one community: its id and key go in every body.
pub(crate) struct Legacy {
    community_id: String,
    api_key: String,
    /// Per-type path overrides (`paths`).
    paths: HashMap<String, String>,
    /// Sections of types the built-in table lacks (`sections`).
    sections: HashMap<String, String>,
}

impl Legacy {
    pub(crate) fn new(
        community_id: &str,
        api_key: &str,
        paths: &HashMap<String, String>,
        sections: &HashMap<String, String>,
    ) -> Legacy {
        Legacy {
            community_id: community_id.to_string(),
            api_key: api_key.to_string(),
            paths: paths.clone(),
            sections: sections.clone(),
        }
    }

    /// The path a request type is sent to: the `paths` override, else
    /// `/{section}/{lower(type)}` with the section from `sections` or the built-in table.
    fn path_for(&self, request_type: &str) -> Result<String, Refusal> {
        if let Some(p) = self.paths.get(request_type) {
            return Ok(p.clone());
        }
        let section =
            self.sections.get(request_type).map(String::as_str).or_else(|| builtin_section(request_type)).ok_or_else(
                || {
                    Refusal::new(format!(
                        "type: {request_type} is not a type this library knows; register its section with the \
                     `sections` configuration (e.g. {{\"{request_type}\": \"general\"}}) or its path with `paths`"
                    ))
                },
            )?;
        Ok(format!("/{section}/{}", request_type.to_ascii_lowercase()))
    }
}

impl Api for Legacy {
    fn headers(&self) -> Vec<Header> {
        Vec::new()
    }

    /// `POST {path}` with `{"id", "key", "type", "data": [...]}`; `data` is always an array.
    fn encode(&self, call: &Call) -> Result<Outgoing, Refusal> {
        #[derive(serde::Serialize)]
        struct Envelope<'a> {
            id: &'a str,
            key: &'a str,
            #[serde(rename = "type")]
            request_type: &'a str,
            data: &'a [Value],
        }
        let path = self.path_for(&call.request_type)?;
        let envelope =
            Envelope { id: &self.community_id, key: &self.api_key, request_type: &call.request_type, data: &call.data };
        let body = serde_json::to_vec(&envelope).expect("serializing a JSON value cannot fail");
        Ok(Outgoing { method: Method::Post, path, body: Some(body), not_found: ErrorCode::NotLinked })
    }

    fn decode(&self, _out: &Outgoing, request_type: &str, raw: RawResponse) -> Outcome {
        classify(request_type, raw)
    }

    fn retry_class(&self, call: &Call) -> RetryClass {
        retry_class(&call.request_type, &call.data)
    }

    fn pacing_key(&self, call: &Call) -> Arc<str> {
        call.request_type.clone()
    }

    /// The session ids the call's elements carry (`sessionId`).
    fn secrets<'c>(&self, call: &'c Call) -> Vec<&'c str> {
        call.data.iter().filter_map(|v| v.get("sessionId").and_then(Value::as_str)).collect()
    }
}

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
pub(crate) fn builtin_section(request_type: &str) -> Option<&'static str> {
    SECTIONS.iter().find(|(t, _)| *t == request_type).map(|(_, s)| *s)
}

/// Types whose requests may be coalesced: the API answers one text for the whole call
/// (`API ID(s) set!`, `User account permissions updated.`, the link texts), and repeating them
/// is harmless, so a batch can be retried like a single request.
pub(crate) const COALESCABLE: [&str; 3] = ["SET_API_ID", "SET_ACCOUNT_PERMISSIONS", "LINK_CHARACTER"];

/// Whether `coalesce` may name this type.
pub(crate) fn may_coalesce(request_type: &str) -> bool {
    COALESCABLE.contains(&request_type)
}

/// Generic types (beyond the typed ones) that set a value, so repeating them is harmless.
const REPEATABLE_OTHER: &[&str] =
    &["LOOKUP", "UNIT_STATUS", "UNIT_LOCATION", "SET_CLOCK", "SET_POSTALS", "SET_PENAL_CODES", "SET_SERVERS"];

/// The retry class of a call of `request_type` carrying `data` (the table in the README,
/// "Retry classes"). A call of several elements is repeatable only if every element is.
fn retry_class(request_type: &str, data: &[Value]) -> RetryClass {
    let all = |f: &dyn Fn(&Value) -> bool| if data.iter().all(f) { RetryClass::Repeatable } else { RetryClass::Once };
    match Kind::of(request_type) {
        Kind::GetAccount | Kind::CheckApiId | Kind::SetApiId | Kind::LinkCharacter => RetryClass::Repeatable,
        Kind::SetAccountPermissions => all(&|v| v.get("join").and_then(Value::as_bool) != Some(true)),
        Kind::ModifyIdentifier => all(&|v| v.get("action").and_then(Value::as_u64) == Some(1)),
        Kind::Other if request_type.starts_with("GET_") || REPEATABLE_OTHER.contains(&request_type) => {
            RetryClass::Repeatable
        }
        Kind::Other => RetryClass::Once,
    }
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
fn error_code_of(text: &str) -> Option<ErrorCode> {
    let t = text.trim();
    ERROR_STRINGS.iter().find(|(s, _)| t.eq_ignore_ascii_case(s)).map(|(_, c)| *c)
}

/// Turn an HTTP answer to a call of `request_type` into a success or a classified failure.
pub(crate) fn classify(request_type: &str, raw: RawResponse) -> Result<Success, Failure> {
    let status = raw.status;
    let text = body_text(&raw)?;
    let said = answer_text(&text);
    if status == 429 {
        let retry_after_ms =
            raw.retry_after.as_deref().and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let detail = message_of(&text).unwrap_or_else(|| "API rate limit exceeded".to_string());
        let mut f =
            Failure::new(status, ErrorCode::RateLimited, format!("rate limited by the API (HTTP 429): {detail}"));
        f.retry_after_ms = retry_after_ms;
        return Err(f);
    }
    if let Some(code) = error_code_of(&said) {
        return Err(Failure::new(status, code, said.into_owned()));
    }
    if (300..400).contains(&status) {
        return Err(redirect_failure(&raw));
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
        let data = parse_body(&text, is_json(&raw)).map_err(|e| {
            Failure::new(
                status,
                ErrorCode::BadResponse,
                format!("HTTP {status} with a JSON content type but an invalid JSON body: {e}"),
            )
        })?;
        return Ok(Success::new(status, shape(request_type, data)));
    }
    let detail = message_of(&text).unwrap_or_else(|| said.into_owned());
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

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
