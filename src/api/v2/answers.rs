//! Reading a v2 answer: a success's JSON (with the answers whose meaning must not differ
//! from legacy shaped alike), problem+json errors mapped to codes, the waits a 429 asks for.

use super::{text, SET_COMMUNITY_LINK};
use crate::api::answer::{answer_text, body_text, is_json, parse_retry_after, redirect_failure};
use crate::api::{Outgoing, RawResponse};
use crate::response::{ErrorCode, Failure, Outcome, Success};
use serde_json::Value;

/// An answer to a v2 call.
pub(super) fn decode(out: &Outgoing, request_type: &str, raw: RawResponse) -> Outcome {
    let status = raw.status;
    let text = body_text(&raw)?;
    let json: Option<Value> = if is_json(&raw) { serde_json::from_str(&text).ok() } else { None };
    if (200..300).contains(&status) {
        if is_json(&raw) && json.is_none() && !text.trim().is_empty() {
            return Err(Failure::new(
                status,
                ErrorCode::BadResponse,
                format!("HTTP {status}: invalid JSON under a JSON content type"),
            ));
        }
        let data = json.unwrap_or_else(|| {
            if text.trim().is_empty() {
                Value::Null
            } else {
                Value::String(answer_text(&text).into_owned())
            }
        });
        return shape(request_type, status, data);
    }
    if (300..400).contains(&status) {
        return Err(redirect_failure(&raw));
    }
    let problem = json.as_ref().and_then(Value::as_object);
    let field =
        |k: &str| problem.and_then(|p| p.get(k)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let said = match (field("title"), field("detail").or_else(|| field("message"))) {
        (Some(t), Some(d)) => format!("{t}: {d}"),
        (Some(t), None) => t.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => answer_text(&text).into_owned(),
    };
    let code = match status {
        401 => ErrorCode::InvalidApiKey,
        403 => ErrorCode::Forbidden,
        404 => out.not_found,
        400 | 422 => ErrorCode::InvalidRequest,
        409 => ErrorCode::Conflict,
        429 => ErrorCode::RateLimited,
        500..=599 => ErrorCode::ServerError,
        _ => ErrorCode::HttpError,
    };
    let mut f = Failure::new(status, code, format!("HTTP {status}: {said}"));
    f.trace_id = field("traceId").map(str::to_string);
    if status == 429 {
        f.message = format!(
            "rate limited by the API (HTTP 429): {}",
            if said.is_empty() { "API rate limit exceeded" } else { &said }
        );
        f.retry_after_ms = retry_after(&raw);
    }
    if status == 403 && request_type == SET_COMMUNITY_LINK {
        f.message = format!(
            "HTTP 403: the account and secret UUIDs do not match an account in this community (the player should log \
             into the CAD in the tablet again): {said}"
        );
    }
    Err(f)
}

/// The wait a 429 asks for: `Retry-After`, else `RateLimit-Reset` (seconds), else
/// `X-RateLimit-Reset` (an epoch time when at least 10^9, else seconds).
fn retry_after(raw: &RawResponse) -> Option<u64> {
    let now = std::time::SystemTime::now();
    if let Some(ms) = raw.retry_after.as_deref().and_then(|v| parse_retry_after(v, now)) {
        return Some(ms);
    }
    let reset: f64 = raw.rate_limit_reset.as_deref()?.trim().parse().ok()?;
    if !reset.is_finite() || reset < 0.0 {
        return None;
    }
    if reset >= 1e9 {
        let epoch = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
        return Some(((reset - epoch).max(0.0) * 1000.0) as u64);
    }
    Some((reset * 1000.0).min(u64::MAX as f64) as u64)
}

/// Answers whose meaning is the same on both APIs: CHECK_APIID is ok only when linked (an
/// unlinked player is `NOT_LINKED`, as in legacy, also for the observed `{"success": false}`);
/// GET_VERSION is the version as text.
fn shape(request_type: &str, status: u16, data: Value) -> Outcome {
    match request_type {
        "CHECK_APIID" if data.get("linked").and_then(Value::as_bool) == Some(true) => Ok(Success::new(status, data)),
        "CHECK_APIID" => Err(Failure::new(
            status,
            ErrorCode::NotLinked,
            "not linked: the player has not linked a CAD account in this community (links/check)",
        )),
        "GET_VERSION" => {
            Ok(Success::new(status, Value::String(data.get("version").map(text).unwrap_or_else(|| text(&data)))))
        }
        _ => Ok(Success::new(status, data)),
    }
}
