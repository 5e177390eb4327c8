//! Reading an HTTP answer, the parts every API shares: the body as text, whether it is JSON,
//! a text answer as the API means it, and the `Retry-After` header.

use super::RawResponse;
use crate::response::{ErrorCode, Failure};
use serde_json::Value;
use std::borrow::Cow;

/// The body as text. A success must be UTF-8; a failure status is classified by its status
/// whatever its body (a 429 must pause and a 5xx may be retried even when the body is garbage),
/// so its body is read lossily.
pub(crate) fn body_text(raw: &RawResponse) -> Result<Cow<'_, str>, Failure> {
    match std::str::from_utf8(&raw.body) {
        Ok(t) => Ok(Cow::Borrowed(t)),
        Err(_) if !(200..300).contains(&raw.status) => Ok(String::from_utf8_lossy(&raw.body)),
        Err(_) => Err(Failure::new(
            raw.status,
            ErrorCode::BadResponse,
            format!("HTTP {}: the answer body ({} bytes) is not UTF-8", raw.status, raw.body.len()),
        )),
    }
}

/// Whether the answer's `Content-Type` is JSON (`application/json`, or any `+json`).
pub(crate) fn is_json(raw: &RawResponse) -> bool {
    raw.content_type
        .as_deref()
        .map(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            ct == "application/json" || ct.ends_with("+json")
        })
        .unwrap_or(false)
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

/// The failure of a 3xx answer: never followed, whatever it names.
pub(crate) fn redirect_failure(raw: &RawResponse) -> Failure {
    let to = raw.redirect_to.as_deref().unwrap_or("an address it did not give (no Location)");
    Failure::new(
        raw.status,
        ErrorCode::HttpError,
        format!(
            "HTTP {}: the server redirected to {to}; not followed: the API documents no redirects, and following \
             one would send the API key to another address (check api_url)",
            raw.status
        ),
    )
}

/// The `message` of a JSON error body (`{"message": "..."}`), or `None`.
pub(crate) fn message_of(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    v.get("message").and_then(Value::as_str).map(|m| m.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_http_date() {
        let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("5", now), Some(5000));
        assert_eq!(parse_retry_after("1.5", now), Some(1500));
        let later = httpdate::fmt_http_date(now + std::time::Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(30_000));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("1e300", now), Some(u64::MAX));
    }

    #[test]
    fn text_answers_are_trimmed_and_json_strings_unquoted() {
        assert_eq!(answer_text(" SonoranBrian\n"), "SonoranBrian");
        assert_eq!(answer_text("\"Identifier 123 removed!\""), "Identifier 123 removed!");
        assert_eq!(answer_text("\"unterminated"), "\"unterminated");
    }
}
