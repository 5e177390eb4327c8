//! One rate budget for all the servers of an API key (`shared_budget`), kept in Redis.
//!
//! Every bucket of `rate_limits` (the global one, and the request's type or v2 route) is a
//! GCRA cell in Redis: one script (`EVALSHA`), one round trip per admission, checks the stops
//! and the pause of the request's bucket, then takes from every bucket at once or says how long
//! to wait. A 429 pause and a fatal stop taken by one server are written there too, and the
//! other servers of the key meet them at their next admission. Redis keys hold a hash of the
//! API key and of the bucket's name, never the key itself.
//!
//! Redis is never waited on for longer than `timeout_ms`. When it fails or is slow, the client
//! falls back to a local budget of `fallback_share` of each limit (logged once), keeps every
//! request's exactly-once promise, and tries Redis again every `retry_ms`; the first round trip
//! that works brings sharing back (logged once).

use super::pacing::Limiter;
use super::stats::Histogram;
use crate::config::{Rate, RateLimits, SharedBudget};
use crate::error::{Refusal, RefusalKind};
use crate::response::ErrorCode;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Checks the stops and the pause of a request's bucket, then takes one token from each of its
/// buckets, all or none (GCRA: each cell holds its "theoretical arrival time" in µs).
///
/// KEYS: the stop of every type, the stop of this type, the pause of this bucket, then one cell
/// per bucket. ARGV: then per bucket its emission interval and its burst tolerance (µs).
/// Answers `{0}` (go), `{1, ms}` (paused), `{2, cause, ms}` (every type stopped), `{3, cause,
/// ms}` (this type stopped) or `{4, ms}` (wait for a token).
const ADMIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, 2 do
  local cause = redis.call('GET', KEYS[i])
  if cause then return {i + 1, cause, redis.call('PTTL', KEYS[i])} end
end
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return {1, paused} end
local n = #KEYS - 3
local tats, wait = {}, 0
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[3 + i]) or now)
  if tat < now then tat = now end
  local allow = tat - tonumber(ARGV[2 * i])
  if allow - now > wait then wait = allow - now end
  tats[i] = tat
end
if wait > 0 then return {4, math.ceil(wait / 1000)} end
for i = 1, n do
  local nxt = tats[i] + tonumber(ARGV[2 * i - 1])
  redis.call('SET', KEYS[3 + i], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1000)
end
return {0}
"#;

/// What the shared budget says of one admission.
pub(crate) enum Admit {
    Go,
    /// No token yet: try again after this wait.
    Wait(Duration),
    /// The bucket is paused by a 429 (this server's or another's) for this long.
    Paused(Duration),
    /// Sending is stopped (every type, or the request's type) by a fatal answer.
    Stopped {
        every_type: bool,
        cause: ErrorCode,
        remaining: Duration,
    },
    /// Redis did not answer in time, or failed: use the local share.
    Unavailable,
}

/// One bucket as the script takes it.
struct Cell {
    key: String,
    interval_us: u64,
    tolerance_us: u64,
}

pub(crate) struct Shared {
    conn: ConnectionManager,
    script: redis::Script,
    /// `{prefix}:{<hash of the API key>}`: the hash tag keeps a key's cells in one cluster slot.
    base: String,
    limits: RateLimits,
    margin: Duration,
    timeout: Duration,
    retry: Duration,
    /// The local budget while Redis is away: `fallback_share` of each limit.
    pub(crate) fallback: Arc<Limiter>,
    sharing: AtomicBool,
    /// The mode last reported in the log (see `transition`).
    announced: AtomicBool,
    /// While not sharing: when to try Redis again.
    next_try: Mutex<Instant>,
    /// One admission at a time per bucket on this server: the others wait here, in order,
    /// instead of all asking Redis for the same next token.
    gates: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) round_trips: Histogram,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// Hex of the first `n` bytes of SHA-256(`parts` joined by NUL).
fn hash(parts: &[&str], n: usize) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            ctx.update(&[0]);
        }
        ctx.update(p.as_bytes());
    }
    ctx.finish().as_ref()[..n].iter().map(|b| format!("{b:02x}")).collect()
}

