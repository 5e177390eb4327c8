//! Client-side pacing: token buckets (one global, optional ones per request type), the pause a
//! 429 puts on a type, and the queue where requests wait for their turn.
//!
//! Requests are never dropped here. A request joins its type's queue and is released when its
//! type is not paused, its type's bucket (if any) holds a token and the global bucket (if any)
//! holds a token. Among the queues that are ready, the request that arrived first goes first.
//! One dispatcher task per client does the releasing, so a long queue costs one wake-up per
//! release, not one per waiting request. A request that gives up (deadline, cancel, shutdown)
//! leaves the queue without taking a token.
//!
//! The margin: a client that spends its tokens exactly as the API refills them is refused as
//! soon as one request reaches the API sooner after the previous one than it left the client
//! (the first requests of a burst open new connections and arrive late; later ones reuse them
//! and arrive early). Each bucket therefore keeps in reserve the tokens that refill in
//! `rate_limit_margin_ms` (at most `burst - 1`, so at least one stays usable): the API's bucket
//! then always holds that many more tokens than the client thinks, which absorbs that much
//! jitter. At the default 1 request/s with bursts of 5 and a 250 ms margin, the client uses
//! bursts of 4; the sustained rate is unchanged.

use crate::config::{Rate, RateLimits};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

/// Floating-point slack when comparing token counts.
const EPSILON: f64 = 1e-9;

/// Upper bound of any wait the limiter computes (a bucket's refill, a pause): a day. Rates and
/// pauses are validated far below it; this only keeps the arithmetic from overflowing.
const LONGEST_WAIT: Duration = Duration::from_secs(86_400);

/// `now + d`, saturating at [`LONGEST_WAIT`] from now.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(LONGEST_WAIT)).unwrap_or(now)
}

