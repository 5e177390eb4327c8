//! JSON values to Lua values (results, stats, a parsed capture), pushed with the raw Lua API,
//! one converter for everything that goes back to Lua.
//!
//! Objects and arrays become tables (an empty one carries the `__jsontype` metatable, so it
//! converts back to the same JSON); integers become integers (Lua 5.1 and LuaJIT: numbers,
//! exact up to 2^53); `null` is left out of objects (the key reads as nil) and is
//! `sonoran.null` inside arrays, so an array keeps its length.

use mlua::{ffi, Lua, Value as LuaValue};
use serde_json::Value;
use std::ffi::{c_char, c_int, CStr};

/// Registry names of the two marker metatables (see `convert::install_markers`).
const ARRAY_MT_C: &CStr = c"sonoran.array_mt";
const OBJECT_MT_C: &CStr = c"sonoran.object_mt";

/// Convert JSON to a Lua value (see the module documentation for the rules), with the one
/// converter the result tables use too ([`push_json`]).
pub(crate) fn to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    // SAFETY: on the state's own thread, inside exec_raw's protected call; push_json owns
    // nothing that a memory error unwinding through it could leak.
    unsafe { lua.exec_raw::<LuaValue>((), |state| push_json(state, value)) }
}

/// Push a completion's result table onto the stack, built straight from its parts (no JSON
/// envelope is made first). Same shape as `to_lua(lua, &completion.to_value())`: `id`, `type`,
/// `ok`, `status`, then `data` (left out when it is null) or `error = { code, message }`,
/// `retry_after_ms` and `disabled_by` when present.
///
/// # Safety
/// Raw Lua API: call only on the state's own thread, inside a protected call
/// ([`Lua::exec_raw`]); a memory error unwinds through these frames, which own nothing.
pub(crate) unsafe fn push_completion(state: *mut ffi::lua_State, c: &crate::Completion) {
    ffi::luaL_checkstack(state, 6, c"sonoran: result too deeply nested".as_ptr());
    match &c.outcome {
        Ok(s) => {
            ffi::lua_createtable(state, 0, 5);
            push_header(state, c, true, s.status);
            if !s.data.is_null() {
                push_str(state, "data");
                push_json(state, &s.data);
                ffi::lua_rawset(state, -3);
            }
            push_trace_id(state, s.trace_id.as_deref());
        }
        Err(f) => {
            ffi::lua_createtable(state, 0, 7);
            push_header(state, c, false, f.status);
            push_str(state, "error");
            ffi::lua_createtable(state, 0, 2);
            push_str(state, "code");
            push_str(state, f.code.as_str());
            ffi::lua_rawset(state, -3);
            push_str(state, "message");
            push_str(state, &f.message);
            ffi::lua_rawset(state, -3);
            ffi::lua_rawset(state, -3);
            if let Some(ms) = f.retry_after_ms {
                push_str(state, "retry_after_ms");
                push_u64(state, ms);
                ffi::lua_rawset(state, -3);
            }
            if let Some(code) = f.disabled_by {
                push_str(state, "disabled_by");
                push_str(state, code.as_str());
                ffi::lua_rawset(state, -3);
            }
            push_trace_id(state, f.trace_id.as_deref());
        }
    }
}

/// `trace_id` into the table on top, when the server sent one.
unsafe fn push_trace_id(state: *mut ffi::lua_State, trace_id: Option<&str>) {
    if let Some(t) = trace_id {
        push_str(state, "trace_id");
        push_str(state, t);
        ffi::lua_rawset(state, -3);
    }
}

/// `id`, `type`, `ok` and `status` into the table on top.
unsafe fn push_header(state: *mut ffi::lua_State, c: &crate::Completion, ok: bool, status: u16) {
    push_str(state, "id");
    push_u64(state, c.id);
    ffi::lua_rawset(state, -3);
    push_str(state, "type");
    push_str(state, &c.request_type);
    ffi::lua_rawset(state, -3);
    push_str(state, "ok");
    ffi::lua_pushboolean(state, ok as c_int);
    ffi::lua_rawset(state, -3);
    push_str(state, "status");
    ffi::lua_pushinteger(state, status as ffi::lua_Integer);
    ffi::lua_rawset(state, -3);
}

unsafe fn push_str(state: *mut ffi::lua_State, s: &str) {
    ffi::lua_pushlstring(state, s.as_ptr() as *const c_char, s.len());
}

/// A JSON unsigned number: an integer when it fits, as `to_lua` does.
unsafe fn push_u64(state: *mut ffi::lua_State, n: u64) {
    match i64::try_from(n) {
        Ok(i) => push_i64(state, i),
        Err(_) => ffi::lua_pushnumber(state, n as f64),
    }
}

unsafe fn push_i64(state: *mut ffi::lua_State, i: i64) {
    // Lua 5.1 / LuaJIT: lua_Integer is the pointer-sized integer; mlua pushes an Integer the
    // same way.
    ffi::lua_pushinteger(state, i as ffi::lua_Integer);
}

/// Set the marker metatable named `name` (a registry key) on the table on top.
unsafe fn set_marker(state: *mut ffi::lua_State, name: &CStr) {
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, name.as_ptr());
    ffi::lua_setmetatable(state, -2);
}

/// Push a JSON value with the raw API (see [`push_completion`]).
unsafe fn push_json(state: *mut ffi::lua_State, value: &Value) {
    match value {
        Value::Null => ffi::lua_pushlightuserdata(state, std::ptr::null_mut()),
        Value::Bool(b) => ffi::lua_pushboolean(state, *b as c_int),
        Value::Number(n) => match n.as_i64() {
            Some(i) => push_i64(state, i),
            None => ffi::lua_pushnumber(state, n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => push_str(state, s),
        Value::Array(items) => {
            ffi::luaL_checkstack(state, 4, c"sonoran: result too deeply nested".as_ptr());
            ffi::lua_createtable(state, c_int::try_from(items.len()).unwrap_or(0), 0);
            if items.is_empty() {
                set_marker(state, ARRAY_MT_C);
            }
            for (i, item) in items.iter().enumerate() {
                push_json(state, item);
                ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
            }
        }
        Value::Object(fields) => {
            ffi::luaL_checkstack(state, 4, c"sonoran: result too deeply nested".as_ptr());
            ffi::lua_createtable(state, 0, c_int::try_from(fields.len()).unwrap_or(0));
            if fields.is_empty() {
                set_marker(state, OBJECT_MT_C);
            }
            for (k, v) in fields {
                if !v.is_null() {
                    push_str(state, k);
                    push_json(state, v);
                    ffi::lua_rawset(state, -3);
                }
            }
        }
    }
}
