//! Garry's Mod's binary-module entry points (feature `gmod`, a LuaJIT build).
//!
//! `require("sonoran")` in Garry's Mod loads `garrysmod/lua/bin/gmsv_sonoran_linux64.dll`, calls
//! `gmod13_open(L)` and returns nothing: a binary module sets its globals. `gmod13_close(L)` runs
//! when the server shuts the state down. The module is the one `luaopen_sonoran` opens; this file
//! only adds the two entry points and the per-state list of clients `gmod13_close` closes.
//!
//! Only the Lua 5.1 C API is used here (`lua_cpcall`, `lua_getfield`, ...): Garry's Mod's
//! `lua_shared` exports LuaJIT 2.0's, and `tests/gmod.rs` checks every Lua symbol the build
//! imports against that list.

use super::client::LuaClient;
use mlua::{ffi, AnyUserData, Lua, Table, Value as LuaValue};
use std::ffi::{c_int, CStr};
use std::io::Write;

/// Registry field holding this state's clients: a table whose keys are the client userdata,
/// weak, so that the list never keeps a client alive.
const CLIENTS: &str = "sonoran.gmod_clients";

/// Add a client just created in this state to the list `gmod13_close` closes.
pub(super) fn track(lua: &Lua, client: &AnyUserData) -> mlua::Result<()> {
    let clients = match lua.named_registry_value::<Option<Table>>(CLIENTS)? {
        Some(t) => t,
        None => {
            let t = lua.create_table()?;
            let weak = lua.create_table()?;
            weak.raw_set("__mode", "k")?;
            t.set_metatable(Some(weak))?;
            lua.set_named_registry_value(CLIENTS, &t)?;
            t
        }
    };
    clients.raw_set(client, true)
}

/// `gmod13_open(L)`: open the module and store it in the global `sonoran`; 0 results. Refuses,
/// with a Lua error (raised at the script's `require`), a state that is not LuaJIT.
#[no_mangle]
pub unsafe extern "C-unwind" fn gmod13_open(state: *mut ffi::lua_State) -> c_int {
    super::refuse_other_interpreters(state);
    let top = ffi::lua_gettop(state);
    Lua::entrypoint1(state, |lua| {
        let module = super::module(lua)?;
        lua.globals().set("sonoran", module)?;
        Ok(LuaValue::Nil)
    });
    // The entry point left its (nil) result on the stack: a binary module returns nothing.
    ffi::lua_settop(state, top);
    0
}

/// `gmod13_close(L)`: close every client this state created through the module, as
/// `cad:close()` does (pending requests complete as SHUTDOWN on later polls, the library's
/// threads are joined before it returns). The server calls it outside any protected call, so
/// the work runs under `lua_cpcall`: nothing here raises a Lua error. Returns 0.
#[no_mangle]
pub unsafe extern "C-unwind" fn gmod13_close(state: *mut ffi::lua_State) -> c_int {
    let top = ffi::lua_gettop(state);
    if ffi::lua_cpcall(state, close_clients, std::ptr::null_mut()) != 0 {
        let p = ffi::lua_tolstring(state, -1, std::ptr::null_mut());
        let why = if p.is_null() { "an error".into() } else { CStr::from_ptr(p).to_string_lossy() };
        // A client not closed here still closes when the state does (its __gc). Written, not
        // eprintln!: a failing stderr must not panic into the server.
        let _ = writeln!(std::io::stderr(), "sonoran: gmod13_close could not close the clients: {why}");
    }
    ffi::lua_settop(state, top);
    0
}

/// Run by `gmod13_close` under `lua_cpcall`. A state in which `gmod13_open` never ran (or was
/// refused: the wrong interpreter) has no list, and is left untouched.
unsafe extern "C-unwind" fn close_clients(state: *mut ffi::lua_State) -> c_int {
    // The list, read with the raw API (mlua is not initialised in a refused state): it becomes
    // the only value on the stack, the argument of the closure below.
    ffi::lua_settop(state, 0);
    ffi::lua_pushlstring(state, CLIENTS.as_ptr().cast(), CLIENTS.len());
    ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
    if ffi::lua_type(state, 1) != ffi::LUA_TTABLE {
        return 0;
    }
    Lua::entrypoint(state, |_, clients: Table| {
        let open: Vec<AnyUserData> =
            clients.pairs::<AnyUserData, LuaValue>().filter_map(|p| p.ok()).map(|p| p.0).collect();
        for client in open {
            // A client already collected (or being collected) cannot be borrowed; its __gc closes it.
            if let Ok(c) = client.borrow::<LuaClient>() {
                c.close();
            }
        }
        Ok(LuaValue::Nil)
    })
}
