//! The poll path of the Lua face: the idle fast path `cad:poll()` takes when nothing is ready
//! (one plain C function), the count rule of `poll(max)`, and the thread that frees delivered
//! results off the game thread.

use crate::client::Client;
use crate::response::Completion;
use mlua::{ffi, Function, Lua};
use std::ffi::c_int;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A thread that frees the results `poll()` has delivered, one batch per poll. Freeing a parsed
/// result (a tree of small allocations made by the library's worker threads) on the polling
/// thread made glibc malloc consolidate its fast bins there from time to time, stalling one
/// `poll(max)` for several milliseconds (see BENCHMARKS.md).
pub(super) struct Freer {
    tx: mpsc::Sender<Vec<Completion>>,
    thread: JoinHandle<()>,
}

impl Freer {
    pub(super) fn start() -> Option<Freer> {
        let (tx, rx) = mpsc::channel::<Vec<Completion>>();
        let thread = std::thread::Builder::new()
            .name("sonoran-lua-free".into())
            .spawn(move || {
                for batch in rx {
                    drop(batch);
                }
            })
            .ok()?;
        Some(Freer { tx, thread })
    }

    /// Hand a batch over; given back when the thread is gone.
    pub(super) fn free(&self, batch: Vec<Completion>) -> Result<(), Vec<Completion>> {
        self.tx.send(batch).map_err(|e| e.0)
    }

    /// Stop the thread once it has freed what it was given.
    pub(super) fn stop(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

/// Registry name of the metatable of the client handles held by `idle` functions.
const HANDLE_MT: &std::ffi::CStr = c"sonoran.client_handle";

/// `idle(max)`, the fast path of `cad:poll(max)`: true when `max` is valid (nil or a whole
/// number >= 0) and no result is ready, so that poll would deliver nothing and return 0; false
/// otherwise (the full method then runs, and refuses a bad `max` with its message). A plain C
/// function: no mlua call machinery, no allocation. Its upvalue is a handle (a userdata holding
/// `Option<Arc<Client>>`, emptied by its `__gc`).
pub(super) fn idle_function(lua: &Lua, client: &Arc<Client>) -> mlua::Result<Function> {
    // SAFETY: on the state's own thread; inside exec_raw's protected call. Nothing owned lives in
    // the closure until the handle is written, and nothing after it can fail except
    // lua_pushcclosure, whose failure leaves the handle to its __gc.
    unsafe {
        lua.exec_raw::<Function>((), |state| {
            let handle =
                ffi::lua_newuserdata(state, std::mem::size_of::<Option<Arc<Client>>>()) as *mut Option<Arc<Client>>;
            if ffi::luaL_newmetatable(state, HANDLE_MT.as_ptr()) != 0 {
                ffi::lua_pushcfunction(state, drop_handle);
                ffi::lua_setfield(state, -2, c"__gc".as_ptr());
                ffi::lua_pushboolean(state, 0);
                ffi::lua_setfield(state, -2, c"__metatable".as_ptr());
            }
            ffi::lua_setmetatable(state, -2);
            std::ptr::write(handle, Some(Arc::clone(client)));
            ffi::lua_pushcclosure(state, poll_idle, 1);
        })
    }
}

unsafe extern "C-unwind" fn drop_handle(state: *mut ffi::lua_State) -> c_int {
    let handle = ffi::luaL_checkudata(state, 1, HANDLE_MT.as_ptr()) as *mut Option<Arc<Client>>;
    if !handle.is_null() {
        // take(): a second call finds None.
        drop((*handle).take());
    }
    0
}

unsafe extern "C-unwind" fn poll_idle(state: *mut ffi::lua_State) -> c_int {
    let handle = ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const Option<Arc<Client>>;
    let max_ok = match ffi::lua_type(state, 1) {
        ffi::LUA_TNIL | ffi::LUA_TNONE => true,
        ffi::LUA_TNUMBER => poll_max(ffi::lua_tonumber(state, 1)).is_some(),
        _ => false,
    };
    let idle = max_ok && !handle.is_null() && (*handle).as_ref().is_some_and(|c| c.ready() == 0);
    ffi::lua_pushboolean(state, idle as c_int);
    1
}

/// `poll(max)`'s count: a whole number >= 0 (NaN and infinities are not); the rule of both the
/// `poll` method and its idle fast path.
pub(super) fn poll_max(n: f64) -> Option<usize> {
    (n >= 0.0 && n.fract() == 0.0).then_some(n.min(usize::MAX as f64) as usize)
}
