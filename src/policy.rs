//! What the client does after a failed send: which requests may be repeated, the retry
//! backoff, and the stop that a fatal configuration answer puts on sending.
//!
//! # Retry classes
//! A request is **repeatable** when sending it twice has the same effect as sending it once:
//!
//! | type | class | why |
//! |---|---|---|
//! | GET_VERSION, CHECK_APIID, GET_ACCOUNT, every `GET_*`, LOOKUP | repeatable | reads |
//! | SET_API_ID (every form) | repeatable | `id1`/`id2` and `pushNew: false` set values; `pushNew: true` appends, and the server drops duplicates |
//! | SET_ACCOUNT_PERMISSIONS without `join` | repeatable | `add`/`remove`/`set`/`active` set flags to given values |
//! | SET_ACCOUNT_PERMISSIONS with `join: true` | not repeatable | a forced join is an action whose repeat is undocumented |
//! | LINK_CHARACTER (ADD, REMOVE) | repeatable | the link is set membership |
//! | MODIFY_IDENTIFIER EDIT | repeatable | the same fields set to the same values |
//! | MODIFY_IDENTIFIER ADD | **not repeatable** | each ADD creates another identifier |
//! | MODIFY_IDENTIFIER REMOVE | not repeatable | a repeat after a lost answer would report `IDENTIFIER NOT FOUND` for a removal that worked |
//! | UNIT_STATUS, UNIT_LOCATION, SET_CLOCK, SET_POSTALS, SET_PENAL_CODES, SET_SERVERS | repeatable | they set a value |
//! | any other type | not repeatable | unknown effect |
//!
//! When a call carries several elements it is repeatable only if every element is.
//!
//! # What is retried
//! - A 429: always (the API refused it, nothing was applied), after the type's pause.
//! - A failure to connect, or a connect timeout: always (nothing was sent).
//! - A 5xx, a connection dropped after sending: only repeatable requests. A request that is not
//!   repeatable and may have reached the API completes with that error, never sent twice.
//! - Anything else (4xx, bad answers, the whole request timing out): never.
//!
//! Retries stop at `max_attempts` sends, or when the next wait would pass the deadline.

use crate::request::Kind;
use crate::response::{ErrorCode, Failure};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Whether a request may be sent again after it may have reached the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Sending it twice has the effect of sending it once.
    Repeatable,
    /// Never sent twice once a byte may have reached the API.
    Once,
}

/// Generic types (beyond the typed ones) that set a value, so repeating them is harmless.
const REPEATABLE_OTHER: &[&str] =
    &["LOOKUP", "UNIT_STATUS", "UNIT_LOCATION", "SET_CLOCK", "SET_POSTALS", "SET_PENAL_CODES", "SET_SERVERS"];

/// The retry class of a call of `request_type` carrying `data`.
pub fn retry_class(request_type: &str, data: &[Value]) -> RetryClass {
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

/// Types whose requests may be coalesced: the API answers one text for the whole call
/// (`API ID(s) set!`, `User account permissions updated.`, the link texts), and repeating them
/// is harmless, so a batch can be retried like a single request.
pub const COALESCABLE: [&str; 3] = ["SET_API_ID", "SET_ACCOUNT_PERMISSIONS", "LINK_CHARACTER"];

/// Whether `coalesce` may name this type.
pub fn may_coalesce(request_type: &str) -> bool {
    COALESCABLE.contains(&request_type)
}

/// Whether a failure says that nothing was sent: the connection could not be made (the
/// transport's only timeout is its connect timeout, so a transport timeout is one too).
pub(crate) fn nothing_sent(f: &Failure) -> bool {
    f.status == 0
        && match f.code {
            ErrorCode::Network => f.message.starts_with("could not connect"),
            ErrorCode::Timeout => f.message.starts_with("timed out"),
            _ => false,
        }
}

/// What to do after a failed send (other than 429 and fatal answers, handled by the caller).
pub(crate) fn may_retry(f: &Failure, class: RetryClass) -> bool {
    if nothing_sent(f) {
        return true;
    }
    match f.code {
        ErrorCode::ServerError | ErrorCode::Network => class == RetryClass::Repeatable,
        _ => false,
    }
}

/// The wait before retry number `retry` (1 = the first retry): `base * 2^(retry-1)` capped at
/// `max`, of which the upper half is random ("equal jitter"), so that many clients failing
/// together do not retry together.
pub(crate) fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(max);
    let half = exp / 2;
    half + half.mul_f64(jitter())
}

/// Uniform in `[0, 1)` (splitmix64 over a shared counter, seeded by the clock).
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut s = STATE.load(Ordering::Relaxed);
    if s == 0 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x1234_5678)
            | 1;
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    s = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Why sending is stopped.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    pub cause: ErrorCode,
    pub text: String,
    pub until: Instant,
}

#[derive(Default)]
struct Stops {
    all: Option<Stop>,
    types: HashMap<String, Stop>,
}