/// Each limit at `share` of itself (at least one request per hour, bursts of at least one).
fn scaled(limits: &RateLimits, share: f64) -> RateLimits {
    let scale = |r: &Rate| Rate {
        per_second: (r.per_second * share).max(1.0 / 3600.0),
        burst: ((r.burst as f64 * share).floor() as u32).max(1),
    };
    RateLimits {
        global: limits.global.as_ref().map(scale),
        per_type: limits.per_type.iter().map(|(k, r)| (k.clone(), scale(r))).collect(),
    }
}

impl Shared {
    /// The shared budget of `api_key` (nothing is connected yet: the first admission
    /// connects). Must run inside the client's runtime.
    pub(crate) fn new(
        cfg: &SharedBudget,
        api_key: &str,
        limits: &RateLimits,
        margin: Duration,
    ) -> Result<Shared, Refusal> {
        let client = redis::Client::open(cfg.redis_url.as_str()).map_err(|e| {
            Refusal::of(
                RefusalKind::InvalidConfig,
                format!("config.shared_budget.redis_url: not a usable Redis URL ({})", e.category()),
            )
        })?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout))
            .set_response_timeout(Some(cfg.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(cfg.retry);
        let conn = ConnectionManager::new_lazy_with_config(client, manager).map_err(|e| {
            Refusal::of(RefusalKind::System, format!("could not set up the Redis connection ({})", e.category()))
        })?;
        Ok(Shared {
            conn,
            script: redis::Script::new(ADMIT),
            base: format!("{}:{{{}}}", cfg.prefix, hash(&["sonoran shared budget", api_key], 16)),
            limits: limits.clone(),
            margin,
            timeout: cfg.timeout,
            retry: cfg.retry,
            fallback: Arc::new(Limiter::new(&scaled(limits, cfg.fallback_share), margin)),
            sharing: AtomicBool::new(true),
            announced: AtomicBool::new(true),
            next_try: Mutex::new(Instant::now()),
            gates: Mutex::new(HashMap::new()),
            round_trips: Histogram::new(),
            fallbacks: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{}", self.base, hash(&[name], 8))
    }

    fn stop_key(&self, ty: Option<&str>) -> String {
        match ty {
            None => format!("{}:stop", self.base),
            Some(ty) => self.key("stop", ty),
        }
    }

    fn cell(&self, name: &str, rate: &Rate) -> Cell {
        let interval_us = (1e6 / rate.per_second).ceil().min(3.6e9) as u64;
        let burst = rate.usable_burst(self.margin).max(1) as u64;
        Cell { key: self.key("rate", name), interval_us, tolerance_us: interval_us * (burst - 1) }
    }

    /// The gate of `bucket`: held by the one request of this server asking Redis for it.
    pub(crate) fn gate(&self, bucket: &Arc<str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.entry(bucket.clone()).or_default().clone()
    }

    /// Whether the client shares its budget now (false: the local share is in use).
    pub(crate) fn sharing(&self) -> bool {
        self.sharing.load(Ordering::Acquire)
    }

    /// `Some(sharing)` once after each change between sharing and the local share, for the
    /// log line that says so.
    pub(crate) fn transition(&self) -> Option<bool> {
        let now = self.sharing();
        (self.announced.swap(now, Ordering::AcqRel) != now).then_some(now)
    }

    /// One admission of a request of type `ty` paced by `bucket`, or `Unavailable` at once
    /// while Redis is out and its next try has not come.
    pub(crate) async fn admit(&self, ty: &str, bucket: &str) -> Admit {
        if !self.sharing() && Instant::now() < *self.next_try.lock().unwrap_or_else(|p| p.into_inner()) {
            return Admit::Unavailable;
        }
        let mut cells = Vec::with_capacity(2);
        if let Some(r) = &self.limits.global {
            cells.push(self.cell("global", r));
        }
        if let Some(r) = self.limits.per_type.get(bucket) {
            cells.push(self.cell(bucket, r));
        }
        let mut inv = self.script.prepare_invoke();
        inv.key(self.stop_key(None)).key(self.stop_key(Some(ty))).key(self.key("pause", bucket));
        for c in &cells {
            inv.key(&c.key).arg(c.interval_us).arg(c.tolerance_us);
        }
        let mut conn = self.conn.clone();
        let started = Instant::now();
        let answer = tokio::time::timeout(self.timeout, inv.invoke_async::<Vec<redis::Value>>(&mut conn)).await;
        let answer = match answer {
            Ok(Ok(v)) => v,
            Ok(Err(_)) | Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                *self.next_try.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now() + self.retry;
                if self.sharing.swap(false, Ordering::AcqRel) {
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                }
                return Admit::Unavailable;
            }
        };
        self.round_trips.record(started.elapsed());
        self.sharing.store(true, Ordering::Release);
        let int = |i: usize| match answer.get(i) {
            Some(redis::Value::Int(n)) => *n,
            Some(redis::Value::BulkString(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
            _ => 0,
        };
        let ms = |n: i64| Duration::from_millis(n.max(1) as u64);
        match int(0) {
            0 => Admit::Go,
            1 => Admit::Paused(ms(int(1))),
            code @ (2 | 3) => {
                let cause = match answer.get(1) {
                    Some(redis::Value::BulkString(b)) => {
                        ErrorCode::ALL.iter().copied().find(|c| c.as_str().as_bytes() == b.as_slice())
                    }
                    _ => None,
                };
                Admit::Stopped {
                    every_type: code == 2,
                    cause: cause.unwrap_or(ErrorCode::InvalidApiKey),
                    remaining: ms(int(2)),
                }
            }
            _ => Admit::Wait(ms(int(1))),
        }
    }

    /// Whether Redis still holds a stop of every type or of `ty`; `None` when it did not answer
    /// within `timeout_ms`.
    pub(crate) async fn stopped(&self, ty: &str) -> Option<bool> {
        let cmd = redis::cmd("EXISTS").arg(self.stop_key(None)).arg(self.stop_key(Some(ty))).clone();
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<i64>(&mut conn)).await {
            Ok(Ok(n)) => Some(n > 0),
            _ => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Write a 429 pause of `bucket` for every server of the key. Bounded by `timeout_ms`;
    /// a failure leaves the pause local.
    pub(crate) async fn publish_pause(&self, bucket: &str, pause: Duration) {
        let cmd = redis::cmd("SET")
            .arg(self.key("pause", bucket))
            .arg(1)
            .arg("PX")
            .arg(pause.as_millis().max(1) as u64)
            .clone();
        self.write(cmd).await;
    }

    /// Write a fatal stop (every type, or `ty`) for every server of the key.
    pub(crate) async fn publish_stop(&self, ty: Option<&str>, cause: ErrorCode, cooldown: Duration) {
        let key = self.stop_key(ty);
        let cmd =
            redis::cmd("SET").arg(key).arg(cause.as_str()).arg("PX").arg(cooldown.as_millis().max(1) as u64).clone();
        self.write(cmd).await;
    }

    /// Lift the key's stops and pauses for every server (`resume()`: the host says the
    /// configuration is right now).
    pub(crate) async fn publish_resume(&self, types: Vec<String>, buckets: Vec<String>) {
        let mut del = redis::cmd("DEL");
        del.arg(self.stop_key(None));
        for ty in types {
            del.arg(self.stop_key(Some(&ty)));
        }
        for b in buckets {
            del.arg(self.key("pause", &b));
        }
        self.write(del).await;
    }

    async fn write(&self, cmd: redis::Cmd) {
        if !self.sharing() {
            return;
        }
        let mut conn = self.conn.clone();
        let done = tokio::time::timeout(self.timeout, cmd.query_async::<redis::Value>(&mut conn)).await;
        if !matches!(done, Ok(Ok(_))) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `stats.shared_budget`.
    pub(crate) fn to_value(&self) -> Value {
        json!({
            "mode": if self.sharing() { "shared" } else { "local" },
            "redis_round_trip_ms": self.round_trips.to_value(),
            "fallbacks": self.fallbacks.load(Ordering::Relaxed),
            "redis_errors": self.errors.load(Ordering::Relaxed),
        })
    }
}
