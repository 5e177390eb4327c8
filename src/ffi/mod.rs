//! The C ABI: an opaque client handle, request functions that return a request id, and
//! callbacks that receive each result as JSON exactly once.
//!
//! Every exported function runs inside a panic boundary, NULL-checks its pointers and checks
//! its strings for UTF-8. A refused call returns its failure value (NULL or 0) and leaves the
//! reason in `sonoran_last_error()`.
//!
//! # Safety (for every function here)
//! Each pointer argument is NULL or valid for the call: strings NUL-terminated, `client` a
//! pointer returned by `sonoran_client_new` and not yet freed, `cb` a function that stays
//! callable (and `user_data` whatever it expects) until the request's callback has run.
#![allow(clippy::missing_safety_doc)]

mod boundary;
mod callback;
mod flows;

pub use flows::{sonoran_create_link_code, sonoran_is_linked, sonoran_link_from_tablet, sonoran_parse_session};

use crate::client::{Client, Level, LogHook};
use crate::config::ApiVersion;
use crate::config::Config;
use crate::error::{Refusal, RefusalKind};
use crate::request::{Call, Kind};
use boundary::{arg_client, arg_handle, arg_json, arg_str, guard, quiet};
use callback::{c_prepare, in_callback_of, run_deferred_free, CLogger, Life, FREEING, FREE_DEFERRED, LIVE};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// An opaque Sonoran CAD client. Create with `sonoran_client_new`, free with
/// `sonoran_client_free`. All functions taking a client may be called from any thread.
#[allow(non_camel_case_types)]
pub struct sonoran_client {
    client: Client,
    life: Arc<Life>,
}

/// Called exactly once per accepted request. `result_json` is UTF-8 JSON, valid only until the
/// callback returns. With `"delivery": "poll"` (the default) it runs inside `sonoran_poll` on the
/// thread calling it; with `"delivery": "thread"` it runs on the library's delivery thread, one
/// callback at a time. While `sonoran_client_free` runs, remaining callbacks run on the thread
/// calling it, before it returns. A callback may submit new requests; it must not free the client.
#[allow(non_camel_case_types)]
pub type sonoran_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, request_id: u64, result_json: *const c_char)>;

/// Log levels passed to `sonoran_log_callback`.
pub const SONORAN_LOG_DEBUG: i32 = 0;
pub const SONORAN_LOG_INFO: i32 = 1;
pub const SONORAN_LOG_WARN: i32 = 2;
pub const SONORAN_LOG_ERROR: i32 = 3;

/// Receives one line for each decision the library takes on its own: a type paused by a 429,
/// a retry, a request not retried because repeating it is not safe, sending stopped after a
/// fatal configuration answer (or resumed), a coalesced call. `level` is one of
/// `SONORAN_LOG_DEBUG` .. `SONORAN_LOG_ERROR`. `message` is UTF-8 with the API key and session
/// ids redacted, valid only until the callback returns. It runs on a library worker thread
/// (not the thread calling `sonoran_poll`), possibly on two worker threads at once, and must
/// return quickly. It must not call `sonoran_set_log_callback` or `sonoran_client_free`.
#[allow(non_camel_case_types)]
pub type sonoran_log_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: i32, message: *const c_char)>;

unsafe fn submit(
    c: *mut sonoran_client,
    data_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
    kind: Kind,
) -> Result<u64, Refusal> {
    let h = arg_handle(c)?;
    let data = arg_json("data_json", data_json)?;
    submit_call(h, Call::for_api(h.client.config().api_version, kind, data)?, cb, user_data)
}

fn submit_call(h: &sonoran_client, call: Call, cb: sonoran_callback, user_data: *mut c_void) -> Result<u64, Refusal> {
    h.client.submit_callback(call, c_prepare(h, cb, user_data))
}

