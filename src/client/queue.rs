//! The pending set and delivery: every accepted request is an entry until its one result is
//! handed over, inside `poll()` or on the delivery thread.
//!
//! Exactly once: whoever takes an entry out of the pending set (the request's own task,
//! `cancel`, or `close`) delivers its one result; nobody else can.

use crate::config::Delivery;
use crate::error::{Refusal, RefusalKind};
use crate::response::Completion;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What runs with a request's result. In `poll` delivery it runs inside `Client::poll` on the
/// polling thread; in `thread` delivery on the library's delivery thread.
pub type Handler = Box<dyn FnOnce(Completion) + Send + 'static>;

/// A handler in two parts: the first runs as soon as the result is ready, on the library
/// thread that completes the request (or on the thread calling `cancel` or `close`), and
/// returns the second, which runs where callbacks run (inside `Client::poll`, or on the
/// delivery thread). Work done in the first part, such as rendering the result, stays off the
/// polling (game) thread. The first part must not panic: it would lose the second.
pub type Prepare = Box<dyn FnOnce(Completion) -> Box<dyn FnOnce() + Send> + Send + 'static>;

/// A request's callback, in one part or two.
pub enum Callback {
    Handler(Handler),
    Prepare(Prepare),
}

pub(crate) struct Entry {
    pub callback: Option<Callback>,
    pub request_type: Arc<str>,
    pub abort: Option<AbortHandle>,
    pub accepted: Instant,
}

enum Ready {
    /// A result for its handler (or, with none, for `poll`'s fallback).
    Result(Completion, Option<Handler>),
    /// The second part of a [`Prepare`] handler.
    Prepared(Box<dyn FnOnce() + Send>),
}

struct Pending {
    accepting: bool,
    entries: HashMap<u64, Entry>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated in a way that
    // matters more than losing requests would; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Queue {
    pending: Mutex<Pending>,
    /// Accepted requests whose callback has not run yet (in flight or ready).
    outstanding: Arc<AtomicUsize>,
    ready: Mutex<VecDeque<Ready>>,
    ready_len: AtomicUsize,
    /// `thread` delivery: the channel to the delivery thread (None once closed). Read-locked by
    /// every delivery (senders share it), write-locked once by `close`.
    delivery_tx: RwLock<Option<mpsc::Sender<Ready>>>,
    thread_delivery: bool,
}

impl Queue {
    /// The queue, and in `thread` delivery its delivery thread.
    pub(crate) fn new(delivery: Delivery) -> Result<(Queue, Option<JoinHandle<()>>), Refusal> {
        let outstanding = Arc::new(AtomicUsize::new(0));
        let (tx, thread) = match delivery {
            Delivery::Poll => (None, None),
            Delivery::Thread => {
                let (tx, rx) = mpsc::channel::<Ready>();
                let delivered = outstanding.clone();
                let t = std::thread::Builder::new()
                    .name("sonoran-delivery".into())
                    .spawn(move || {
                        for ready in rx {
                            run_ready(ready, |_| {});
                            delivered.fetch_sub(1, Ordering::AcqRel);
                        }
                    })
                    .map_err(|e| {
                        Refusal::of(RefusalKind::System, format!("could not start the delivery thread: {e}"))
                    })?;
                (Some(tx), Some(t))
            }
        };
        let queue = Queue {
            pending: Mutex::new(Pending { accepting: true, entries: HashMap::new() }),
            outstanding,
            ready: Mutex::new(VecDeque::new()),
            ready_len: AtomicUsize::new(0),
            delivery_tx: RwLock::new(tx),
            thread_delivery: delivery == Delivery::Thread,
        };
        Ok((queue, thread))
    }

