//! Calling the host back: a request's callback and the log callback, and what makes freeing a
//! client from inside its own callback safe (the free is deferred until the callback returns).

use super::{sonoran_callback, sonoran_client};
use crate::client::{Callback, Level, Prepare};
use crate::response::Completion;
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// Whether a client is live, asked to be freed from inside its own callback, or being freed.
/// Shared with every callback of the client, which may outlive the handle (a deferred free
/// runs while later callbacks still wait on the delivery thread).
pub(super) struct Life {
    pub(super) state: AtomicU8,
    /// The handle's address, for the deferred free.
    pub(super) handle: AtomicUsize,
}

pub(super) const LIVE: u8 = 0;
pub(super) const FREE_DEFERRED: u8 = 1;
pub(super) const FREEING: u8 = 2;

thread_local! {
    /// The clients (their `Life`) whose callback is running on this thread, innermost last.
    static IN_CALLBACK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn life_id(life: &Arc<Life>) -> usize {
    Arc::as_ptr(life) as usize
}

pub(super) fn in_callback_of(life: &Arc<Life>) -> bool {
    let me = life_id(life);
    IN_CALLBACK.try_with(|v| v.borrow().contains(&me)).unwrap_or(false)
}

/// Marks a callback of a client as running on this thread for as long as it lives.
struct CallbackFrame(usize);

impl CallbackFrame {
    fn enter(life: &Arc<Life>) -> CallbackFrame {
        let me = life_id(life);
        let _ = IN_CALLBACK.try_with(|v| v.borrow_mut().push(me));
        CallbackFrame(me)
    }
}

impl Drop for CallbackFrame {
    fn drop(&mut self) {
        let _ = IN_CALLBACK.try_with(|v| {
            let mut v = v.borrow_mut();
            if let Some(i) = v.iter().rposition(|x| *x == self.0) {
                v.remove(i);
            }
        });
    }
}

/// Run a free that was asked for inside a callback, once no callback of the client runs on
/// this thread any more. Returns whether it ran.
///
/// # Safety
/// `life.handle` is a live handle while the state is `FREE_DEFERRED`: only this function and
/// `sonoran_client_free` leave that state, each by winning the exchange to `FREEING`.
pub(super) unsafe fn run_deferred_free(life: &Arc<Life>) -> bool {
    if in_callback_of(life)
        || life.state.compare_exchange(FREE_DEFERRED, FREEING, Ordering::AcqRel, Ordering::Acquire).is_err()
    {
        return false;
    }
    let handle = life.handle.load(Ordering::Acquire) as *mut sonoran_client;
    drop(Box::from_raw(handle));
    true
}

struct CCallback {
    cb: unsafe extern "C" fn(*mut c_void, u64, *const c_char),
    user_data: *mut c_void,
    life: Arc<Life>,
    /// `"delivery": "thread"`: a free asked for inside the callback runs when it returns.
    thread_delivery: bool,
}

// SAFETY: the host hands us `user_data` to be given back to its callback; the threading
// contract (documented on `sonoran_callback`) says on which thread that happens.
unsafe impl Send for CCallback {}

impl CCallback {
    fn call_rendered(self, id: u64, json: &CStr) {
        {
            let _frame = CallbackFrame::enter(&self.life);
            // SAFETY: the host promised a valid function pointer when it submitted the request.
            unsafe { (self.cb)(self.user_data, id, json.as_ptr()) }
        }
        if self.thread_delivery {
            // SAFETY: see run_deferred_free; on the delivery thread nothing else holds the handle.
            unsafe { run_deferred_free(&self.life) };
        }
    }
}

fn c_callback(h: &sonoran_client, cb: sonoran_callback, user_data: *mut c_void) -> Option<CCallback> {
    let thread_delivery = h.client.config().delivery == crate::config::Delivery::Thread;
    cb.map(|cb| CCallback { cb, user_data, life: h.life.clone(), thread_delivery })
}

/// The callback in two parts: the result's JSON is rendered (and the parsed result freed) where
/// the request completes, so the thread running callbacks only hands over the text.
pub(super) fn c_prepare(h: &sonoran_client, cb: sonoran_callback, user_data: *mut c_void) -> Option<Callback> {
    c_callback(h, cb, user_data)
        .map(|cc| {
            Box::new(move |c: Completion| {
                let id = c.id;
                let json = CString::new(c.to_json()).unwrap_or_default();
                drop(c);
                // SAFETY: the host promised a valid function pointer when it submitted the request.
                Box::new(move || cc.call_rendered(id, &json)) as Box<dyn FnOnce() + Send>
            }) as Prepare
        })
        .map(Callback::Prepare)
}

pub(super) struct CLogger {
    pub(super) cb: unsafe extern "C" fn(*mut c_void, i32, *const c_char),
    pub(super) user_data: *mut c_void,
}

// SAFETY: the host hands us `user_data` for its log callback and accepts (see
// `sonoran_log_callback`) that it is called from library worker threads.
unsafe impl Send for CLogger {}
unsafe impl Sync for CLogger {}

impl CLogger {
    pub(super) fn call(&self, level: Level, message: &str) {
        let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: the host promised a valid function pointer when it installed it.
        unsafe { (self.cb)(self.user_data, level as i32, text.as_ptr()) }
    }
}
