//! The engine: an owned tokio runtime, the pending set and delivery of every accepted request's
//! result exactly once ([`queue`]), the send loop with its retries ([`send`]), coalescing,
//! pacing, the stops after fatal answers, redaction, stats and the log hook.
//!
//! It knows no wire format: every path, body, header and error string comes from the
//! [`Api`](crate::api::Api) the configuration chose.

mod budget;
mod coalesce;
mod events;
mod pacing;
mod queue;
mod redact;
mod send;
mod shared;
mod stats;
mod stops;

pub use events::{Level, LogHook};
pub use queue::{Callback, Handler, Prepare};
pub use stats::ClientStats;

use crate::api::{legacy::Legacy, v2::V2, Api};
use crate::config::{ApiVersion, Config};
use crate::error::{Refusal, RefusalKind};
use crate::request::Call;
use crate::response::{Completion, ErrorCode, Failure, Outcome};
use crate::transport::Transport;
use events::Events;
use futures_util::FutureExt;
use pacing::Limiter;
use queue::{lock, Entry, Queue};
use redact::Redactor;
use send::RequestCtx;
use stats::Stats;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use tokio::runtime::Runtime;
use tokio::time::Instant;

pub(crate) struct Inner {
    config: Config,
    api: Box<dyn Api>,
    transport: Transport,
    queue: Queue,
    next_id: AtomicU64,
    limiter: Arc<Limiter>,
    /// The budget shared with the other servers of the key (`shared_budget`), if configured.
    shared: Option<Arc<shared::Shared>>,
    stops: stops::Stops,
    stats: Stats,
    events: Events,
    redactor: Redactor,
    batches: coalesce::Batches,
    /// Per-client state of the layers built on the engine (the flows' link cache).
    extensions: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
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

/// The engine as seen from inside a task started with [`Client::submit_task`]: it sends calls
/// the way every call goes out (the stop after fatal answers, coalescing, pacing, retries) and
/// keeps per-client state for the layers built on it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Send one call and wait for its outcome, within the deadline of the request this task
    /// runs for.
    pub async fn send(&self, call: &Call) -> Outcome {
        self.inner.execute(call).await
    }

    /// This client's one instance of `T` (made with `T::default()` on first use).
    pub fn state<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut ext = lock(&self.inner.extensions);
        let entry = ext.entry(TypeId::of::<T>()).or_insert_with(|| Arc::new(T::default()));
        Arc::clone(entry).downcast::<T>().expect("the entry of T's TypeId holds a T")
    }
}