/// Create a client from a JSON configuration (see the README for every key:
/// `community_id`, `api_key`, `api_url`, `timeout_ms`, `delivery`, `max_pending`, `paths`,
/// `sections`, `allow_insecure_http`, `worker_threads`, `max_response_bytes`,
/// `max_request_bytes`, `primary_identifier`, `identifier_prefix`, `link_check_ttl_ms`,
/// `set_api_id_form`, `rate_limits`, `rate_limit_margin_ms`, `max_attempts`, `retry_backoff_ms`,
/// `rate_limit_pause_ms`, `disable_cooldown_ms`, `coalesce`).
/// Returns NULL when refused; the reason is in `sonoran_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn sonoran_client_new(config_json: *const c_char) -> *mut sonoran_client {
    guard(std::ptr::null_mut(), || {
        let text = arg_str("config_json", config_json)?;
        let config = Config::from_json(text)?;
        let client = Client::new(config)?;
        let life = Arc::new(Life { state: AtomicU8::new(LIVE), handle: AtomicUsize::new(0) });
        let handle = Box::into_raw(Box::new(sonoran_client { client, life }));
        let h: &sonoran_client = &*handle;
        h.life.handle.store(handle as usize, Ordering::Release);
        Ok(handle)
    })
}

/// Free a client. NULL is a no-op. Stops accepting requests, completes every pending request
/// (`SHUTDOWN`), runs the remaining callbacks (`"poll"` delivery: on this thread;
/// `"thread"` delivery: on the delivery thread, which it joins), and joins the library's
/// threads before it returns.
///
/// Called from inside one of this client's own callbacks, the free is deferred: the client is
/// closed at once (new requests are refused, pending ones complete `SHUTDOWN`), and freed when
/// the callback returns: at the end of the `sonoran_poll` that ran it (`"poll"` delivery), or
/// on the delivery thread right after the callback (`"thread"` delivery; the remaining
/// callbacks then run on that thread before it exits). A second free of the same client from a
/// callback is ignored.
#[no_mangle]
pub unsafe extern "C" fn sonoran_client_free(client: *mut sonoran_client) {
    guard((), || {
        if client.is_null() {
            return Ok(());
        }
        let h: &sonoran_client = &*client;
        let life = h.life.clone();
        if in_callback_of(&life) {
            if life.state.compare_exchange(LIVE, FREE_DEFERRED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                h.client.close();
            }
            return Ok(());
        }
        if life.state.swap(FREEING, Ordering::AcqRel) != FREEING {
            drop(Box::from_raw(client));
        }
        Ok(())
    })
}

/// SET_API_ID. `data_json`: an object or array of objects with `username` or `account`,
/// optional `sessionId`, and `apiIds` (+ `pushNew`, default true) or `id1` / `id2`.
/// Returns the request id (> 0), or 0 when refused (reason in `sonoran_last_error()`).
#[no_mangle]
pub unsafe extern "C" fn sonoran_set_api_id(
    c: *mut sonoran_client,
    data_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || submit(c, data_json, cb, user_data, Kind::SetApiId))
}

/// LINK_CHARACTER: `apiId`, `syncId`, `action` (0 ADD, 2 REMOVE). Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_link_character(
    c: *mut sonoran_client,
    data_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || submit(c, data_json, cb, user_data, Kind::LinkCharacter))
}

/// MODIFY_IDENTIFIER: `apiId` or `account`, `action` (0 ADD, 1 EDIT, 2 REMOVE), `identifier`
/// (ADD, EDIT), `identId` (REMOVE; optional for EDIT). Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_modify_identifier(
    c: *mut sonoran_client,
    data_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || submit(c, data_json, cb, user_data, Kind::ModifyIdentifier))
}

/// SET_ACCOUNT_PERMISSIONS: one of `apiId`, `username`, `accId`; `add`, `remove`, `set`
/// (permission names), `active`, `join` (with `accId`). Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_set_account_permissions(
    c: *mut sonoran_client,
    data_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || submit(c, data_json, cb, user_data, Kind::SetAccountPermissions))
}

/// GET_ACCOUNT: one of `apiId`, `username`, `account`. Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_get_account(
    c: *mut sonoran_client,
    data_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || submit(c, data_json, cb, user_data, Kind::GetAccount))
}

/// CHECK_APIID: `apiId`. Success (`data`: the username) means linked; `NOT_LINKED` means not.
/// Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_check_api_id(
    c: *mut sonoran_client,
    data_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || submit(c, data_json, cb, user_data, Kind::CheckApiId))
}

