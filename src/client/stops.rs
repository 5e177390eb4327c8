//! The stop that a fatal configuration answer puts on sending: `INVALID_API_KEY` and
//! `INVALID_COMMUNITY_ID` stop every type, `API_NOT_ENABLED` its own type, until the cool-down
//! passes or the client is resumed. This keeps a misconfigured server from repeating a bad
//! request until its community is blacklisted.

use crate::response::{ErrorCode, Failure};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Why sending is stopped.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    pub cause: ErrorCode,
    pub text: String,
    pub until: Instant,
    /// Learned from another server of the key (`shared_budget`): a copy of the stop in Redis.
    pub borrowed: bool,
}

#[derive(Default)]
struct InForce {
    all: Option<Stop>,
    types: HashMap<String, Stop>,
}

/// The stops in force (see the module documentation).
#[derive(Default)]
pub(crate) struct Stops {
    stops: Mutex<InForce>,
    /// Whether any stop may be in force: while not, `check` answers without the lock.
    any: AtomicBool,
}

/// What `Stops::check` found.
pub(crate) enum Check {
    Open,
    /// A stop ran out just now (worth a log line).
    Reopened(Stop),
    Stopped {
        stop: Stop,
        every_type: bool,
    },
}

impl Stops {
    fn lock(&self) -> MutexGuard<'_, InForce> {
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

    /// Stop one type (`Some`) or every type (`None`); `borrowed` when another server of the key
    /// met the answer (`shared_budget`).
    pub(crate) fn trip(&self, ty: Option<&str>, cause: ErrorCode, text: &str, cooldown: Duration, borrowed: bool) {
        let stop = Stop { cause, text: text.to_string(), until: Instant::now() + cooldown, borrowed };
        let mut s = self.lock();
        self.any.store(true, Ordering::Release);
        match ty {
            None => s.all = Some(stop),
            Some(t) => {
                s.types.insert(t.to_string(), stop);
            }
        }
    }

    /// Lift the borrowed stops that concern `ty` (of every type, and of `ty`).
    pub(crate) fn lift_borrowed(&self, ty: &str) {
        let mut s = self.lock();
        if s.all.as_ref().is_some_and(|x| x.borrowed) {
            s.all = None;
        }
        if s.types.get(ty).is_some_and(|x| x.borrowed) {
            s.types.remove(ty);
        }
        if s.all.is_none() && s.types.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }

    pub(crate) fn reset(&self) {
        let mut s = self.lock();
        *s = InForce::default();
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
