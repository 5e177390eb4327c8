//! The client: an owned tokio runtime, a bounded set of pending requests, and delivery of every
//! accepted request's result exactly once.
//!
//! Exactly once: an accepted request is an entry in `pending`. Whoever removes the entry (the
//! request's own task, `cancel`, or `close`) delivers its one result; nobody else can.

use crate::config::{Config, Delivery, MAX_RETRY_BACKOFF, MAX_SERVER_WAIT};
use crate::error::Refusal;
use crate::events::{Events, Level, LogHook};
use crate::linking::LinkCache;
use crate::policy::{self, Breaker, Check, RetryClass};
use crate::ratelimit::Limiter;
use crate::redact::Redactor;
use crate::request::Call;
use crate::response::{Completion, ErrorCode, Failure, Outcome};
use crate::stats::{Gauge, Stats};
use crate::transport::Transport;
use crate::wire;
use futures_util::FutureExt;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What runs with a request's result. In `poll` delivery it runs inside [`Client::poll`] on the
/// polling thread; in `thread` delivery on the library's delivery thread.
pub type Handler = Box<dyn FnOnce(Completion) + Send + 'static>;

/// A handler in two parts (see [`Client::submit_prepared`]): the first runs as soon as the
/// result is ready, on the library thread that completes the request (or on the thread calling
/// `cancel` or `close`), and returns the second, which runs where callbacks run (inside
/// [`Client::poll`], or on the delivery thread). Work done in the first part, such as rendering
/// the result, stays off the polling (game) thread. The first part must not panic: it would
/// lose the second.
pub type Prepare = Box<dyn FnOnce(Completion) -> Box<dyn FnOnce() + Send> + Send + 'static>;

enum Callback {
    Handler(Handler),
    Prepare(Prepare),
}

struct Entry {
    handler: Option<Callback>,
    request_type: Arc<str>,
    abort: Option<AbortHandle>,
    accepted: Instant,
}

/// What every API call made on behalf of one request knows about it.
#[derive(Clone, Copy)]
struct RequestCtx {
    id: u64,
    deadline: Instant,
}

tokio::task_local! {
    static CTX: RequestCtx;
}

/// Most requests one coalesced call carries.
pub const MAX_COALESCED: usize = 100;

/// Requests of one type gathered during a coalescing window.
struct Batch {
    closed: bool,
    /// Each member's `data` elements, and whether the member still waits for them.
    members: Vec<(Vec<Value>, Arc<AtomicBool>)>,
    bytes: usize,
    deadline: Instant,
    tx: watch::Sender<Option<Outcome>>,
}

struct Pending {
    accepting: bool,
    entries: HashMap<u64, Entry>,
}

enum Ready {
    /// A result for its handler (or, with none, for `poll`'s fallback).
    Result(Completion, Option<Handler>),
    /// The second part of a [`Prepare`] handler.
    Prepared(Box<dyn FnOnce() + Send>),
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    transport: Transport,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
    /// Accepted requests whose callback has not run yet (in flight or ready).
    outstanding: Arc<AtomicUsize>,
    ready: Mutex<VecDeque<Ready>>,
    ready_len: AtomicUsize,
    /// `thread` delivery: the channel to the delivery thread (None once closed).
    /// Read-locked by every delivery (senders share it), write-locked once by `close`.
    delivery_tx: RwLock<Option<mpsc::Sender<Ready>>>,
    pub(crate) link_cache: LinkCache,
    limiter: Arc<Limiter>,
    breaker: Breaker,
    stats: Stats,
    events: Events,
    /// Removes the API key and the session ids seen in requests from every text that leaves
    /// the library.
    redactor: Redactor,
    batches: Mutex<HashMap<Arc<str>, Arc<Mutex<Batch>>>>,
    me: Weak<Inner>,
}

