//! Counters of what the client did: lock-free, read by `Client::stats()` as a [`ClientStats`]
//! snapshot.

use super::pacing::Limiter;
use super::stops::Stops;
use crate::response::ErrorCode;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds (ms) of the latency histogram's buckets; the last one is open.
const BOUNDS_MS: [u64; 16] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, u64::MAX];

/// A fixed-bucket latency histogram. Percentiles are reported as the upper bound of the bucket
/// they fall in (the maximum seen, for the open last bucket), so they are upper estimates.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BOUNDS_MS.len()],
    max_ms: AtomicU64,
}

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), max_ms: AtomicU64::new(0) }
    }

    pub(crate) fn record(&self, d: Duration) {
        let ms = d.as_millis().min(u64::MAX as u128) as u64;
        let i = BOUNDS_MS.iter().position(|b| ms <= *b).unwrap_or(BOUNDS_MS.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.max_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub(crate) fn to_value(&self) -> Value {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let max = self.max_ms.load(Ordering::Relaxed);
        let pct = |p: f64| -> Value {
            if total == 0 {
                return Value::Null;
            }
            let rank = ((total as f64) * p).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return json!(BOUNDS_MS[i].min(max));
                }
            }
            json!(max)
        };
        json!({"count": total, "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": max})
    }
}

/// The client's counters.
pub(crate) struct Stats {
    pub submitted: AtomicU64,
    /// Requests waiting for their turn: limiter queue, 429 pause, retry backoff, coalescing window.
    pub queued: AtomicUsize,
    /// HTTP calls on the wire now.
    pub in_flight: AtomicUsize,
    pub api_calls: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited_429: AtomicU64,
    /// Requests that went out inside a shared (coalesced) call.
    pub coalesced: AtomicU64,
    pub limiter_wait_us: AtomicU64,
    completed_ok: AtomicU64,
    completed: [AtomicU64; ErrorCode::ALL.len()],
    /// One HTTP call, send to answer.
    pub http_latency: Histogram,
    /// One request, accepted to completed (waiting and retries included).
    pub request_latency: Histogram,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            submitted: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            api_calls: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rate_limited_429: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            limiter_wait_us: AtomicU64::new(0),
            completed_ok: AtomicU64::new(0),
            completed: std::array::from_fn(|_| AtomicU64::new(0)),
            http_latency: Histogram::new(),
            request_latency: Histogram::new(),
        }
    }

    pub(crate) fn completed(&self, code: Option<ErrorCode>, latency: Duration) {
        match code {
            None => self.completed_ok.fetch_add(1, Ordering::Relaxed),
            Some(c) => self.completed[c as usize].fetch_add(1, Ordering::Relaxed),
        };
        self.request_latency.record(latency);
    }

    /// `{"OK": n, "NOT_LINKED": n, ...}`: only codes seen.
    pub(crate) fn completed_value(&self) -> Value {
        let mut m = Map::new();
        let ok = self.completed_ok.load(Ordering::Relaxed);
        if ok > 0 {
            m.insert("OK".into(), json!(ok));
        }
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            let n = self.completed[i].load(Ordering::Relaxed);
            if n > 0 {
                m.insert(c.as_str().into(), json!(n));
            }
        }
        Value::Object(m)
    }

    pub(crate) fn histograms(&self) -> (Value, Value) {
        (self.http_latency.to_value(), self.request_latency.to_value())
    }
}