    /// Accept a request: within `max` outstanding and while open, `start()` (run under the
    /// pending set's lock, so that the entry is in before its task can complete) gives its id
    /// and entry.
    pub(crate) fn admit(&self, max: usize, start: impl FnOnce() -> (u64, Entry)) -> Result<u64, Refusal> {
        let mut pending = lock(&self.pending);
        // Closed comes first: a closed client refuses as closed, however full it is.
        if !pending.accepting {
            return Err(Refusal::of(RefusalKind::Closed, "the client is closed"));
        }
        if self.outstanding.fetch_add(1, Ordering::AcqRel) >= max {
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::of(
                RefusalKind::QueueFull,
                format!(
                    "queue full: {max} requests are pending (max_pending); poll() to run finished callbacks, or raise \
                     max_pending"
                ),
            ));
        }
        let (id, entry) = start();
        pending.entries.insert(id, entry);
        Ok(id)
    }

    /// Take a pending request out (its result is then the taker's to deliver).
    pub(crate) fn take(&self, id: u64) -> Option<Entry> {
        lock(&self.pending).entries.remove(&id)
    }

    /// Stop accepting and take every pending request out.
    pub(crate) fn drain(&self) -> Vec<(u64, Entry)> {
        let mut pending = lock(&self.pending);
        pending.accepting = false;
        pending.entries.drain().collect()
    }

    /// Hand a completed request's result to where callbacks run.
    pub(crate) fn hand_over(&self, callback: Option<Callback>, completion: Completion) {
        let ready = match callback {
            Some(Callback::Prepare(prepare)) => Ready::Prepared(prepare(completion)),
            Some(Callback::Handler(h)) => Ready::Result(completion, Some(h)),
            None => Ready::Result(completion, None),
        };
        if self.thread_delivery {
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

    /// Close the channel to the delivery thread (it then ends once it has run what it holds).
    pub(crate) fn close_delivery(&self) {
        self.delivery_tx.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    pub(crate) fn ready(&self) -> usize {
        self.ready_len.load(Ordering::Acquire)
    }

    /// Run up to `max` ready callbacks on this thread (0: all ready now); see `Client::poll_with`.
    pub(crate) fn poll_with(
        &self,
        max: usize,
        mut fallback: impl FnMut(Completion) -> Result<(), Completion>,
    ) -> usize {
        // Nothing ready (the common case, every tick): no guard, no lock.
        if self.ready() == 0 {
            return 0;
        }
        let Some(_polling) = PollGuard::enter(self) else { return 0 };
        let limit = if max == 0 { self.ready() } else { max };
        let mut ran = 0;
        while ran < limit {
            if self.ready() == 0 {
                break;
            }
            let Some(ready) = lock(&self.ready).pop_front() else { break };
            self.ready_len.fetch_sub(1, Ordering::AcqRel);
            let mut returned = None;
            run_ready(ready, |c| {
                if let Err(c) = fallback(c) {
                    returned = Some(c);
                }
            });
            if let Some(c) = returned {
                lock(&self.ready).push_front(Ready::Result(c, None));
                self.ready_len.fetch_add(1, Ordering::AcqRel);
                break;
            }
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            ran += 1;
        }
        ran
    }
}

/// Run one ready result's callback; a result without a handler goes to `fallback`. A panicking
/// callback is contained: the others still run.
fn run_ready(ready: Ready, mut fallback: impl FnMut(Completion)) {
    let _ = catch_unwind(AssertUnwindSafe(move || match ready {
        Ready::Result(completion, Some(h)) => h(completion),
        Ready::Result(completion, None) => fallback(completion),
        Ready::Prepared(run) => run(),
    }));
}

thread_local! {
    /// The queues whose `poll` is running on this thread.
    static POLLING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a queue as polled on this thread for as long as it lives (a panic included), so that
/// a `poll` from inside one of its callbacks runs nothing.
struct PollGuard(usize);

impl PollGuard {
    /// `None` when this thread is already inside a `poll` of this queue.
    fn enter(queue: &Queue) -> Option<PollGuard> {
        let me = queue as *const Queue as usize;
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