struct Bucket {
    per_second: f64,
    cap: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: Rate, margin: Duration, now: Instant) -> Bucket {
        let cap = rate.usable_burst(margin) as f64;
        Bucket { per_second: rate.per_second, cap, tokens: cap, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.cap);
    }

    /// Time until a whole token is there (zero when one is). Saturating: whatever the rate,
    /// never more than [`LONGEST_WAIT`].
    fn wait(&self) -> Duration {
        if self.tokens + EPSILON >= 1.0 {
            Duration::ZERO
        } else {
            // Round up to the next millisecond so the wake-up finds the token there.
            let secs = (1.0 - self.tokens) / self.per_second;
            let micros = (secs * 1e6).ceil();
            let micros =
                if micros.is_finite() && micros >= 0.0 { micros.min(u64::MAX as f64) as u64 } else { u64::MAX };
            Duration::from_micros(micros.saturating_add(1000)).min(LONGEST_WAIT)
        }
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

struct Waiter {
    seq: u64,
    tx: oneshot::Sender<()>,
}

struct TypeQueue {
    bucket: Option<Bucket>,
    paused_until: Option<Instant>,
    waiters: VecDeque<Waiter>,
}

struct State {
    global: Option<Bucket>,
    types: HashMap<Arc<str>, TypeQueue>,
    seq: u64,
    waiting: usize,
}

/// The queue and buckets of one client.
pub(crate) struct Limiter {
    limits: RateLimits,
    margin: Duration,
    /// No bucket at all: with no pause either, every request goes at once, without the lock.
    unlimited: bool,
    /// Whether a type may be paused (set by `pause`, cleared by `clear_pauses`).
    any_pause: AtomicBool,
    state: Mutex<State>,
    wake: Notify,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Limiter {
    /// Buckets for `limits`, each keeping the tokens that refill in `margin` in reserve.
    pub(crate) fn new(limits: &RateLimits, margin: Duration) -> Limiter {
        let now = Instant::now();
        Limiter {
            limits: limits.clone(),
            margin,
            unlimited: limits.global.is_none() && limits.per_type.is_empty(),
            any_pause: AtomicBool::new(false),
            state: Mutex::new(State {
                global: limits.global.map(|r| Bucket::new(r, margin, now)),
                types: HashMap::new(),
                seq: 0,
                waiting: 0,
            }),
            wake: Notify::new(),
        }
    }

    fn queue<'a>(&self, st: &'a mut State, ty: &Arc<str>, now: Instant) -> &'a mut TypeQueue {
        st.types.entry(ty.clone()).or_insert_with(|| TypeQueue {
            bucket: self.limits.per_type.get(&**ty).map(|r| Bucket::new(*r, self.margin, now)),
            paused_until: None,
            waiters: VecDeque::new(),
        })
    }

    /// Wait for this request's turn. Returns once released, or at once when `flush` emptied
    /// the queue (the caller re-checks whether sending is stopped). Dropping the future leaves
    /// the queue without using a token.
    pub(crate) async fn acquire(&self, ty: &Arc<str>) {
        // Nothing to wait for: no bucket, and no type ever paused (so nobody is queued either).
        if self.unlimited && !self.any_pause.load(Ordering::Acquire) {
            return;
        }
        let rx = {
            let mut st = lock(&self.state);
            let now = Instant::now();
            // Fast path: nobody is waiting anywhere and both buckets hold a token.
            if st.waiting == 0 {
                if let Some(g) = st.global.as_mut() {
                    g.refill(now);
                }
                let global_ready = st.global.as_ref().is_none_or(|g| g.wait().is_zero());
                let q = self.queue(&mut st, ty, now);
                let unpaused = q.paused_until.is_none_or(|p| p <= now);
                if let Some(b) = q.bucket.as_mut() {
                    b.refill(now);
                }
                let type_ready = q.bucket.as_ref().is_none_or(|b| b.wait().is_zero());
                if global_ready && unpaused && type_ready {
                    if let Some(b) = q.bucket.as_mut() {
                        b.take();
                    }
                    if let Some(g) = st.global.as_mut() {
                        g.take();
                    }
                    return;
                }
            }
            let (tx, rx) = oneshot::channel();
            st.seq += 1;
            let seq = st.seq;
            self.queue(&mut st, ty, now).waiters.push_back(Waiter { seq, tx });
            st.waiting += 1;
            rx
        };
        self.wake.notify_one();
        let _ = rx.await;
    }

    /// Pause a type until `until` (a later pause wins over an earlier one).
    pub(crate) fn pause(&self, ty: &Arc<str>, until: Instant) {
        {
            let mut st = lock(&self.state);
            let q = self.queue(&mut st, ty, Instant::now());
            q.paused_until = Some(q.paused_until.map_or(until, |p| p.max(until)));
            self.any_pause.store(true, Ordering::Release);
        }
        self.wake.notify_one();
    }

    /// When the type's current pause ends, if it is paused.
    pub(crate) fn paused_until(&self, ty: &str) -> Option<Instant> {
        if !self.any_pause.load(Ordering::Acquire) {
            return None;
        }
        let st = lock(&self.state);
        let now = Instant::now();
        st.types.get(ty).and_then(|q| q.paused_until).filter(|p| *p > now)
    }

    /// Every paused type and how long its pause still lasts.
    pub(crate) fn pauses(&self) -> Vec<(Arc<str>, Duration)> {
        let st = lock(&self.state);
        let now = Instant::now();
        let mut v: Vec<(Arc<str>, Duration)> = st
            .types
            .iter()
            .filter_map(|(t, q)| q.paused_until.filter(|p| *p > now).map(|p| (t.clone(), p - now)))
            .collect();
        v.sort();
        v
    }

    /// Requests waiting in the queue now.
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.state).waiting
    }

    /// Release every waiter of `ty` (every type when `None`) without using tokens: sending was
    /// stopped, and they complete at once instead of waiting their turn.
    pub(crate) fn flush(&self, ty: Option<&str>) {
        let mut st = lock(&self.state);
        let mut released = 0;
        for (t, q) in st.types.iter_mut() {
            if ty.is_none_or(|ty| ty == &**t) {
                for w in q.waiters.drain(..) {
                    let _ = w.tx.send(());
                    released += 1;
                }
            }
        }
        st.waiting -= released;
    }

    /// Lift every pause (the client was resumed).
    pub(crate) fn clear_pauses(&self) {
        {
            let mut st = lock(&self.state);
            for q in st.types.values_mut() {
                q.paused_until = None;
            }
            self.any_pause.store(false, Ordering::Release);
        }
        self.wake.notify_one();
    }

    /// The dispatcher: releases waiters as buckets refill and pauses end. Runs until the
    /// client's runtime stops.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let notified = self.wake.notified();
            let next = {
                let mut st = lock(&self.state);
                dispatch(&mut st, Instant::now())
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// Release every waiter that may go now; returns when to look again (None: when woken).
fn dispatch(st: &mut State, now: Instant) -> Option<Instant> {
    loop {
        if let Some(g) = st.global.as_mut() {
            g.refill(now);
        }
        let mut best: Option<(u64, Arc<str>)> = None;
        let mut next: Option<Instant> = None;
        let mut dropped = 0;
        for (ty, q) in st.types.iter_mut() {
            while q.waiters.front().is_some_and(|w| w.tx.is_closed()) {
                q.waiters.pop_front();
                dropped += 1;
            }
            let Some(head) = q.waiters.front() else { continue };
            let mut ready_at = now;
            match q.paused_until {
                Some(p) if p > now => ready_at = p,
                Some(_) => q.paused_until = None,
                None => {}
            }
            if let Some(b) = q.bucket.as_mut() {
                b.refill(now);
                ready_at = ready_at.max(later(now, b.wait()));
            }
            if ready_at <= now {
                if best.as_ref().is_none_or(|(seq, _)| head.seq < *seq) {
                    best = Some((head.seq, ty.clone()));
                }
            } else {
                next = Some(next.map_or(ready_at, |n: Instant| n.min(ready_at)));
            }
        }
        st.waiting -= dropped;
        let Some((_, ty)) = best else { return next };
        if let Some(g) = st.global.as_ref() {
            let w = g.wait();
            if !w.is_zero() {
                let at = later(now, w);
                return Some(next.map_or(at, |n| n.min(at)));
            }
        }
        let q = st.types.get_mut(&ty).expect("the chosen queue exists");
        let w = q.waiters.pop_front().expect("the chosen queue has a head");
        st.waiting -= 1;
        if w.tx.send(()).is_ok() {
            if let Some(b) = q.bucket.as_mut() {
                b.take();
            }
            if let Some(g) = st.global.as_mut() {
                g.take();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn releases_in_arrival_order_at_the_configured_rate() {
        let limits = RateLimits { global: Some(Rate { per_second: 10.0, burst: 2 }), per_type: HashMap::new() };
        let l = Arc::new(Limiter::new(&limits, Duration::ZERO));
        tokio::spawn(l.clone().run());
        let ty: Arc<str> = Arc::from("GET_VERSION");
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (l, ty, order) = (l.clone(), ty.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                l.acquire(&ty).await;
                order.lock().unwrap().push((i, start.elapsed()));
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap();
        let ids: Vec<i32> = order.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        // Two at once, then one per 100 ms.
        // The second took the burst's token: not one refilled 100 ms later.
        assert!(order[1].1 < Duration::from_millis(95), "{:?}", order[1].1);
        assert!(order[5].1 >= Duration::from_millis(400), "{:?}", order[5].1);
        assert!(order[5].1 < Duration::from_millis(1500), "{:?}", order[5].1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pause_holds_only_its_type() {
        let l = Arc::new(Limiter::new(&RateLimits::unlimited(), Duration::ZERO));
        tokio::spawn(l.clone().run());
        let a: Arc<str> = Arc::from("A");
        let b: Arc<str> = Arc::from("B");
        let start = Instant::now();
        l.pause(&a, start + Duration::from_millis(300));
        l.acquire(&b).await;
        assert!(start.elapsed() < Duration::from_millis(250), "{:?}", start.elapsed());
        l.acquire(&a).await;
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn the_margin_keeps_tokens_in_reserve_but_never_the_last_one() {
        let r = |per_second, burst| Rate { per_second, burst };
        let m = Duration::from_millis(250);
        assert_eq!(r(1.0, 5).usable_burst(m), 4);
        assert_eq!(r(1.0, 5).usable_burst(Duration::ZERO), 5);
        assert_eq!(r(1.0, 1).usable_burst(m), 1);
        assert_eq!(r(200.0, 20).usable_burst(m), 1);
        assert_eq!(r(10.0, 20).usable_burst(m), 17);
        assert_eq!(r(100_000.0, 3).usable_burst(Duration::from_secs(60)), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_bucket_with_a_margin_starts_and_refills_to_its_usable_burst() {
        let limits = RateLimits { global: Some(Rate { per_second: 10.0, burst: 5 }), per_type: HashMap::new() };
        // 10/s with a 250 ms margin keeps 3 tokens in reserve: bursts of 2.
        let l = Arc::new(Limiter::new(&limits, Duration::from_millis(250)));
        tokio::spawn(l.clone().run());
        let ty: Arc<str> = Arc::from("GET_VERSION");
        for round in 0..2 {
            let start = Instant::now();
            for _ in 0..3 {
                l.acquire(&ty).await;
            }
            let took = start.elapsed();
            // Two at once, the third one token (100 ms) later, not three at once.
            assert!(took >= Duration::from_millis(90), "round {round}: {took:?}");
            // Long enough for a full bucket of 5 to refill: it still holds only 2.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
}
