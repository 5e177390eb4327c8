//! How a request passes the budget it shares with the other servers of its API key
//! (`shared_budget`, kept in Redis by [`super::shared`]): waiting for a shared token, honouring
//! a pause or a stop another server met, the local share while Redis is away; and telling the
//! other servers about this server's own pauses and stops.

use super::send::{Prepared, RequestCtx};
use super::shared::{Admit, Shared};
use super::stats::Gauge;
use super::stops::{disabled_failure, Check, Stop};
use super::Level;
use crate::response::{ErrorCode, Failure};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl super::Inner {
    /// A request's admission by the budget shared with the other servers of the key (with
    /// `shared_budget`; at once without): it waits for a token the servers share, honours a
    /// pause or a stop another server met, and falls back to the local share while Redis is
    /// away. Called once the local limiter released the request.
    pub(super) async fn shared_turn(&self, p: &Prepared, ctx: RequestCtx) -> Result<(), Failure> {
        match &self.shared {
            // Boxed: the admission's state (a Redis round trip, waits) is allocated only while it
            // runs, not carried in every queued request's task.
            Some(shared) => Box::pin(self.shared_admission(shared, p, ctx)).await,
            None => Ok(()),
        }
    }

    async fn shared_admission(&self, shared: &Shared, p: &Prepared, ctx: RequestCtx) -> Result<(), Failure> {
        let ty = &p.request_type;
        let gate = shared.gate(&p.pacing_key);
        let _gate = {
            let _queued = Gauge::up(&self.stats.queued);
            tokio::time::timeout_at(ctx.deadline, gate.lock()).await.map_err(|_| {
                Failure::new(
                    0,
                    ErrorCode::Timeout,
                    "not sent: waited for its turn in the budget shared with the other servers of this key \
                     (shared_budget) and reached its deadline (timeout_ms)",
                )
            })?
        };
        loop {
            let admit = shared.admit(ty, &p.pacing_key).await;
            match shared.transition() {
                Some(false) => self.log(Level::Warn, || {
                    "shared budget: Redis is unreachable or slow; this server now paces itself with its local \
                     share of each limit (shared_budget.fallback_share) and tries Redis again every retry_ms"
                        .to_string()
                }),
                Some(true) => self.log(Level::Info, || {
                    "shared budget: Redis answers again; the servers of this key share one budget again".to_string()
                }),
                None => {}
            }
            let wait = match admit {
                Admit::Go => return Ok(()),
                Admit::Unavailable => {
                    let _queued = Gauge::up(&self.stats.queued);
                    let turn = tokio::time::timeout_at(ctx.deadline, shared.fallback.acquire(&p.pacing_key)).await;
                    return turn.map_err(|_| {
                        Failure::new(
                            0,
                            ErrorCode::Timeout,
                            "not sent: waited for its turn in this server's local share of the budget (Redis \
                             unreachable) and reached its deadline (timeout_ms)",
                        )
                    });
                }
                Admit::Wait(d) => {
                    if Instant::now() + d > ctx.deadline {
                        return Err(Failure::new(
                            0,
                            ErrorCode::Timeout,
                            format!(
                                "not sent: the budget this server shares with the other servers of its API key \
                                 (shared_budget) has no token for another {} ms, past this request's deadline \
                                 (timeout_ms)",
                                d.as_millis()
                            ),
                        ));
                    }
                    d
                }
                Admit::Paused(d) => {
                    let until = Instant::now() + d;
                    // Another server's 429 (this server's own pause is in its limiter already).
                    let known = self.limiter.paused_until(&p.pacing_key).is_some_and(|u| u + PAUSE_SLACK >= until);
                    if !known {
                        self.limiter.pause(&p.pacing_key, until);
                        self.log(Level::Warn, || {
                            format!(
                                "{} paused for {} ms: another server of this API key got a 429 for it (shared_budget)",
                                p.pacing_key,
                                d.as_millis()
                            )
                        });
                    }
                    if until > ctx.deadline {
                        let mut f = Failure::new(
                            0,
                            ErrorCode::RateLimited,
                            format!(
                                "not sent: {ty} is paused for another {} ms after a 429 the API answered a server of \
                                 this key, past this request's deadline (timeout_ms)",
                                d.as_millis()
                            ),
                        );
                        f.retry_after_ms = Some(d.as_millis() as u64);
                        return Err(f);
                    }
                    d
                }
                Admit::Stopped { every_type, cause, remaining } => {
                    let scope = if every_type { None } else { Some(&**ty) };
                    if matches!(self.stops.check(ty), Check::Open | Check::Reopened(_)) {
                        let text = format!("{cause}, answered to another server of this API key");
                        self.stops.trip(scope, cause, &text, remaining, true);
                        self.limiter.flush(scope);
                        self.log(Level::Error, || {
                            format!(
                                "sending {} stopped for {} ms: another server of this API key got {cause} \
                                 (shared_budget); requests complete API_DISABLED until then or resume()",
                                scope.unwrap_or("every type"),
                                remaining.as_millis()
                            )
                        });
                    }
                    return match self.stops.check(ty) {
                        Check::Stopped { stop, every_type } => Err(disabled_failure(ty, &stop, every_type)),
                        _ => Err(Failure::new(0, ErrorCode::ApiDisabled, format!("not sent: {cause} stopped sending"))),
                    };
                }
            };
            let _queued = Gauge::up(&self.stats.queued);
            tokio::time::sleep(wait).await;
        }
    }

    /// `Err(API_DISABLED)` while sending `ty` is stopped; `Ok(Some(stop))` once when a stop just
    /// ran out. A stop learned from another server of the key is a copy of the one in Redis:
    /// while the budget is shared it holds as long as Redis holds it, so `resume()` on any
    /// server of the key (which deletes it there) lifts it here too. A stop this server met
    /// itself, and any stop while Redis is away, holds until it runs out or `resume()` here.
    pub(super) async fn stop_check(&self, ty: &str) -> Result<Option<Stop>, Failure> {
        match self.stops.check(ty) {
            Check::Open => Ok(None),
            Check::Reopened(stop) => Ok(Some(stop)),
            Check::Stopped { stop, .. } if stop.borrowed && self.shared.as_ref().is_some_and(|s| s.sharing()) => {
                // Boxed, like the admission: only a request that meets a borrowed stop pays for it.
                Box::pin(self.borrowed_stop_check(ty)).await
            }
            Check::Stopped { stop, every_type } => Err(disabled_failure(ty, &stop, every_type)),
        }
    }

    /// `stop_check` for a stop learned from another server, while Redis answers.
    async fn borrowed_stop_check(&self, ty: &str) -> Result<Option<Stop>, Failure> {
        let mut asked = false;
        loop {
            let (stop, every_type) = match self.stops.check(ty) {
                Check::Open => return Ok(None),
                Check::Reopened(stop) => return Ok(Some(stop)),
                Check::Stopped { stop, every_type } => (stop, every_type),
            };
            let shared = self.shared.as_ref().filter(|s| stop.borrowed && s.sharing());
            let lifted = match shared {
                Some(shared) if !asked => shared.stopped(ty).await == Some(false),
                _ => false,
            };
            if !lifted {
                return Err(disabled_failure(ty, &stop, every_type));
            }
            asked = true;
            self.stops.lift_borrowed(ty);
            self.log(Level::Info, || {
                format!(
                    "sending {ty} again: the stop after {} that another server of this API key met was lifted for \
                     every server (resume() on one of them, or its cool-down ran out) (shared_budget)",
                    stop.cause
                )
            });
        }
    }

    /// Tell the other servers of the key about a 429 pause (in the background, bounded).
    pub(super) fn share_pause(&self, bucket: &Arc<str>, pause: Duration) {
        if let Some(shared) = self.shared.clone() {
            let bucket = bucket.clone();
            tokio::spawn(async move { shared.publish_pause(&bucket, pause).await });
        }
    }

    /// Tell the other servers of the key about a fatal stop (in the background, bounded).
    pub(super) fn share_stop(&self, ty: Option<&str>, cause: ErrorCode, cooldown: Duration) {
        if let Some(shared) = self.shared.clone() {
            let ty = ty.map(str::to_string);
            tokio::spawn(async move { shared.publish_stop(ty.as_deref(), cause, cooldown).await });
        }
    }
}

/// How much later than this server's own pause a shared one must end to be another server's.
const PAUSE_SLACK: Duration = Duration::from_millis(100);
