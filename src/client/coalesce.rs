//! Opt-in coalescing: calls of one type submitted within the type's window go out as one call
//! whose `data` holds all their elements, and every member gets that call's outcome. Only for
//! the types the API allows (`Api::may_coalesce`, checked at configuration).

use super::queue::lock;
use super::send::RequestCtx;
use super::stats::Gauge;
use super::{Inner, Level};
use crate::request::Call;
use crate::response::{ErrorCode, Failure, Outcome};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

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

/// The open batch of each type.
#[derive(Default)]
pub(crate) struct Batches {
    open: Mutex<HashMap<Arc<str>, Arc<Mutex<Batch>>>>,
}

/// Marks a member as gone when its request ends before the call goes out (cancelled, timed
/// out), so that its elements are left out.
struct Leave(Arc<AtomicBool>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Inner {
    /// Join (or open) the type's batch and wait for the shared call's outcome.
    pub(super) async fn coalesced(&self, call: &Call, window: Duration, ctx: RequestCtx) -> Outcome {
        let ty = &call.request_type;
        let bytes: usize = call.data.iter().map(|v| serde_json::to_vec(v).map(|b| b.len() + 1).unwrap_or(0)).sum();
        let live = Arc::new(AtomicBool::new(true));
        let _leave = Leave(live.clone());
        // Room for the envelope around the elements.
        let budget = self.config.max_request_bytes.saturating_sub(1024);
        let mut rx = {
            let mut open = lock(&self.batches.open);
            let joined = open.get(ty).and_then(|b| {
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
                    open.insert(ty.clone(), batch.clone());
                    let Some(me) = self.me.upgrade() else {
                        return Err(Failure::new(0, ErrorCode::Shutdown, "the client was closed"));
                    };
                    let ty = ty.clone();
                    tokio::spawn(async move { me.run_batch(ty, batch, window).await });
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
    async fn run_batch(self: Arc<Self>, ty: Arc<str>, batch: Arc<Mutex<Batch>>, window: Duration) {
        tokio::time::sleep(window).await;
        let (data, members, deadline, tx) = {
            let mut open = lock(&self.batches.open);
            if open.get(&ty).is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                open.remove(&ty);
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
        let merged = Call { request_type: ty, data };
        let outcome = match self.prepare(&merged) {
            Ok(prepared) => {
                drop(merged);
                self.paced(&prepared, ctx, members).await
            }
            Err(r) => Err(Failure::new(0, ErrorCode::InvalidEndpoint, r.to_string())),
        };
        let _ = tx.send(Some(outcome));
    }
}