/// A Sonoran CAD client. Cheap to share by reference across threads; see the README for the
/// threading contract.
pub struct Client {
    inner: Arc<Inner>,
    runtime: Mutex<Option<Runtime>>,
    handle: tokio::runtime::Handle,
    delivery_thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated in a way that
    // matters more than losing requests would; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Start a client: validates the configuration, starts the runtime (and the delivery thread
    /// in `thread` delivery).
    pub fn new(config: Config) -> Result<Client, Refusal> {
        config.validate()?;
        let transport = Transport::new(&config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .max_blocking_threads(2)
            .thread_name("sonoran-worker")
            .enable_all()
            .build()
            .map_err(|e| Refusal::new(format!("could not start the library's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let outstanding = Arc::new(AtomicUsize::new(0));
        let delivered = outstanding.clone();
        let (delivery_tx, delivery_thread) = match config.delivery {
            Delivery::Poll => (None, None),
            Delivery::Thread => {
                let (tx, rx) = mpsc::channel::<Ready>();
                let t = std::thread::Builder::new()
                    .name("sonoran-delivery".into())
                    .spawn(move || {
                        for ready in rx {
                            run_ready(ready, |_| {});
                            delivered.fetch_sub(1, Ordering::AcqRel);
                        }
                    })
                    .map_err(|e| Refusal::new(format!("could not start the delivery thread: {e}")))?;
                (Some(tx), Some(t))
            }
        };
        let limiter = Arc::new(Limiter::new(&config.rate_limits, config.rate_limit_margin));
        handle.spawn(limiter.clone().run());
        let inner = Arc::new_cyclic(|me| Inner {
            limiter,
            breaker: Breaker::default(),
            stats: Stats::new(),
            events: Events::default(),
            redactor: Redactor::new(config.api_key.expose()),
            batches: Mutex::new(HashMap::new()),
            me: me.clone(),
            config,
            transport,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Pending { accepting: true, entries: HashMap::new() }),
            outstanding,
            ready: Mutex::new(VecDeque::new()),
            ready_len: AtomicUsize::new(0),
            delivery_tx: RwLock::new(delivery_tx),
            link_cache: LinkCache::default(),
        });
        Ok(Client { inner, runtime: Mutex::new(Some(runtime)), handle, delivery_thread: Mutex::new(delivery_thread) })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Queue one validated call. Returns its request id (> 0); its result reaches `handler`
    /// exactly once (or, with no handler, the `fallback` given to [`Client::poll`]).
    pub fn submit(&self, call: Call, handler: Option<Handler>) -> Result<u64, Refusal> {
        self.submit_call(call, handler.map(Callback::Handler))
    }

    /// Like [`Client::submit`], with a handler in two parts ([`Prepare`]): the C ABI renders
    /// each result's JSON where the request completes, so its callback only receives the text.
    pub fn submit_prepared(&self, call: Call, prepare: Prepare) -> Result<u64, Refusal> {
        self.submit_call(call, Some(Callback::Prepare(prepare)))
    }

    fn submit_call(&self, call: Call, handler: Option<Callback>) -> Result<u64, Refusal> {
        let path = self.inner.config.path_for(&call.request_type)?;
        let cfg = &self.inner.config;
        let body = wire::encode_body(&cfg.community_id, cfg.api_key.expose(), &call.request_type, &call.data);
        if body.len() > cfg.max_request_bytes {
            return Err(Refusal::field(
                "data",
                format!(
                    "the request is {} bytes, over max_request_bytes ({} bytes)",
                    body.len(),
                    cfg.max_request_bytes
                ),
            ));
        }
        let request_type = call.request_type.clone();
        if cfg.coalesce.contains_key(&*call.request_type) {
            // It may join a shared call: it keeps its elements rather than a body of its own.
            return self.submit_op(
                request_type,
                handler,
                move |inner| async move { inner.execute(&path, &call).await },
            );
        }
        // While it waits, a request holds its encoded body (and its session ids, remembered for
        // redaction on a worker, not on the caller's thread), not the parsed JSON it came from.
        let sessions: Vec<String> = session_ids(&call.data).map(str::to_string).collect();
        let class = policy::retry_class(&call.request_type, &call.data);
        drop(call);
        let ty = request_type.clone();
        self.submit_op(request_type, handler, move |inner| async move {
            inner.remember_sessions(sessions.iter().map(String::as_str));
            inner.send_encoded(&path, &ty, &body, class).await
        })
    }

    /// Queue any operation that produces one outcome (a single call, or a flow of several).
    pub(crate) fn submit_with<F, Fut>(
        &self,
        request_type: Arc<str>,
        handler: Option<Handler>,
        op: F,
    ) -> Result<u64, Refusal>
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        self.submit_op(request_type, handler.map(Callback::Handler), op)
    }

    fn submit_op<F, Fut>(&self, request_type: Arc<str>, handler: Option<Callback>, op: F) -> Result<u64, Refusal>
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let inner = &self.inner;
        let max = inner.config.max_pending;
        if inner.outstanding.fetch_add(1, Ordering::AcqRel) >= max {
            inner.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::new(format!(
                "queue full: {max} requests are pending (max_pending); poll() to run finished callbacks, or raise max_pending"
            )));
        }
        let mut pending = lock(&inner.pending);
        if !pending.accepting {
            drop(pending);
            inner.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::new("the client is closed"));
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let fut = op(inner.clone());
        let timeout = inner.config.timeout;
        let task_inner = inner.clone();
        // The deadline every wait and send of this request is held to; it is never later than
        // the timeout around the whole operation, which stays the last word.
        let accepted = Instant::now();
        let ctx = RequestCtx { id, deadline: accepted + timeout };
        inner.stats.submitted.fetch_add(1, Ordering::Relaxed);
        // Boxed: a future moved into an async block is stored twice (as the captured value and as
        // the awaited one); boxed, a queued request's task is about half the size.
        let fut = Box::pin(fut);
        // Spawned under the lock: the entry is in `pending` (with the task's abort handle) before
        // the task can complete, be cancelled or be closed.
        let task = self.handle.spawn(async move {
            // A panic inside the request's work completes it INTERNAL (Rust's panic hook has
            // already written the panic's message to stderr); it is never lost.
            let run = AssertUnwindSafe(tokio::time::timeout(timeout, CTX.scope(ctx, fut))).catch_unwind();
            let outcome = match run.await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => Err(Failure::new(
                    0,
                    ErrorCode::Timeout,
                    format!(
                        "no complete answer within {} ms (timeout_ms); the request may or may not have reached the API",
                        timeout.as_millis()
                    ),
                )),
                Err(_) => Err(Failure::new(
                    0,
                    ErrorCode::Internal,
                    "internal error: the library caught a panic while running this request; it may or may not \
                     have reached the API (please report it, with the panic message printed on stderr)",
                )),
            };
            task_inner.complete(id, outcome);
        });
        pending.entries.insert(id, Entry { handler, request_type, abort: Some(task.abort_handle()), accepted });
        Ok(id)
    }