/// Any API type, e.g. `"UNIT_STATUS"`. `data_json`: an object, an array of objects, or `null`.
/// The six typed types are validated as by their own functions; other types need a known or
/// registered section (`sections` / `paths` configuration). Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_request(
    c: *mut sonoran_client,
    request_type: *const c_char,
    data_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || {
        let h = arg_handle(c)?;
        if h.client.config().api_version == ApiVersion::V2 {
            return Err(Refusal::of(
                RefusalKind::WrongApi,
                "sonoran_request sends a legacy API type; with \"api_version\": \"v2\" use \
                 sonoran_request_v2(c, method, path, body_json, cb, user_data)",
            ));
        }
        let ty = arg_str("type", request_type)?;
        let data = arg_json("data_json", data_json)?;
        submit_call(h, Call::generic(ty, data)?, cb, user_data)
    })
}

/// Any v2 route (`"api_version": "v2"` only): `method` `"GET"`, `"POST"`, `"PUT"`, `"PATCH"` or
/// `"DELETE"`; `path` under `/v2/`, with its query, values percent-encoded; `body_json` a JSON
/// object or array, or NULL for no body. The result's type is `"METHOD /v2/path"`, its `data`
/// the answer as it came. Returns the request id or 0.
#[no_mangle]
pub unsafe extern "C" fn sonoran_request_v2(
    c: *mut sonoran_client,
    method: *const c_char,
    path: *const c_char,
    body_json: *const c_char,
    cb: sonoran_callback,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || {
        let h = arg_handle(c)?;
        if h.client.config().api_version != ApiVersion::V2 {
            return Err(Refusal::of(
                RefusalKind::WrongApi,
                "sonoran_request_v2 needs \"api_version\": \"v2\"; the legacy API takes sonoran_request(c, type, \
                 data_json, cb, user_data)",
            ));
        }
        let method = arg_str("method", method)?;
        let path = arg_str("path", path)?;
        let body = if body_json.is_null() { None } else { Some(arg_json("body_json", body_json)?) };
        submit_call(h, Call::v2_request(method, path, body)?, cb, user_data)
    })
}

/// Run up to `max` ready callbacks on this thread (0 = all ready now); returns how many ran.
/// Never waits for a result. With `"delivery": "thread"` there is nothing to poll. Called from
/// inside one of this client's callbacks it runs nothing and returns 0 (the outer
/// `sonoran_poll` goes on delivering), so the stack never grows with the number of results.
/// When a callback freed the client, the free runs as this call returns: `c` is then invalid.
#[no_mangle]
pub unsafe extern "C" fn sonoran_poll(c: *mut sonoran_client, max: u32) -> u32 {
    guard(0, || {
        let h = arg_handle(c)?;
        let ran = h.client.poll(max as usize, |_| {}).min(u32::MAX as usize) as u32;
        // A callback freed the client: the free runs now (the handle is still alive until then).
        if h.life.state.load(Ordering::Acquire) == FREE_DEFERRED {
            let life = h.life.clone();
            run_deferred_free(&life);
        }
        Ok(ran)
    })
}

/// Accepted requests whose callback has not run yet (in flight, or ready for `sonoran_poll`).
#[no_mangle]
pub unsafe extern "C" fn sonoran_pending(c: *const sonoran_client) -> u32 {
    guard(0, || Ok(arg_client(c)?.pending().min(u32::MAX as usize) as u32))
}

/// Cancel a request: 1 when it was pending (its callback will report `CANCELLED`, on the next
/// `sonoran_poll` or on the delivery thread), 0 when the id is unknown or already complete.
#[no_mangle]
pub unsafe extern "C" fn sonoran_cancel(c: *mut sonoran_client, request_id: u64) -> i32 {
    guard(0, || Ok(i32::from(arg_client(c)?.cancel(request_id))))
}

