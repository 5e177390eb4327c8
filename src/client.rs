//! The client: an owned tokio runtime, a bounded set of pending requests, and delivery of every
//! accepted request's result exactly once.
//!
//! Exactly once: an accepted request is an entry in `pending`. Whoever removes the entry (the
//! request's own task, `cancel`, or `close`) delivers its one result; nobody else can.

use crate::config::{Config, Delivery};
use crate::error::Refusal;
use crate::linking::LinkCache;
use crate::request::Call;
use crate::response::{Completion, ErrorCode, Failure, Outcome};
use crate::transport::Transport;
use crate::wire;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

/// What runs with a request's result. In `poll` delivery it runs inside [`Client::poll`] on the
/// polling thread; in `thread` delivery on the library's delivery thread.
pub type Handler = Box<dyn FnOnce(Completion) + Send + 'static>;

struct Entry {
    handler: Option<Handler>,
    request_type: Arc<str>,
    abort: Option<AbortHandle>,
}

struct Pending {
    accepting: bool,
    entries: HashMap<u64, Entry>,
}

type Ready = (Completion, Option<Handler>);

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
    delivery_tx: Mutex<Option<mpsc::Sender<Ready>>>,
    pub(crate) link_cache: LinkCache,
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
                        for (completion, handler) in rx {
                            run_handler(handler, completion);
                            delivered.fetch_sub(1, Ordering::AcqRel);
                        }
                    })
                    .map_err(|e| Refusal::new(format!("could not start the delivery thread: {e}")))?;
                (Some(tx), Some(t))
            }
        };
        let inner = Arc::new(Inner {
            config,
            transport,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Pending { accepting: true, entries: HashMap::new() }),
            outstanding,
            ready: Mutex::new(VecDeque::new()),
            ready_len: AtomicUsize::new(0),
            delivery_tx: Mutex::new(delivery_tx),
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
        let path = self.inner.config.path_for(&call.request_type)?;
        let request_type = call.request_type.clone();
        self.submit_with(request_type, handler, move |inner| async move { inner.execute(&path, &call).await })
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
        let task = self.handle.spawn(async move {
            let outcome = match tokio::time::timeout(timeout, fut).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure::new(
                    0,
                    ErrorCode::Timeout,
                    format!(
                        "no complete answer within {} ms (timeout_ms); the request may or may not have reached the API",
                        timeout.as_millis()
                    ),
                )),
            };
            task_inner.complete(id, outcome);
        });
        pending.entries.insert(id, Entry { handler, request_type, abort: Some(task.abort_handle()) });
        Ok(id)
    }

    /// Run up to `max` ready callbacks on this thread (0 = all that are ready now). A ready
    /// result with no handler of its own goes to `fallback`. Returns how many ran. Never blocks
    /// waiting for results.
    pub fn poll(&self, max: usize, mut fallback: impl FnMut(Completion)) -> usize {
        let inner = &self.inner;
        let limit = if max == 0 { inner.ready_len.load(Ordering::Acquire) } else { max };
        let mut ran = 0;
        while ran < limit {
            if inner.ready_len.load(Ordering::Acquire) == 0 {
                break;
            }
            let Some((completion, handler)) = lock(&inner.ready).pop_front() else { break };
            inner.ready_len.fetch_sub(1, Ordering::AcqRel);
            match handler {
                Some(h) => run_handler(Some(h), completion),
                None => {
                    let _ = catch_unwind(AssertUnwindSafe(|| fallback(completion)));
                }
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
        lock(&self.inner.delivery_tx).take();
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

fn run_handler(handler: Option<Handler>, completion: Completion) {
    if let Some(h) = handler {
        let _ = catch_unwind(AssertUnwindSafe(move || h(completion)));
    }
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
            f.message = self.redact(&f.message);
            f
        });
        let completion = Completion { id, request_type: entry.request_type, outcome };
        let ready = (completion, entry.handler);
        if self.config.delivery == Delivery::Thread {
            let undelivered = match lock(&self.delivery_tx).as_ref() {
                Some(tx) => tx.send(ready).err().map(|e| e.0),
                None => Some(ready),
            };
            // The delivery thread is gone (closing): run it here rather than lose it.
            if let Some((completion, handler)) = undelivered {
                run_handler(handler, completion);
                self.outstanding.fetch_sub(1, Ordering::AcqRel);
            }
            return;
        }
        lock(&self.ready).push_back(ready);
        self.ready_len.fetch_add(1, Ordering::AcqRel);
    }

    /// Remove the API key from any text that leaves the library.
    pub(crate) fn redact(&self, text: &str) -> String {
        let key = self.config.api_key.expose();
        if key.is_empty() || !text.contains(key) {
            return text.to_string();
        }
        text.replace(key, "[redacted]")
    }

    /// Send one call and classify the answer.
    pub(crate) async fn execute(&self, path: &str, call: &Call) -> Outcome {
        let body =
            wire::encode_body(&self.config.community_id, self.config.api_key.expose(), &call.request_type, &call.data);
        let raw = self.transport.post(path, body).await?;
        wire::classify(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_the_key_from_any_text() {
        let client = Client::new(Config::new("c", "s3cr3t-key")).unwrap();
        let text = client.inner.redact("server said: bad key s3cr3t-key (s3cr3t-key)");
        assert_eq!(text, "server said: bad key [redacted] ([redacted])");
    }
}