    /// Run up to `max` ready callbacks on this thread (0 = all that are ready now). A ready
    /// result with no handler of its own goes to `fallback`. Returns how many ran. Never blocks
    /// waiting for results.
    ///
    /// Re-entrant calls run nothing: a `poll` of this client made from inside one of its
    /// callbacks (on the same thread) returns 0 at once, and the outer `poll` goes on
    /// delivering. So a callback that polls cannot make the stack grow with the number of
    /// ready results.
    pub fn poll(&self, max: usize, mut fallback: impl FnMut(Completion)) -> usize {
        self.poll_with(max, |c| {
            fallback(c);
            Ok(())
        })
    }

    /// Like [`Client::poll`], for a host whose own delivery of a result may fail (the Lua
    /// module, when the Lua stack is exhausted): a `fallback` that gives the completion back
    /// (`Err`) leaves it ready, first in line for the next poll, and ends this poll. Returns how
    /// many results were delivered.
    pub fn poll_with(&self, max: usize, mut fallback: impl FnMut(Completion) -> Result<(), Completion>) -> usize {
        let inner = &self.inner;
        let Some(_polling) = PollGuard::enter(inner) else { return 0 };
        let limit = if max == 0 { inner.ready_len.load(Ordering::Acquire) } else { max };
        let mut ran = 0;
        while ran < limit {
            if inner.ready_len.load(Ordering::Acquire) == 0 {
                break;
            }
            let Some(ready) = lock(&inner.ready).pop_front() else { break };
            inner.ready_len.fetch_sub(1, Ordering::AcqRel);
            let mut returned = None;
            run_ready(ready, |c| {
                if let Err(c) = fallback(c) {
                    returned = Some(c);
                }
            });
            if let Some(c) = returned {
                lock(&inner.ready).push_front(Ready::Result(c, None));
                inner.ready_len.fetch_add(1, Ordering::AcqRel);
                break;
            }
            inner.outstanding.fetch_sub(1, Ordering::AcqRel);
            ran += 1;
        }
        ran
    }