/// Adds one to a gauge for as long as it lives (so an aborted task cannot leave it raised).
pub(crate) struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    pub(crate) fn up(g: &'a AtomicUsize) -> Gauge<'a> {
        g.fetch_add(1, Ordering::Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of the client's counters (`Client::stats`). `to_value()` gives the JSON that
/// `sonoran_stats` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientStats {
    /// Accepted requests whose callback has not run yet.
    pub pending: usize,
    /// Requests waiting for their turn: limiter queue, 429 pause, retry backoff, coalescing window.
    pub queued: usize,
    /// Of those, requests in the limiter's queue.
    pub waiting_for_limiter: usize,
    /// HTTP calls on the wire now.
    pub in_flight: usize,
    pub submitted: u64,
    /// Completions by code: `{"OK": n, "NOT_LINKED": n, ...}` (codes seen so far).
    pub completed: Value,
    /// HTTP calls made (retries included; a coalesced call counts once).
    pub api_calls: u64,
    pub retries: u64,
    /// 429 answers received.
    pub rate_limited_429: u64,
    /// Requests that went out inside a coalesced call.
    pub coalesced: u64,
    /// Total time requests spent waiting in the limiter's queue.
    pub limiter_wait_ms: u64,
    /// One HTTP call: `{"count", "p50", "p90", "p99", "max"}` in ms (bucket upper bounds).
    pub latency_ms: Value,
    /// One request, accepted to completed, same shape.
    pub request_latency_ms: Value,
    /// Stopped types: `{"*" | "TYPE": {"cause": "INVALID_API_KEY", "remaining_ms": n}}`.
    pub disabled: Value,
    /// Types paused by a 429: `{"TYPE": remaining ms}`.
    pub paused: Value,
    /// With `shared_budget`: `{"mode": "shared" | "local", "redis_round_trip_ms": {...},
    /// "fallbacks": n, "redis_errors": n}`; null without.
    pub shared_budget: Value,
}

impl ClientStats {
    /// The snapshot as JSON (the shape `sonoran_stats` and `cad:stats()` return).
    pub fn to_value(&self) -> Value {
        json!({
            "pending": self.pending,
            "queued": self.queued,
            "waiting_for_limiter": self.waiting_for_limiter,
            "in_flight": self.in_flight,
            "submitted": self.submitted,
            "completed": self.completed,
            "api_calls": self.api_calls,
            "retries": self.retries,
            "rate_limited_429": self.rate_limited_429,
            "coalesced": self.coalesced,
            "limiter_wait_ms": self.limiter_wait_ms,
            "latency_ms": self.latency_ms,
            "request_latency_ms": self.request_latency_ms,
            "disabled": self.disabled,
            "paused": self.paused,
            "shared_budget": self.shared_budget,
        })
    }
}

/// The snapshot `Client::stats` returns.
pub(super) fn snapshot(st: &Stats, limiter: &Limiter, stops: &Stops, pending: usize) -> ClientStats {
    let (latency_ms, request_latency_ms) = st.histograms();
    let mut disabled = Map::new();
    for (ty, stop) in stops.snapshot() {
        let remaining = stop.until.saturating_duration_since(tokio::time::Instant::now()).as_millis() as u64;
        disabled.insert(ty.unwrap_or_else(|| "*".to_string()), json!({"cause": stop.cause, "remaining_ms": remaining}));
    }
    let paused: Map<String, Value> =
        limiter.pauses().into_iter().map(|(t, d)| (t.to_string(), json!(d.as_millis() as u64))).collect();
    ClientStats {
        pending,
        queued: st.queued.load(Ordering::Relaxed),
        waiting_for_limiter: limiter.waiting(),
        in_flight: st.in_flight.load(Ordering::Relaxed),
        submitted: st.submitted.load(Ordering::Relaxed),
        completed: st.completed_value(),
        api_calls: st.api_calls.load(Ordering::Relaxed),
        retries: st.retries.load(Ordering::Relaxed),
        rate_limited_429: st.rate_limited_429.load(Ordering::Relaxed),
        coalesced: st.coalesced.load(Ordering::Relaxed),
        limiter_wait_ms: st.limiter_wait_us.load(Ordering::Relaxed) / 1000,
        latency_ms,
        request_latency_ms,
        disabled: Value::Object(disabled),
        paused: Value::Object(paused),
        shared_budget: Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        let h = Histogram::new();
        assert_eq!(h.to_value()["p50"], Value::Null);
        for ms in [3u64, 3, 3, 3, 3, 3, 3, 3, 40, 700] {
            h.record(Duration::from_millis(ms));
        }
        let v = h.to_value();
        assert_eq!(v["count"], json!(10));
        assert_eq!(v["p50"], json!(5));
        assert_eq!(v["p90"], json!(50));
        assert_eq!(v["p99"], json!(700));
        assert_eq!(v["max"], json!(700));
    }
}
