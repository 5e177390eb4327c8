//! Fault injection: the knobs (`Faults`, `RateLimit`, `RetryAfter`), a small seeded PRNG and
//! the per-request decision (rate limit, drop, hang, 5xx).

use std::time::{Duration, Instant, SystemTime};

/// Faults injected into the emulator's answers. All rates are probabilities in `0.0..=1.0`,
/// decided per request with a PRNG seeded by `seed`, so a run is reproducible.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added to every answer (including 429 and 5xx answers).
    pub latency_ms: u64,
    /// Token bucket; a request over it is answered 429.
    pub rate_limit: Option<RateLimit>,
    /// Share of requests answered 500/502/503 `Internal Server Error` (no state change).
    pub error_rate: f64,
    /// Share of requests never answered (held open until the client gives up or the emulator stops).
    pub hang_rate: f64,
    /// Share of requests whose connection is closed without any answer (no state change).
    pub drop_rate: f64,
    /// PRNG seed for the fault decisions.
    pub seed: u64,
}

/// Token bucket: holds at most `burst` tokens, refilled at `per_second` tokens per second.
/// A request takes one token; with none left it is answered 429.
#[derive(Clone, Debug)]
pub struct RateLimit {
    /// Tokens held at start and at most. 0 means the bucket starts empty and holds at most
    /// one token, so the first request is refused and `Retry-After` stays truthful.
    pub burst: u32,
    pub per_second: f64,
    pub retry_after: RetryAfter,
    /// Grace so that a client pacing at exactly the refill rate is not refused because of
    /// arrival jitter: a request is let through when the bucket would hold a whole token
    /// within this many milliseconds.
    pub tolerance_ms: u64,
}

impl RateLimit {
    /// `burst` requests at once, then `per_second` requests per second; `Retry-After` in
    /// seconds and the default 50 ms tolerance.
    pub fn new(burst: u32, per_second: f64) -> RateLimit {
        RateLimit { burst, per_second, retry_after: RetryAfter::Seconds, tolerance_ms: 50 }
    }

    /// `n` requests per `seconds` seconds (burst `n`), as the CLI's `--rate-limit N/SECONDS`.
    pub fn per(n: u32, seconds: f64) -> RateLimit {
        RateLimit::new(n, if seconds > 0.0 { n as f64 / seconds } else { 0.0 })
    }
}

/// How a 429 answer carries `Retry-After`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delta seconds until the bucket holds a token again (rounded up, at least 1).
    #[default]
    Seconds,
    /// A fixed number of delta seconds, whatever the bucket says.
    Fixed(u64),
    /// An HTTP date (IMF-fixdate) at which the bucket holds a token again.
    HttpDate,
    /// No `Retry-After` header.
    None,
}

/// splitmix64: tiny, fast, and good enough for fault decisions.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What happens to one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    Pass,
    RateLimited { retry_after: Option<String> },
    Drop,
    Hang,
    Error(u16),
}

/// The live fault configuration with its PRNG and bucket (kept behind a short-lived lock).
pub(crate) struct FaultEngine {
    faults: Faults,
    rng: SplitMix64,
    tokens: f64,
    last: Instant,
}

impl FaultEngine {
    pub(crate) fn new(faults: Faults) -> FaultEngine {
        let tokens = faults.rate_limit.as_ref().map(|r| r.burst as f64).unwrap_or(0.0);
        FaultEngine { rng: SplitMix64::new(faults.seed), faults, tokens, last: Instant::now() }
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.faults.latency_ms)
    }

    /// Decide the fate of the next request. The PRNG advances by the same amount for every
    /// request that is not rate limited, so a given seed gives the same sequence.
    pub(crate) fn decide(&mut self, now: Instant) -> Decision {
        if let Some(rl) = &self.faults.rate_limit {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.last = now;
            let cap = rl.burst.max(1) as f64;
            self.tokens = (self.tokens + elapsed * rl.per_second).min(cap);
            let grace = rl.per_second * rl.tolerance_ms as f64 / 1000.0;
            if self.tokens + grace >= 1.0 {
                self.tokens -= 1.0;
            } else {
                let wait =
                    if rl.per_second > 0.0 { ((1.0 - self.tokens) / rl.per_second).ceil().max(1.0) as u64 } else { 60 };
                let retry_after = match rl.retry_after {
                    RetryAfter::Seconds => Some(wait.to_string()),
                    RetryAfter::Fixed(n) => Some(n.to_string()),
                    RetryAfter::HttpDate => {
                        Some(httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(wait)))
                    }
                    RetryAfter::None => None,
                };
                return Decision::RateLimited { retry_after };
            }
        }
        let d = self.rng.next_f64();
        let h = self.rng.next_f64();
        let e = self.rng.next_f64();
        let code = self.rng.next_u64();
        if d < self.faults.drop_rate {
            Decision::Drop
        } else if h < self.faults.hang_rate {
            Decision::Hang
        } else if e < self.faults.error_rate {
            Decision::Error([500, 502, 503][(code % 3) as usize])
        } else {
            Decision::Pass
        }
    }
}