    /// Accepted requests whose callback has not run yet.
    pub fn pending(&self) -> usize {
        self.inner.outstanding.load(Ordering::Acquire)
    }

    /// Results ready for `poll()`.
    pub fn ready(&self) -> usize {
        self.inner.ready_len.load(Ordering::Acquire)
    }

    /// What the client has done so far: queue, in flight, completions by code, retries, 429s,
    /// time spent waiting for the limiter, latency percentiles, stopped and paused types.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats_snapshot()
    }

    /// Install a log hook (or remove it with `None`): it receives a line for each decision the
    /// client takes on its own (paused by a 429, retrying, not retrying, sending stopped or
    /// resumed, a coalesced call), with the API key and session ids redacted. It runs on a
    /// library worker thread, possibly two at once; once this returns, the previous hook is
    /// not running and is never called again. It must not call `set_log_hook` itself.
    pub fn set_log_hook(&self, hook: Option<LogHook>) {
        self.inner.events.set(hook);
    }

    /// Lift every stop put on sending by a fatal configuration answer and every 429 pause, at
    /// once (for a host that has fixed what was wrong, e.g. the API was enabled for its plan).
    pub fn resume(&self) {
        self.inner.breaker.reset();
        self.inner.limiter.clear_pauses();
    }

    /// Cancel a request that has not completed: it completes with `CANCELLED` (delivered like any
    /// result). Returns false when the id is unknown or already complete.
    pub fn cancel(&self, id: u64) -> bool {
        let entry = lock(&self.inner.pending).entries.remove(&id);
        match entry {
            Some(entry) => {
                if let Some(a) = &entry.abort {
                    a.abort();
                }
                let f = Failure::new(0, ErrorCode::Cancelled, "cancelled by the caller before it completed");
                self.inner.deliver(id, entry, Err(f));
                true
            }
            None => false,
        }
    }

    /// Stop accepting requests, complete every pending one with `SHUTDOWN`, and stop the
    /// runtime (its threads joined). Results not yet polled stay ready for `poll()`; in
    /// `thread` delivery every callback has run when this returns. Idempotent.
    pub fn close(&self) {
        let drained: Vec<(u64, Entry)> = {
            let mut pending = lock(&self.inner.pending);
            pending.accepting = false;
            pending.entries.drain().collect()
        };
        for (id, entry) in drained {
            if let Some(a) = &entry.abort {
                a.abort();
            }
            let f = Failure::new(0, ErrorCode::Shutdown, "the client was closed before the request completed");
            self.inner.deliver(id, entry, Err(f));
        }
        if let Some(rt) = lock(&self.runtime).take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Closed from inside an async context: joining here would deadlock.
                rt.shutdown_background();
            } else {
                drop(rt);
            }
        }
        self.inner.delivery_tx.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = lock(&self.delivery_thread).take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Client {
    /// Closes the client and runs every remaining callback on this thread.
    fn drop(&mut self) {
        self.close();
        self.poll(0, |_| {});
    }
}

thread_local! {
    /// The clients whose `poll` is running on this thread.
    static POLLING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a client as polled on this thread for as long as it lives (a panic included).
struct PollGuard(usize);

impl PollGuard {
    /// `None` when this thread is already inside a `poll` of this client.
    fn enter(inner: &Arc<Inner>) -> Option<PollGuard> {
        let me = Arc::as_ptr(inner) as usize;
        POLLING.with(|p| {
            let mut p = p.borrow_mut();
            if p.contains(&me) {
                return None;
            }
            p.push(me);
            Some(PollGuard(me))
        })
    }
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        let _ = POLLING.try_with(|p| p.borrow_mut().retain(|x| *x != self.0));
    }
}

/// The request being run by this task (its id and deadline), or, outside a request's task, a
/// deadline one timeout from now.
fn current_ctx(timeout: Duration) -> RequestCtx {
    CTX.try_with(|c| *c).unwrap_or(RequestCtx { id: 0, deadline: Instant::now() + timeout })
}

/// The session ids a call's elements carry (`sessionId`).
fn session_ids(data: &[Value]) -> impl Iterator<Item = &str> {
    data.iter().filter_map(|v| v.get("sessionId").and_then(Value::as_str))
}

