//! Counters of what the client did: lock-free, read by `Client::stats()`.

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
    fn new() -> Histogram {
        Histogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), max_ms: AtomicU64::new(0) }
    }

    pub(crate) fn record(&self, d: Duration) {
        let ms = d.as_millis().min(u64::MAX as u128) as u64;
        let i = BOUNDS_MS.iter().position(|b| ms <= *b).unwrap_or(BOUNDS_MS.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.max_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn to_value(&self) -> Value {
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
            Some(c) => {
                let i = ErrorCode::ALL.iter().position(|x| *x == c).expect("every code is in ALL");
                self.completed[i].fetch_add(1, Ordering::Relaxed)
            }
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