impl Client {
    /// Start a client: validates the configuration, starts the runtime (and the delivery thread
    /// in `thread` delivery).
    pub fn new(config: Config) -> Result<Client, Refusal> {
        config.validate().map_err(|r| r.as_kind(RefusalKind::InvalidConfig))?;
        // The backend choice: the one place the engine names a wire format.
        let api: Box<dyn Api> = match config.api_version {
            ApiVersion::Legacy => {
                Box::new(Legacy::new(&config.community_id, config.api_key.expose(), &config.paths, &config.sections))
            }
            ApiVersion::V2 => Box::new(V2::new(config.api_key.expose(), config.link_check_ttl)),
        };
        let transport = Transport::new(&config, &api.headers())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .max_blocking_threads(2)
            .thread_name("sonoran-worker")
            .enable_all()
            .build()
            .map_err(|e| Refusal::of(RefusalKind::System, format!("could not start the library's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (queue, delivery_thread) = Queue::new(config.delivery)?;
        let limiter = Arc::new(Limiter::new(&config.rate_limits, config.rate_limit_margin));
        handle.spawn(limiter.clone().run());
        let shared = match &config.shared_budget {
            Some(b) => {
                let _in_runtime = handle.enter();
                let s = Arc::new(shared::Shared::new(
                    b,
                    config.api_key.expose(),
                    &config.rate_limits,
                    config.rate_limit_margin,
                )?);
                handle.spawn(s.fallback.clone().run());
                Some(s)
            }
            None => None,
        };
        let inner = Arc::new_cyclic(|me| Inner {
            api,
            transport,
            queue,
            next_id: AtomicU64::new(1),
            limiter,
            shared,
            stops: stops::Stops::default(),
            stats: Stats::new(),
            events: Events::default(),
            redactor: Redactor::new(config.api_key.expose()),
            batches: coalesce::Batches::default(),
            extensions: Mutex::new(HashMap::new()),
            me: me.clone(),
            config,
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
        self.submit_callback(call, handler.map(Callback::Handler))
    }

    /// Like [`Client::submit`], with a handler in two parts ([`Prepare`]): the C ABI renders
    /// each result's JSON where the request completes, so its callback only receives the text.
    pub fn submit_prepared(&self, call: Call, prepare: Prepare) -> Result<u64, Refusal> {
        self.submit_callback(call, Some(Callback::Prepare(prepare)))
    }

    /// Queue one validated call with a callback of either kind.
    pub fn submit_callback(&self, call: Call, callback: Option<Callback>) -> Result<u64, Refusal> {
        // Encoded now, once: a request that cannot be sent is refused before it is accepted,
        // and while it waits a request holds its encoded body, not the JSON it came from.
        let request_type = call.request_type.clone();
        if self.inner.api.prerequisite(&call).is_some() {
            // It needs another call's answer before it can be encoded (and so checked).
            return self.submit_task(request_type, callback, move |engine| async move { engine.send(&call).await });
        }
        let prepared = self.inner.prepare(&call)?;
        if self.inner.config.coalesce.contains_key(&*call.request_type) {
            // It may join a shared call: it keeps its elements rather than a body of its own.
            return self.submit_task(request_type, callback, move |engine| async move { engine.send(&call).await });
        }
        // Its secrets are remembered for redaction by its task, on a worker: not here, on the
        // caller's (game) thread.
        let secrets: Vec<String> = self.inner.api.secrets(&call).into_iter().map(str::to_string).collect();
        drop(call);
        self.submit_task(request_type, callback, move |engine| async move {
            engine.inner.redactor.remember(secrets.iter().map(String::as_str));
            engine.inner.send_prepared(&prepared).await
        })
    }

    /// Queue any work that produces one outcome (a single call, or a flow of several made with
    /// [`Engine::send`]). It runs on the library's runtime within the request's deadline
    /// (`timeout_ms`); its outcome reaches `callback` exactly once. A panic inside `op`'s
    /// future completes the request `INTERNAL`.
    pub fn submit_task<F, Fut>(&self, request_type: Arc<str>, callback: Option<Callback>, op: F) -> Result<u64, Refusal>
    where
        F: FnOnce(Engine) -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let inner = &self.inner;
        inner.queue.admit(inner.config.max_pending, || {
            let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
            // Boxed: a future moved into an async block is stored twice (as the captured value
            // and as the awaited one); boxed, a queued request's task is about half the size.
            let fut = Box::pin(op(Engine { inner: inner.clone() }));
            let timeout = inner.config.timeout;
            // The deadline every wait and send of this request is held to; it is never later
            // than the timeout around the whole operation, which stays the last word.
            let accepted = Instant::now();
            let ctx = RequestCtx { id, deadline: accepted + timeout };
            inner.stats.submitted.fetch_add(1, Ordering::Relaxed);
            let task_inner = inner.clone();
            let task = self.handle.spawn(async move {
                let run = AssertUnwindSafe(tokio::time::timeout(timeout, send::scoped(ctx, fut))).catch_unwind();
                let outcome = match run.await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => Err(Failure::new(
                        0,
                        ErrorCode::Timeout,
                        format!(
                            "no complete answer within {} ms (timeout_ms); the request may or may not have reached \
                             the API",
                            timeout.as_millis()
                        ),
                    )),
                    // Rust's panic hook has already written the panic's message to stderr.
                    Err(_) => Err(Failure::new(
                        0,
                        ErrorCode::Internal,
                        "internal error: the library caught a panic while running this request; it may or may not \
                         have reached the API (please report it, with the panic message printed on stderr)",
                    )),
                };
                task_inner.complete(id, outcome);
            });
            (id, Entry { callback, request_type, abort: Some(task.abort_handle()), accepted })
        })
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
    pub fn poll_with(&self, max: usize, fallback: impl FnMut(Completion) -> Result<(), Completion>) -> usize {
        self.inner.queue.poll_with(max, fallback)
    }

    /// Accepted requests whose callback has not run yet.
    pub fn pending(&self) -> usize {
        self.inner.queue.outstanding()
    }

    /// Results ready for `poll()`.
    pub fn ready(&self) -> usize {
        self.inner.queue.ready()
    }

    /// What the client has done so far: queue, in flight, completions by code, retries, 429s,
    /// time spent waiting for the limiter, latency percentiles, stopped and paused types.
    pub fn stats(&self) -> ClientStats {
        let inner = &self.inner;
        let mut s = stats::snapshot(&inner.stats, &inner.limiter, &inner.stops, inner.queue.outstanding());
        s.shared_budget = inner.shared.as_ref().map_or(serde_json::Value::Null, |b| b.to_value());
        s
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
        let inner = &self.inner;
        if let Some(shared) = inner.shared.clone() {
            // The other servers of the key are told too: their next admission finds no stop.
            let types: Vec<String> = inner.stops.snapshot().into_iter().filter_map(|(t, _)| t).collect();
            let buckets: Vec<String> = inner.limiter.pauses().into_iter().map(|(b, _)| b.to_string()).collect();
            self.handle.spawn(async move { shared.publish_resume(types, buckets).await });
        }
        inner.stops.reset();
        inner.limiter.clear_pauses();
    }

    /// Cancel a request that has not completed: it completes with `CANCELLED` (delivered like any
    /// result). Returns false when the id is unknown or already complete.
    pub fn cancel(&self, id: u64) -> bool {
        match self.inner.queue.take(id) {
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
    /// `thread` delivery every callback has run when this returns (on the delivery thread).
    /// Idempotent.
    pub fn close(&self) {
        for (id, entry) in self.inner.queue.drain() {
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
        self.inner.queue.close_delivery();
        if let Some(t) = lock(&self.delivery_thread).take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Client {
    /// Closes the client and runs every remaining callback (poll delivery: on this thread).
    fn drop(&mut self) {
        self.close();
        self.poll(0, |_| {});
    }
}

impl Inner {
    /// Called by a request's task with its outcome.
    fn complete(&self, id: u64, outcome: Outcome) {
        if let Some(entry) = self.queue.take(id) {
            self.deliver(id, entry, outcome);
        }
    }

    /// The one delivery of a request taken out of the pending set: its message redacted and
    /// clipped, counted, handed to where callbacks run.
    fn deliver(&self, id: u64, entry: Entry, outcome: Outcome) {
        let outcome = outcome.map_err(|mut f| {
            f.message = self.redactor.scrub(&f.message);
            f
        });
        self.stats.completed(outcome.as_ref().err().map(|f| f.code), entry.accepted.elapsed());
        let completion = Completion { id, request_type: entry.request_type, outcome };
        self.queue.hand_over(entry.callback, completion);
    }

    /// Send a log line to the hook, redacted (built only when a hook is installed).
    fn log(&self, level: Level, message: impl FnOnce() -> String) {
        if self.events.enabled() {
            self.events.emit(level, &self.redactor.redact(&message()));
        }
    }
}

#[cfg(test)]
mod tests;