/// Run one ready result's callback; a result without a handler goes to `fallback`.
fn run_ready(ready: Ready, mut fallback: impl FnMut(Completion)) {
    let _ = catch_unwind(AssertUnwindSafe(move || match ready {
        Ready::Result(completion, Some(h)) => h(completion),
        Ready::Result(completion, None) => fallback(completion),
        Ready::Prepared(run) => run(),
    }));
}

impl Inner {
    /// Called by a request's task with its outcome.
    fn complete(&self, id: u64, outcome: Outcome) {
        let entry = lock(&self.pending).entries.remove(&id);
        if let Some(entry) = entry {
            self.deliver(id, entry, outcome);
        }
    }

    fn deliver(&self, id: u64, entry: Entry, outcome: Outcome) {
        let outcome = outcome.map_err(|mut f| {
            f.message = self.redactor.scrub(&f.message);
            f
        });
        self.stats.completed(outcome.as_ref().err().map(|f| f.code), entry.accepted.elapsed());
        let completion = Completion { id, request_type: entry.request_type, outcome };
        let ready = match entry.handler {
            Some(Callback::Prepare(prepare)) => Ready::Prepared(prepare(completion)),
            Some(Callback::Handler(h)) => Ready::Result(completion, Some(h)),
            None => Ready::Result(completion, None),
        };
        if self.config.delivery == Delivery::Thread {
            let undelivered = match self.delivery_tx.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
                Some(tx) => tx.send(ready).err().map(|e| e.0),
                None => Some(ready),
            };
            // The delivery thread is gone (closing): run it here rather than lose it.
            if let Some(ready) = undelivered {
                run_ready(ready, |_| {});
                self.outstanding.fetch_sub(1, Ordering::AcqRel);
            }
            return;
        }
        lock(&self.ready).push_back(ready);
        self.ready_len.fetch_add(1, Ordering::AcqRel);
    }

    /// Remember the session ids a call carries, so that no text quotes them.
    fn remember_sessions<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.redactor.remember(ids);
    }

    /// Send a log line to the hook, redacted (built only when a hook is installed).
    fn log(&self, level: Level, message: impl FnOnce() -> String) {
        if self.events.enabled() {
            self.events.emit(level, &self.redactor.redact(&message()));
        }
    }

    fn stats_snapshot(&self) -> ClientStats {
        let st = &self.stats;
        let (latency_ms, request_latency_ms) = st.histograms();
        let mut disabled = serde_json::Map::new();
        for (ty, stop) in self.breaker.snapshot() {
            disabled.insert(
                ty.unwrap_or_else(|| "*".to_string()),
                json!({"cause": stop.cause, "remaining_ms": stop.until.saturating_duration_since(Instant::now()).as_millis() as u64}),
            );
        }
        let paused: serde_json::Map<String, Value> =
            self.limiter.pauses().into_iter().map(|(t, d)| (t.to_string(), json!(d.as_millis() as u64))).collect();
        ClientStats {
            pending: self.outstanding.load(Ordering::Acquire),
            queued: st.queued.load(Ordering::Relaxed),
            waiting_for_limiter: self.limiter.waiting(),
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
        }
    }

    /// Send one call the way every call goes out: stop check, coalescing (when configured for
    /// the type), the limiter queue, retries. Plain requests and the linking flows all come
    /// through here.
    pub(crate) async fn execute(&self, path: &str, call: &Call) -> Outcome {
        let ctx = current_ctx(self.config.timeout);
        self.remember_sessions(session_ids(&call.data));
        if let Check::Stopped { stop, every_type } = self.breaker.check(&call.request_type) {
            return Err(policy::disabled_failure(&call.request_type, &stop, every_type));
        }
        if let Some(window) = self.config.coalesce.get(&*call.request_type) {
            return Box::pin(self.coalesced(path, call, *window, ctx)).await;
        }
        let body = self.encode(&call.request_type, &call.data);
        let class = policy::retry_class(&call.request_type, &call.data);
        self.paced(path, &call.request_type, &body, class, ctx, 1).await
    }

    /// A single call whose body was encoded when it was submitted (its retry class taken then
    /// too): the stop check, then the limiter queue and retries.
    async fn send_encoded(&self, path: &str, ty: &Arc<str>, body: &[u8], class: RetryClass) -> Outcome {
        let ctx = current_ctx(self.config.timeout);
        if let Check::Stopped { stop, every_type } = self.breaker.check(ty) {
            return Err(policy::disabled_failure(ty, &stop, every_type));
        }
        self.paced(path, ty, body, class, ctx, 1).await
    }

    fn encode(&self, ty: &str, data: &[Value]) -> Vec<u8> {
        wire::encode_body(&self.config.community_id, self.config.api_key.expose(), ty, data)
    }

    /// One request through the limiter, retried per `policy`, until it succeeds, fails for
    /// good, or its deadline passes. `members` > 1 for a coalesced call (for log lines).
    async fn paced(
        &self,
        path: &str,
        ty: &Arc<str>,
        body: &[u8],
        class: RetryClass,
        ctx: RequestCtx,
        members: usize,
    ) -> Outcome {
        let max = self.config.max_attempts;
        let who = || {
            if members > 1 {
                format!("{ty} (coalesced call of {members} requests)")
            } else {
                format!("{ty} request {}", ctx.id)
            }
        };
        let mut attempt = 0u32;
        loop {
            // A 429 pause that outlasts the deadline: answer now rather than wait for nothing.
            if let Some(until) = self.limiter.paused_until(ty) {
                if until > ctx.deadline {
                    let left = until.saturating_duration_since(Instant::now()).as_millis() as u64;
                    let mut f = Failure::new(
                        0,
                        ErrorCode::RateLimited,
                        format!(
                            "not sent: {ty} is paused for another {left} ms after a 429 from the API, past this request's deadline (timeout_ms)"
                        ),
                    );
                    f.retry_after_ms = Some(left);
                    return Err(f);
                }
            }
            let waited = Instant::now();
            {
                let _queued = Gauge::up(&self.stats.queued);
                let turn = tokio::time::timeout_at(ctx.deadline, self.limiter.acquire(ty)).await;
                let us = waited.elapsed().as_micros() as u64;
                self.stats.limiter_wait_us.fetch_add(us, Ordering::Relaxed);
                if turn.is_err() {
                    return Err(Failure::new(
                        0,
                        ErrorCode::Timeout,
                        format!(
                            "not sent: waited {} ms for its turn (client-side rate_limits{}) and reached its deadline (timeout_ms {})",
                            us / 1000,
                            if attempt > 0 { ", after a retry" } else { "" },
                            self.config.timeout.as_millis()
                        ),
                    ));
                }
            }
            match self.breaker.check(ty) {
                Check::Stopped { stop, every_type } => return Err(policy::disabled_failure(ty, &stop, every_type)),
                Check::Reopened(stop) => self.log(Level::Info, || {
                    format!("sending {ty} again: the stop after {} ran out (disable_cooldown_ms)", stop.cause)
                }),
                Check::Open => {}
            }
            attempt += 1;
            let sent_at = Instant::now();
            let result = {
                let _on_wire = Gauge::up(&self.stats.in_flight);
                self.stats.api_calls.fetch_add(1, Ordering::Relaxed);
                // Boxed: the HTTP future is most of a request's state, and a request spends most
                // of its life waiting for its turn; it is allocated only while on the wire.
                Box::pin(self.send_once(ty, path, body.to_vec())).await
            };
            self.stats.http_latency.record(sent_at.elapsed());
            let mut f = match result {
                Ok(s) => return Ok(s),
                Err(f) => f,
            };
            match f.code {
                ErrorCode::InvalidApiKey | ErrorCode::InvalidCommunityId => {
                    self.breaker.trip(None, f.code, &f.message, self.config.disable_cooldown);
                    self.limiter.flush(None);
                    self.log(Level::Error, || {
                        format!(
                            "sending stopped for every type: the API answered {} ('{}') to {}; requests complete API_DISABLED for {} ms (disable_cooldown_ms) or until resume()",
                            f.code, f.message, who(), self.config.disable_cooldown.as_millis()
                        )
                    });
                    return Err(f);
                }
                ErrorCode::ApiNotEnabled => {
                    self.breaker.trip(Some(ty), f.code, &f.message, self.config.disable_cooldown);
                    self.limiter.flush(Some(ty));
                    self.log(Level::Error, || {
                        format!(
                            "sending {ty} stopped: the API answered {} ('{}'); {ty} requests complete API_DISABLED for {} ms (disable_cooldown_ms) or until resume()",
                            f.code, f.message, self.config.disable_cooldown.as_millis()
                        )
                    });
                    return Err(f);
                }
                ErrorCode::RateLimited => {
                    self.stats.rate_limited_429.fetch_add(1, Ordering::Relaxed);
                    let asked = f.retry_after_ms;
                    let cap = MAX_SERVER_WAIT.as_millis() as u64;
                    f.retry_after_ms = asked.map(|ms| ms.min(cap));
                    let capped = asked.is_some_and(|ms| ms > cap);
                    let pause = f.retry_after_ms.map(Duration::from_millis).unwrap_or(self.config.rate_limit_pause);
                    let until = Instant::now() + pause;
                    self.limiter.pause(ty, until);
                    let retry = attempt < max && until < ctx.deadline;
                    self.log(Level::Warn, || {
                        format!(
                            "{ty} paused for {} ms by a 429 ({}) answering {}; {}",
                            pause.as_millis(),
                            match asked {
                                Some(ms) if capped => format!(
                                    "the server's Retry-After of {} s, capped to the library's maximum of {} s",
                                    ms / 1000,
                                    cap / 1000
                                ),
                                Some(_) => "Retry-After".to_string(),
                                None => "no Retry-After: rate_limit_pause_ms".to_string(),
                            },
                            who(),
                            if retry {
                                format!("it is retried after the pause (attempt {} of {max})", attempt + 1)
                            } else {
                                "it completes RATE_LIMITED (no attempt or time left)".to_string()
                            }
                        )
                    });
                    if !retry {
                        return Err(f);
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    if !policy::may_retry(&f, class) {
                        if matches!(f.code, ErrorCode::ServerError | ErrorCode::Network) && attempt < max {
                            self.log(Level::Warn, || {
                                format!(
                                    "{} not retried after {}: it may have reached the API and repeating it is not safe",
                                    who(),
                                    f.code
                                )
                            });
                        }
                        return Err(f);
                    }
                    let wait = policy::backoff(self.config.retry_backoff, MAX_RETRY_BACKOFF, attempt);
                    if attempt >= max || Instant::now() + wait >= ctx.deadline {
                        return Err(f);
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
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
                    let _queued = Gauge::up(&self.stats.queued);
                    Box::pin(tokio::time::sleep(wait)).await;
                }
            }
        }
    }

    /// One HTTP call and the classification of its answer; no policy. A failure's message is
    /// redacted, then clipped, before anything else sees it.
    async fn send_once(&self, ty: &str, path: &str, body: Vec<u8>) -> Outcome {
        let answer = match self.transport.post(path, body).await {
            Ok(raw) => wire::classify(ty, raw),
            Err(f) => Err(f),
        };
        answer.map_err(|mut f| {
            f.message = self.redactor.scrub(&f.message);
            f
        })
    }

    /// Join (or open) the type's coalescing batch and wait for the shared call's outcome.
    async fn coalesced(&self, path: &str, call: &Call, window: Duration, ctx: RequestCtx) -> Outcome {
        let ty = &call.request_type;
        let bytes: usize = call.data.iter().map(|v| serde_json::to_vec(v).map(|b| b.len() + 1).unwrap_or(0)).sum();
        let live = Arc::new(AtomicBool::new(true));
        struct Leave(Arc<AtomicBool>);
        impl Drop for Leave {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        let _leave = Leave(live.clone());
        // Room for the envelope around the elements.
        let budget = self.config.max_request_bytes.saturating_sub(1024);
        let mut rx = {
            let mut batches = lock(&self.batches);
            let joined = batches.get(ty).and_then(|b| {
                let mut b = lock(b);
                let fits = !b.closed && b.members.len() < MAX_COALESCED && b.bytes + bytes <= budget;
                fits.then(|| {
                    b.members.push((call.data.clone(), live.clone()));
                    b.bytes += bytes;
                    b.deadline = b.deadline.max(ctx.deadline);
                    b.tx.subscribe()
                })
            });
            match joined {
                Some(rx) => rx,
                None => {
                    let (tx, rx) = watch::channel(None);
                    let batch = Arc::new(Mutex::new(Batch {
                        closed: false,
                        members: vec![(call.data.clone(), live.clone())],
                        bytes,
                        deadline: ctx.deadline,
                        tx,
                    }));
                    batches.insert(ty.clone(), batch.clone());
                    let Some(me) = self.me.upgrade() else {
                        return Err(Failure::new(0, ErrorCode::Shutdown, "the client was closed"));
                    };
                    let (ty, path) = (ty.clone(), path.to_string());
                    tokio::spawn(async move { me.run_batch(ty, path, batch, window).await });
                    rx
                }
            }
        };
        let _queued = Gauge::up(&self.stats.queued);
        let shared = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().expect("wait_for saw Some"),
            Err(_) => {
                Err(Failure::new(0, ErrorCode::Shutdown, "the client was closed before the coalesced call was sent"))
            }
        };
        shared
    }

    /// After the window: close the batch, send its live members' elements as one call, and
    /// hand the outcome to every member.
    async fn run_batch(self: Arc<Self>, ty: Arc<str>, path: String, batch: Arc<Mutex<Batch>>, window: Duration) {
        tokio::time::sleep(window).await;
        let (data, members, deadline, tx) = {
            let mut batches = lock(&self.batches);
            if batches.get(&ty).is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                batches.remove(&ty);
            }
            let mut b = lock(&batch);
            b.closed = true;
            let live: Vec<&(Vec<Value>, Arc<AtomicBool>)> =
                b.members.iter().filter(|(_, l)| l.load(Ordering::Relaxed)).collect();
            let members = live.len();
            let data: Vec<Value> = live.into_iter().flat_map(|(d, _)| d.iter().cloned()).collect();
            (data, members, b.deadline, b.tx.clone())
        };
        if members == 0 {
            return;
        }
        if members > 1 {
            self.stats.coalesced.fetch_add(members as u64, Ordering::Relaxed);
            self.log(Level::Debug, || format!("{ty}: {members} requests coalesced into one call"));
        }
        let ctx = RequestCtx { id: 0, deadline };
        let body = self.encode(&ty, &data);
        let class = policy::retry_class(&ty, &data);
        drop(data);
        let outcome = self.paced(&path, &ty, &body, class, ctx, members).await;
        let _ = tx.send(Some(outcome));
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "s3cr3t-key-0123456789";

    #[test]
    fn redaction_removes_session_ids_seen_in_requests() {
        let client = Client::new(Config::new("c", KEY)).unwrap();
        client.inner.remember_sessions(session_ids(&[json!({"username": "u", "sessionId": "75afeea-a869-4dea-b2"})]));
        client.inner.remember_sessions(session_ids(&[json!({"username": "u", "sessionId": "ab"})]));
        let text = client.inner.redactor.redact(&format!("echo 75afeea-a869-4dea-b2 with {KEY}, ab stays"));
        assert_eq!(text, "echo [redacted] with [redacted], ab stays");
    }

    #[test]
    fn a_request_whose_work_panics_completes_internal_exactly_once() {
        let client = Client::new(Config::new("c", KEY)).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let handler: Handler = Box::new(move |c: Completion| g.lock().unwrap().push(c));
        let id = client
            .submit_with(Arc::from("PANICS"), Some(handler), |_inner| async move {
                if std::hint::black_box(true) {
                    panic!("a bug inside a request's work");
                }
                Ok(crate::response::Success { status: 200, data: Value::Null })
            })
            .unwrap();
        assert_eq!(client.pending(), 1);
        let start = std::time::Instant::now();
        while got.lock().unwrap().is_empty() {
            client.poll(0, |_| {});
            assert!(start.elapsed() < Duration::from_secs(10), "the panicked request never completed");
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].id, got[0].code()), (id, Some(ErrorCode::Internal)));
        assert_eq!(client.pending(), 0);
        assert_eq!(client.stats().completed["INTERNAL"], json!(1));
    }

    #[test]
    fn a_poll_inside_a_callback_runs_nothing() {
        let client = Arc::new(Client::new(Config::new("c", KEY)).unwrap());
        let nested = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..3 {
            let (c, n) = (client.clone(), nested.clone());
            let handler: Handler = Box::new(move |_| n.lock().unwrap().push(c.poll(0, |_| {})));
            client
                .submit_with(Arc::from("NOOP"), Some(handler), |_| async {
                    Err(Failure::new(0, ErrorCode::Cancelled, "x"))
                })
                .unwrap();
        }
        let start = std::time::Instant::now();
        let mut ran = 0;
        while ran < 3 {
            ran += client.poll(0, |_| {});
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(*nested.lock().unwrap(), vec![0, 0, 0]);
        assert_eq!(client.pending(), 0);
    }
}
