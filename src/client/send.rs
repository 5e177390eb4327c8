//! How every call goes out: the stop check, coalescing when configured, the limiter queue, one
//! HTTP call, and what follows a failure (a pause after a 429, a stop after a fatal answer, a
//! retry when repeating is safe, or the end).
//!
//! # What is retried
//! - A 429: always (the API refused it, nothing was applied), after the pause.
//! - A failure that sent nothing (could not connect): always.
//! - A 5xx, a connection dropped after sending: only calls the API says are repeatable. A call
//!   that is not, and may have reached the API, completes with that error, never sent twice.
//! - Anything else (4xx, bad answers, the whole request timing out): never.
//!
//! Retries stop at `max_attempts` sends, or when the next wait would pass the deadline.

use super::{Inner, Level};
use crate::api::{Outgoing, RetryClass};
use crate::config::{MAX_RETRY_BACKOFF, MAX_SERVER_WAIT};
use crate::error::Refusal;
use crate::request::Call;
use crate::response::{ErrorCode, Failure, Outcome, Success};
use crate::transport::SendError;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What every API call made on behalf of one request knows about it.
#[derive(Clone, Copy)]
pub(crate) struct RequestCtx {
    pub id: u64,
    pub deadline: Instant,
}

tokio::task_local! {
    static CTX: RequestCtx;
}

/// Run a request's work with its context.
pub(super) fn scoped<F: Future>(ctx: RequestCtx, fut: F) -> impl Future<Output = F::Output> {
    CTX.scope(ctx, fut)
}

/// The request being run by this task, or outside a request's task a deadline one timeout
/// from now.
pub(super) fn current_ctx(timeout: Duration) -> RequestCtx {
    CTX.try_with(|c| *c).unwrap_or(RequestCtx { id: 0, deadline: Instant::now() + timeout })
}

/// A call encoded for its API, with what the send loop needs to know of it.
pub(crate) struct Prepared {
    pub out: Outgoing,
    pub request_type: Arc<str>,
    /// The limiter's bucket for it.
    pub pacing_key: Arc<str>,
    pub class: RetryClass,
}

/// After a failed send: try again (after this wait), or complete with the failure.
enum Next {
    Retry(Duration),
    Done(Failure),
}

impl Inner {
    /// Encode a call and check its size: a call that cannot be sent is refused here.
    pub(super) fn prepare(&self, call: &Call) -> Result<Prepared, Refusal> {
        let out = self.api.encode(call)?;
        let size = out.body.as_ref().map_or(0, Vec::len);
        if size > self.config.max_request_bytes {
            return Err(Refusal::field(
                "data",
                format!(
                    "the request is {size} bytes, over max_request_bytes ({} bytes)",
                    self.config.max_request_bytes
                ),
            ));
        }
        Ok(Prepared {
            out,
            request_type: call.request_type.clone(),
            pacing_key: self.api.pacing_key(call),
            class: self.api.retry_class(call),
        })
    }

    /// Send one call the way every call goes out: its secrets remembered for redaction, the
    /// stop check, coalescing (when configured for the type), the limiter queue, retries.
    pub(super) async fn execute(&self, call: &Call) -> Outcome {
        self.redactor.remember(self.api.secrets(call));
        let ctx = current_ctx(self.config.timeout);
        self.stop_check(&call.request_type).await?;
        if let Some(window) = self.config.coalesce.get(&*call.request_type) {
            return Box::pin(self.coalesced(call, *window, ctx)).await;
        }
        let refused = |r: Refusal| Failure::new(0, ErrorCode::InvalidEndpoint, r.to_string());
        if let Some(first) = self.api.prerequisite(call) {
            let answer = Box::pin(self.paced(&self.prepare(&first).map_err(refused)?, ctx, 1)).await?;
            let call = self.api.after_prerequisite(call, &answer)?;
            return self.paced(&self.prepare(&call).map_err(refused)?, ctx, 1).await;
        }
        let prepared = self.prepare(call).map_err(refused)?;
        self.paced(&prepared, ctx, 1).await
    }

    /// A call encoded when it was submitted: the stop check, then the limiter queue and retries.
    pub(super) async fn send_prepared(&self, p: &Prepared) -> Outcome {
        let ctx = current_ctx(self.config.timeout);
        self.stop_check(&p.request_type).await?;
        self.paced(p, ctx, 1).await
    }

