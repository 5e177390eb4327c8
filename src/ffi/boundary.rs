//! The panic boundary and the argument checks every exported function goes through, and the
//! thread's last error.

use super::sonoran_client;
use crate::client::Client;
use crate::error::{Refusal, RefusalKind};
use crate::text::json_error;
use serde_json::Value;
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<Option<(RefusalKind, CString)>> = const { RefCell::new(None) };
}

pub(super) fn set_last_error(kind: RefusalKind, message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some((kind, text)));
}

fn clear_last_error() {
    LAST_ERROR.with(|e| {
        if let Ok(mut slot) = e.try_borrow_mut() {
            slot.take();
        }
    });
}

/// Run `body`; a panic becomes `fail` with a generic last error (never the panic's text).
/// Success clears the last error; a refusal sets it.
pub(super) fn guard<T>(fail: T, body: impl FnOnce() -> Result<T, Refusal>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => {
            clear_last_error();
            v
        }
        Ok(Err(refusal)) => {
            set_last_error(refusal.kind(), refusal.message());
            fail
        }
        Err(_) => {
            set_last_error(
                RefusalKind::Internal,
                "internal error: the library caught a panic at the C boundary (please report it)",
            );
            fail
        }
    }
}

/// Run `body` without touching the last error (for the functions that read it); a panic
/// becomes `fail`.
pub(super) fn quiet<T>(fail: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fail)
}

/// The last error as the C string `sonoran_last_error` returns (NULL when there is none).
pub(super) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |(_, s)| s.as_ptr()))
}

/// The kind of the last error as its number (`SONORAN_REFUSED_*`), 0 when there is none.
pub(super) fn last_error_code() -> i32 {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(0, |(kind, _)| kind.number()))
}

/// A NUL-terminated UTF-8 argument.
pub(super) unsafe fn arg_str<'a>(name: &str, p: *const c_char) -> Result<&'a str, Refusal> {
    if p.is_null() {
        return Err(Refusal::field(name, "is NULL"));
    }
    CStr::from_ptr(p).to_str().map_err(|_| Refusal::field(name, "is not valid UTF-8"))
}

pub(super) unsafe fn arg_json(name: &str, p: *const c_char) -> Result<Value, Refusal> {
    let text = arg_str(name, p)?;
    serde_json::from_str(text).map_err(|e| Refusal::field(name, format!("is not valid JSON ({})", json_error(&e))))
}

pub(super) unsafe fn arg_client<'a>(c: *const sonoran_client) -> Result<&'a Client, Refusal> {
    arg_handle(c).map(|h| &h.client)
}

pub(super) unsafe fn arg_handle<'a>(c: *const sonoran_client) -> Result<&'a sonoran_client, Refusal> {
    c.as_ref().ok_or_else(|| Refusal::field("client", "is NULL"))
}
