//! The Lua module: `require("sonoran")` in the interpreter this build targets (feature `lua54`,
//! `luajit` or `lua51`; mlua in module mode, nothing of Lua linked in).
//!
//! A thin translator over the core: `client.rs` is the userdata (core client + registry-held
//! callbacks), `convert.rs` Lua to JSON, `push.rs` JSON to Lua, `poll.rs` the poll fast path
//! and the freer thread, and `sonoran.lua` the Lua face (methods that raise errors at the
//! caller's line, the protected callback runner, `await`). `gmod.rs` (feature `gmod`, a LuaJIT
//! build) adds Garry's Mod's binary-module entry points.

mod client;
mod convert;
#[cfg(feature = "gmod")]
mod gmod;
mod poll;
mod push;

use mlua::{ffi, Function, Lua, Table, Value as LuaValue};
use std::ffi::{c_int, CStr, CString};

/// The Lua face, run once per `require` with the native pieces as its argument.
const FACE: &str = include_str!("sonoran.lua");

#[cfg(feature = "lua54")]
const BUILT_FOR: (&str, &str) = ("Lua 5.4", "lua54");
#[cfg(feature = "luajit")]
const BUILT_FOR: (&str, &str) = ("LuaJIT", "luajit");
#[cfg(feature = "lua51")]
const BUILT_FOR: (&str, &str) = ("Lua 5.1", "lua51");

/// Which interpreter is running this state: a display name and its ABI name, read with the few
/// API functions every supported ABI shares (the check must work in the wrong interpreter).
/// `lua/sonoran_loader.lua` makes the same decision in Lua, before any build is loaded: it
/// cannot ask a module it has not loaded yet, and this check cannot run Lua code in an
/// interpreter whose ABI it was not built for, so the rule is written once on each side.
unsafe fn running_interpreter(state: *mut ffi::lua_State) -> (String, Option<&'static str>) {
    let top = ffi::lua_gettop(state);
    let text = |idx: c_int| -> Option<String> {
        if ffi::lua_type(state, idx) != ffi::LUA_TSTRING {
            return None;
        }
        let p = ffi::lua_tolstring(state, idx, std::ptr::null_mut());
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    ffi::lua_getglobal(state, c"_VERSION".as_ptr());
    let version = text(-1).unwrap_or_else(|| "an unknown Lua".to_string());
    ffi::lua_getglobal(state, c"jit".as_ptr());
    let found = if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
        ffi::lua_getfield(state, -1, c"version".as_ptr());
        (text(-1).unwrap_or_else(|| "LuaJIT".to_string()), Some("luajit"))
    } else {
        let abi = match version.as_str() {
            "Lua 5.4" => Some("lua54"),
            "Lua 5.1" => Some("lua51"),
            _ => None,
        };
        (version, abi)
    };
    ffi::lua_settop(state, top);
    found
}

/// The entry point `require("sonoran")` calls. Refuses, with a Lua error, to run in an
/// interpreter other than the one this build is for.
#[no_mangle]
pub unsafe extern "C-unwind" fn luaopen_sonoran(state: *mut ffi::lua_State) -> c_int {
    refuse_other_interpreters(state);
    Lua::entrypoint1(state, module)
}

/// Raise a Lua error naming both interpreters when `state` is not one this build is for; return
/// when it is. Every entry point calls it before anything else touches the state.
unsafe fn refuse_other_interpreters(state: *mut ffi::lua_State) {
    let refused = {
        let (running, abi) = running_interpreter(state);
        if abi == Some(BUILT_FOR.1) {
            false
        } else {
            let hint = match abi {
                Some(abi) => format!("use dist/{abi}/sonoran.so"),
                None => "supported interpreters: Lua 5.4, LuaJIT, Lua 5.1".to_string(),
            };
            let message =
                format!("sonoran: this module was built for {} but was loaded by {running}; {hint}", BUILT_FOR.0);
            let message = CString::new(message).unwrap_or_default();
            ffi::lua_pushstring(state, message.as_ptr());
            true
        }
    };
    if refused {
        // Nothing owned is alive here: lua_error does not return.
        ffi::lua_error(state);
    }
}

/// `sonoran.parse_session(text_or_table)`: the capture table, or `nil, message`.
fn parse_session(lua: &Lua, capture: LuaValue) -> mlua::Result<(LuaValue, Option<String>)> {
    let parsed = convert::to_json(lua, &capture, "capture", convert::FLOW_BUDGET)
        .and_then(|v| crate::flows::session::parse_session_value(&v));
    match parsed {
        Ok(c) => Ok((push::to_lua(lua, &c.to_value())?, None)),
        Err(e) => Ok((LuaValue::Nil, Some(e.message().to_string()))),
    }
}

fn module(lua: &Lua) -> mlua::Result<LuaValue> {
    let (array_mt, object_mt) = convert::install_markers(lua)?;
    let native: Table = lua.create_table()?;
    native.set("new", lua.create_function(client::new)?)?;
    native.set("parse_session", lua.create_function(parse_session)?)?;
    native.set("version", crate::VERSION)?;
    native.set("abi", BUILT_FOR.1)?;
    native.set("null", LuaValue::NULL)?;
    native.set("array_mt", array_mt)?;
    native.set("object_mt", object_mt)?;
    let codes = lua.create_table()?;
    for (i, code) in crate::ErrorCode::ALL.iter().enumerate() {
        codes.raw_set(i + 1, code.as_str())?;
    }
    native.set("error_codes", codes)?;
    let face: Function = lua.load(FACE).set_name("=[sonoran]").into_function()?;
    face.call(native)
}