    /// One call through the limiter, retried while that is safe, until it succeeds, fails for
    /// good, or its deadline passes. `members` > 1 for a coalesced call (for log lines).
    pub(super) async fn paced(&self, p: &Prepared, ctx: RequestCtx, members: usize) -> Outcome {
        let who = || {
            if members > 1 {
                format!("{} (coalesced call of {members} requests)", p.request_type)
            } else {
                format!("{} request {}", p.request_type, ctx.id)
            }
        };
        let mut attempt = 0u32;
        loop {
            self.wait_turn(p, ctx, attempt).await?;
            attempt += 1;
            let (f, nothing_sent) = match self.send_once(p).await {
                Ok(s) => return Ok(s),
                Err(e) => e,
            };
            match self.after_failure(f, nothing_sent, p, ctx, attempt, &who) {
                Next::Done(f) => return Err(f),
                Next::Retry(wait) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    if !wait.is_zero() {
                        let _queued = super::stats::Gauge::up(&self.stats.queued);
                        Box::pin(tokio::time::sleep(wait)).await;
                    }
                }
            }
        }
    }

    /// Wait for the call's turn in the limiter, within the deadline, and check again that
    /// sending is not stopped.
    async fn wait_turn(&self, p: &Prepared, ctx: RequestCtx, attempt: u32) -> Result<(), Failure> {
        let ty = &p.request_type;
        // A 429 pause that outlasts the deadline: answer now rather than wait for nothing.
        if let Some(until) = self.limiter.paused_until(&p.pacing_key) {
            if until > ctx.deadline {
                let left = until.saturating_duration_since(Instant::now()).as_millis() as u64;
                let mut f = Failure::new(
                    0,
                    ErrorCode::RateLimited,
                    format!(
                        "not sent: {ty} is paused for another {left} ms after a 429 from the API, past this \
                         request's deadline (timeout_ms)"
                    ),
                );
                f.retry_after_ms = Some(left);
                return Err(f);
            }
        }
        let waited = Instant::now();
        {
            let _queued = super::stats::Gauge::up(&self.stats.queued);
            let turn = tokio::time::timeout_at(ctx.deadline, self.limiter.acquire(&p.pacing_key)).await;
            let us = waited.elapsed().as_micros() as u64;
            self.stats.limiter_wait_us.fetch_add(us, Ordering::Relaxed);
            if turn.is_err() {
                return Err(Failure::new(
                    0,
                    ErrorCode::Timeout,
                    format!(
                        "not sent: waited {} ms for its turn (client-side rate_limits{}) and reached its deadline \
                         (timeout_ms {})",
                        us / 1000,
                        if attempt > 0 { ", after a retry" } else { "" },
                        self.config.timeout.as_millis()
                    ),
                ));
            }
        }
        if let Some(stop) = self.stop_check(ty).await? {
            self.log(Level::Info, || {
                format!("sending {ty} again: the stop after {} ran out (disable_cooldown_ms)", stop.cause)
            });
        }
        self.shared_turn(p, ctx).await
    }

    /// One HTTP call and the classification of its answer; no policy. A failure's message is
    /// redacted, then clipped, before anything else sees it; `true` beside it when nothing
    /// was sent.
    async fn send_once(&self, p: &Prepared) -> Result<Success, (Failure, bool)> {
        let sent_at = Instant::now();
        let answer = {
            let _on_wire = super::stats::Gauge::up(&self.stats.in_flight);
            self.stats.api_calls.fetch_add(1, Ordering::Relaxed);
            // Boxed: the HTTP future is most of a request's state, and a request spends most
            // of its life waiting for its turn; it is allocated only while on the wire.
            Box::pin(self.transport.send(&p.out)).await
        };
        self.stats.http_latency.record(sent_at.elapsed());
        let (mut f, nothing_sent) = match answer {
            Ok(raw) => match self.api.decode(&p.out, &p.request_type, raw) {
                Ok(s) => return Ok(s),
                Err(f) => (f, false),
            },
            Err(SendError { failure, nothing_sent }) => (failure, nothing_sent),
        };
        f.message = self.redactor.scrub(&f.message);
        Err((f, nothing_sent))
    }

    /// What follows a failed send.
    fn after_failure(
        &self,
        mut f: Failure,
        nothing_sent: bool,
        p: &Prepared,
        ctx: RequestCtx,
        attempt: u32,
        who: &dyn Fn() -> String,
    ) -> Next {
        let (ty, max) = (&p.request_type, self.config.max_attempts);
        match f.code {
            ErrorCode::InvalidApiKey | ErrorCode::InvalidCommunityId => {
                self.stop(None, &f, who);
                Next::Done(f)
            }
            ErrorCode::ApiNotEnabled => {
                self.stop(Some(ty), &f, who);
                Next::Done(f)
            }
            ErrorCode::RateLimited => {
                self.stats.rate_limited_429.fetch_add(1, Ordering::Relaxed);
                let asked = f.retry_after_ms;
                let cap = MAX_SERVER_WAIT.as_millis() as u64;
                f.retry_after_ms = asked.map(|ms| ms.min(cap));
                let pause = f.retry_after_ms.map(Duration::from_millis).unwrap_or(self.config.rate_limit_pause);
                let until = Instant::now() + pause;
                self.limiter.pause(&p.pacing_key, until);
                self.share_pause(&p.pacing_key, pause);
                let retry = attempt < max && until < ctx.deadline;
                self.log(Level::Warn, || {
                    let why = match asked {
                        Some(ms) if ms > cap => format!(
                            "the server's Retry-After of {} s, capped to the library's maximum of {} s",
                            ms / 1000,
                            cap / 1000
                        ),
                        Some(_) => "Retry-After".to_string(),
                        None => "no Retry-After: rate_limit_pause_ms".to_string(),
                    };
                    let then = if retry {
                        format!("it is retried after the pause (attempt {} of {max})", attempt + 1)
                    } else {
                        "it completes RATE_LIMITED (no attempt or time left)".to_string()
                    };
                    format!("{ty} paused for {} ms by a 429 ({why}) answering {}; {then}", pause.as_millis(), who())
                });
                // The limiter holds the call until the pause ends.
                if retry {
                    Next::Retry(Duration::ZERO)
                } else {
                    Next::Done(f)
                }
            }
            _ if !may_retry(&f, nothing_sent, p.class) => {
                if matches!(f.code, ErrorCode::ServerError | ErrorCode::Network) && attempt < max {
                    self.log(Level::Warn, || {
                        format!(
                            "{} not retried after {}: it may have reached the API and repeating it is not safe",
                            who(),
                            f.code
                        )
                    });
                }
                Next::Done(f)
            }
            _ => {
                let wait = backoff(self.config.retry_backoff, MAX_RETRY_BACKOFF, attempt);
                if attempt >= max || Instant::now() + wait >= ctx.deadline {
                    return Next::Done(f);
                }
                self.log(Level::Info, || {
                    format!(
                        "retrying {} in {} ms after {} (attempt {} of {max}): {}",
                        who(),
                        wait.as_millis(),
                        f.code,
                        attempt + 1,
                        f.message
                    )
                });
                Next::Retry(wait)
            }
        }
    }

    /// Stop sending after a fatal answer: every type (`None`) or one, and release what waits.
    fn stop(&self, ty: Option<&Arc<str>>, f: &Failure, who: &dyn Fn() -> String) {
        let cooldown = self.config.disable_cooldown;
        self.stops.trip(ty.map(|t| &**t), f.code, &f.message, cooldown, false);
        self.share_stop(ty.map(|t| &**t), f.code, cooldown);
        self.limiter.flush(ty.map(|t| &**t));
        self.log(Level::Error, || match ty {
            None => format!(
                "sending stopped for every type: the API answered {} ('{}') to {}; requests complete API_DISABLED \
                 for {} ms (disable_cooldown_ms) or until resume()",
                f.code,
                f.message,
                who(),
                cooldown.as_millis()
            ),
            Some(ty) => format!(
                "sending {ty} stopped: the API answered {} ('{}'); {ty} requests complete API_DISABLED for {} ms \
                 (disable_cooldown_ms) or until resume()",
                f.code,
                f.message,
                cooldown.as_millis()
            ),
        });
    }
}

/// Whether a failure other than a 429 or a fatal answer may be retried.
fn may_retry(f: &Failure, nothing_sent: bool, class: RetryClass) -> bool {
    if nothing_sent {
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
fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(max);
    let half = exp / 2;
    half + half.mul_f64(jitter())
}

/// Uniform in `[0, 1)` (splitmix64 over a shared counter, seeded by the clock).
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    if STATE.load(Ordering::Relaxed) == 0 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x1234_5678)
            | 1;
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let s = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn only_failures_that_sent_nothing_are_retried_whatever_the_class() {
        let net = Failure::new(0, ErrorCode::Network, "the request failed: reset");
        assert!(may_retry(&net, true, RetryClass::Once));
        assert!(!may_retry(&net, false, RetryClass::Once));
        assert!(may_retry(&net, false, RetryClass::Repeatable));
        assert!(!may_retry(&Failure::new(500, ErrorCode::ServerError, "x"), false, RetryClass::Once));
        assert!(may_retry(&Failure::new(500, ErrorCode::ServerError, "x"), false, RetryClass::Repeatable));
        assert!(!may_retry(&Failure::new(404, ErrorCode::NotLinked, "x"), false, RetryClass::Repeatable));
    }
}