/// Sending stopped after fatal configuration answers: `INVALID_API_KEY` and
/// `INVALID_COMMUNITY_ID` stop every type, `API_NOT_ENABLED` its own type, until the cool-down
/// passes or the client is resumed. This keeps a misconfigured server from repeating a bad
/// request until its community is blacklisted.
#[derive(Default)]
pub(crate) struct Breaker {
    stops: Mutex<Stops>,
    /// Whether any stop may be in force: while not, `check` answers without the lock.
    any: AtomicBool,
}

/// What `Breaker::check` found.
pub(crate) enum Check {
    Open,
    /// A stop ran out just now (worth a log line).
    Reopened(Stop),
    Stopped {
        stop: Stop,
        every_type: bool,
    },
}

impl Breaker {
    fn lock(&self) -> MutexGuard<'_, Stops> {
        self.stops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ty` may be sent now.
    pub(crate) fn check(&self, ty: &str) -> Check {
        if !self.any.load(Ordering::Acquire) {
            return Check::Open;
        }
        let now = Instant::now();
        let mut s = self.lock();
        let mut reopened = None;
        if let Some(stop) = &s.all {
            if stop.until > now {
                return Check::Stopped { stop: stop.clone(), every_type: true };
            }
            reopened = s.all.take();
        }
        if let Some(stop) = s.types.get(ty) {
            if stop.until > now {
                return Check::Stopped { stop: stop.clone(), every_type: false };
            }
            reopened = s.types.remove(ty);
        }
        if s.all.is_none() && s.types.is_empty() {
            self.any.store(false, Ordering::Release);
        }
        reopened.map_or(Check::Open, Check::Reopened)
    }

    /// Stop one type (`Some`) or every type (`None`).
    pub(crate) fn trip(&self, ty: Option<&str>, cause: ErrorCode, text: &str, cooldown: Duration) {
        let stop = Stop { cause, text: text.to_string(), until: Instant::now() + cooldown };
        let mut s = self.lock();
        self.any.store(true, Ordering::Release);
        match ty {
            None => s.all = Some(stop),
            Some(t) => {
                s.types.insert(t.to_string(), stop);
            }
        }
    }

    pub(crate) fn reset(&self) {
        let mut s = self.lock();
        *s = Stops::default();
        self.any.store(false, Ordering::Release);
    }

    /// `(None, stop)` for the stop of every type, `(Some(type), stop)` per type; live ones only.
    pub(crate) fn snapshot(&self) -> Vec<(Option<String>, Stop)> {
        let now = Instant::now();
        let s = self.lock();
        let mut v: Vec<(Option<String>, Stop)> =
            s.all.iter().filter(|x| x.until > now).map(|x| (None, x.clone())).collect();
        let mut types: Vec<_> =
            s.types.iter().filter(|(_, x)| x.until > now).map(|(t, x)| (Some(t.clone()), x.clone())).collect();
        types.sort_by(|a, b| a.0.cmp(&b.0));
        v.extend(types);
        v
    }
}

/// The failure of a request refused because sending is stopped.
pub(crate) fn disabled_failure(ty: &str, stop: &Stop, every_type: bool) -> Failure {
    let left = stop.until.saturating_duration_since(Instant::now()).as_millis();
    let scope = if every_type { "every request type".to_string() } else { ty.to_string() };
    let mut f = Failure::new(
        0,
        ErrorCode::ApiDisabled,
        format!(
            "not sent: sending {scope} is stopped since the API answered {} ('{}'); fix the configuration and \
             create a new client, call resume(), or wait {left} ms (disable_cooldown_ms)",
            stop.cause, stop.text
        ),
    );
    f.disabled_by = Some(stop.cause);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let base = Duration::from_millis(100);
        for _ in 0..100 {
            let b1 = backoff(base, Duration::from_secs(1), 1);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&b1), "{b1:?}");
            let b3 = backoff(base, Duration::from_secs(1), 3);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&b3), "{b3:?}");
            let b9 = backoff(base, Duration::from_secs(1), 9);
            assert!(b9 <= Duration::from_secs(1), "{b9:?}");
        }
    }

    #[test]
    fn only_connect_failures_count_as_nothing_sent() {
        assert!(nothing_sent(&Failure::new(0, ErrorCode::Network, "could not connect: refused")));
        assert!(!nothing_sent(&Failure::new(0, ErrorCode::Network, "the request failed: reset")));
        assert!(!nothing_sent(&Failure::new(503, ErrorCode::ServerError, "server error")));
        assert!(may_retry(&Failure::new(0, ErrorCode::Network, "could not connect: x"), RetryClass::Once));
        assert!(!may_retry(&Failure::new(0, ErrorCode::Network, "the request failed: x"), RetryClass::Once));
        assert!(may_retry(&Failure::new(0, ErrorCode::Network, "the request failed: x"), RetryClass::Repeatable));
        assert!(!may_retry(&Failure::new(500, ErrorCode::ServerError, "x"), RetryClass::Once));
        assert!(!may_retry(&Failure::new(404, ErrorCode::NotLinked, "x"), RetryClass::Repeatable));
    }
}