/// The client's counters as JSON, in a new string the caller frees with `sonoran_string_free`:
/// `{"pending", "queued", "waiting_for_limiter", "in_flight", "submitted", "completed": {"OK": n,
/// "<CODE>": n}, "api_calls", "retries", "rate_limited_429", "coalesced", "limiter_wait_ms",
/// "latency_ms": {"count","p50","p90","p99","max"}, "request_latency_ms": {...},
/// "disabled": {"*"|"<TYPE>": {"cause","remaining_ms"}}, "paused": {"<TYPE>": ms}}`.
/// NULL when refused (reason in `sonoran_last_error()`).
#[no_mangle]
pub unsafe extern "C" fn sonoran_stats(c: *const sonoran_client) -> *mut c_char {
    guard(std::ptr::null_mut(), || {
        let client = arg_client(c)?;
        let json =
            CString::new(client.stats().to_value().to_string()).map_err(|_| Refusal::new("stats: NUL in output"))?;
        Ok(json.into_raw())
    })
}

/// Install the log callback (NULL removes it). Once this returns, the previous callback is not
/// running and is never called again, so its `user_data` may be released. Returns 1, or 0 when
/// refused.
#[no_mangle]
pub unsafe extern "C" fn sonoran_set_log_callback(
    c: *mut sonoran_client,
    cb: sonoran_log_callback,
    user_data: *mut c_void,
) -> i32 {
    guard(0, || {
        let client = arg_client(c)?;
        let hook = cb.map(|cb| {
            let logger = CLogger { cb, user_data };
            Box::new(move |level: Level, message: &str| logger.call(level, message)) as LogHook
        });
        client.set_log_hook(hook);
        Ok(1)
    })
}

/// Lift at once every stop put on sending by a fatal configuration answer (`API_DISABLED`) and
/// every 429 pause. Returns 1, or 0 when refused.
#[no_mangle]
pub unsafe extern "C" fn sonoran_resume(c: *mut sonoran_client) -> i32 {
    guard(0, || {
        arg_client(c)?.resume();
        Ok(1)
    })
}

/// Free a string returned by this library (`sonoran_parse_session`, `sonoran_stats`). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sonoran_string_free(s: *mut c_char) {
    guard((), || {
        if !s.is_null() {
            drop(CString::from_raw(s));
        }
        Ok(())
    })
}

/// The reason this thread's last call was refused, or NULL when it succeeded. The text stays
/// valid until the next `sonoran_*` call on this thread. Never contains the API key.
#[no_mangle]
pub extern "C" fn sonoran_last_error() -> *const c_char {
    quiet(std::ptr::null(), boundary::last_error_ptr)
}

/// Which kind of refusal this thread's last call met, to branch on without reading the text:
/// `SONORAN_REFUSED_NONE` (0) when it succeeded, else one of the `SONORAN_REFUSED_*` numbers.
/// Set and cleared together with `sonoran_last_error()`.
#[no_mangle]
pub extern "C" fn sonoran_last_error_code() -> i32 {
    quiet(0, boundary::last_error_code)
}

/// `sonoran_last_error_code()`: the last call succeeded.
pub const SONORAN_REFUSED_NONE: i32 = 0;
/// An argument was refused (a field, JSON, a NULL pointer, a size cap); the text names it.
pub const SONORAN_REFUSED_INVALID_ARGUMENT: i32 = 1;
/// The configuration was refused (`sonoran_client_new`); the text names the key.
pub const SONORAN_REFUSED_INVALID_CONFIG: i32 = 2;
/// The call exists on the other API only (`api_version` decides).
pub const SONORAN_REFUSED_WRONG_API: i32 = 3;
/// `max_pending` requests are pending: poll, then try again.
pub const SONORAN_REFUSED_QUEUE_FULL: i32 = 4;
/// The client is closed (freed from inside its own callback).
pub const SONORAN_REFUSED_CLOSED: i32 = 5;
/// The system refused a resource the library needs (a thread, the runtime, the HTTP client).
pub const SONORAN_REFUSED_SYSTEM: i32 = 6;
/// The library caught a panic (a bug; please report it).
pub const SONORAN_REFUSED_INTERNAL: i32 = 7;

/// The library version, e.g. "0.2.0". A static string; do not free it.
#[no_mangle]
pub extern "C" fn sonoran_version() -> *const c_char {
    quiet(std::ptr::null(), || VERSION.as_ptr())
}

/// The library version as a C string.
static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(v) => v,
    Err(_) => panic!("version is NUL-terminated"),
};
