//! Lua values <-> JSON values, with one set of rules for Lua 5.4, LuaJIT and Lua 5.1.
//!
//! Lua to JSON (requests and the configuration):
//! - `nil` -> `null` (only as a whole argument: a table cannot hold nil); `sonoran.null` (a
//!   NULL light userdata, the same value as mlua's `Value::NULL`) -> `null` anywhere.
//! - booleans and strings as they are; a string must be valid UTF-8.
//! - a number with a whole value in the 64-bit integer range -> a JSON integer (so `2` and
//!   `2.0` are the same, in every interpreter); other finite numbers -> a JSON float; NaN and
//!   infinities are refused.
//! - a table whose keys are exactly `1..n` -> an array; a table whose keys are all strings -> an
//!   object. An empty table is an empty array unless its metatable has `__jsontype = "object"`
//!   (`sonoran.object{}`). Holes (`{1, nil, 3}`), other number keys, keys of other types and
//!   tables mixing both kinds are refused with the path of the table. With `__jsontype =
//!   "object"`, integer keys become their decimal text.
//! - functions, threads and other userdata are refused; nesting deeper than 64 levels (a table
//!   that contains itself) is refused.
//! - the conversion has a byte budget (the request's `max_request_bytes`, or a fixed one for
//!   the configuration and the flows' arguments): it stops as soon as the JSON it builds would
//!   be larger, so a value whose tables share sub-tables (a table reached twice is converted
//!   twice, as its JSON holds it twice) costs at most the budget's worth of work.
//!
//! JSON to Lua (results): objects and arrays become tables (an empty one carries the
//! `__jsontype` metatable so it converts back to the same JSON); integers become integers (Lua
//! 5.1 and LuaJIT: numbers, exact up to 2^53); `null` is left out of objects (the key reads as
//! nil) and is `sonoran.null` inside arrays, so an array keeps its length.
//!
//! Paths in refusals use JSON indexes (0-based), like the core's own refusals.

use crate::error::Refusal;
use mlua::{ffi, Lua, Table, Value as LuaValue};
use serde_json::{Map, Number, Value};
use std::ffi::{c_char, c_int, CStr};

/// Deepest nesting accepted from Lua.
const MAX_DEPTH: usize = 64;

/// Registry names of the two marker metatables.
pub(crate) const ARRAY_MT: &str = "sonoran.array_mt";
pub(crate) const OBJECT_MT: &str = "sonoran.object_mt";
const ARRAY_MT_C: &CStr = c"sonoran.array_mt";
const OBJECT_MT_C: &CStr = c"sonoran.object_mt";

/// Create the marker metatables in this state's registry (once per `require`).
pub(crate) fn install_markers(lua: &Lua) -> mlua::Result<(Table, Table)> {
    let array = lua.create_table()?;
    array.raw_set("__jsontype", "array")?;
    let object = lua.create_table()?;
    object.raw_set("__jsontype", "object")?;
    lua.set_named_registry_value(ARRAY_MT, &array)?;
    lua.set_named_registry_value(OBJECT_MT, &object)?;
    Ok((array, object))
}

/// Budget of the conversions whose size no configuration sets (the configuration itself, a
/// capture, a player's identifiers): 1 MiB of JSON.
pub(crate) const DEFAULT_BUDGET: usize = 1 << 20;

/// How many bytes of JSON a conversion may still produce (an estimate, never below the real
/// size: strings count their bytes plus quotes, numbers 24, punctuation 1).
struct Budget {
    left: usize,
    limit: usize,
    root: String,
}

impl Budget {
    fn spend(&mut self, n: usize) -> Result<(), Refusal> {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(Refusal::field(
                &self.root,
                format!(
                    "is larger than {} bytes once encoded as JSON; nothing was sent (does a table hold the same \
                     sub-table many times?)",
                    self.limit
                ),
            )),
        }
    }
}

/// Convert a Lua value to JSON; `path` names it in refusals (`data`, `config`). Stops with a
/// refusal once the JSON would be larger than `budget` bytes.
pub(crate) fn to_json(value: &LuaValue, path: &str, budget: usize) -> Result<Value, Refusal> {
    let mut budget = Budget { left: budget, limit: budget, root: path.to_string() };
    to_json_at(value, path, 0, &mut budget)
}

fn to_json_at(value: &LuaValue, path: &str, depth: usize, budget: &mut Budget) -> Result<Value, Refusal> {
    budget.spend(match value {
        LuaValue::String(s) => s.as_bytes().len() + 2,
        LuaValue::Table(_) => 2,
        _ => 24,
    })?;
    match value {
        LuaValue::Nil => Ok(Value::Null),
        LuaValue::LightUserData(p) if p.0.is_null() => Ok(Value::Null),
        LuaValue::Boolean(b) => Ok(Value::Bool(*b)),
        LuaValue::Integer(i) => Ok(Value::from(*i)),
        LuaValue::Number(n) => number(*n, path),
        LuaValue::String(s) => match s.to_str() {
            Ok(text) => Ok(Value::String(text.to_string())),
            Err(_) => Err(Refusal::field(path, "is not valid UTF-8 text")),
        },
        LuaValue::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(Refusal::field(
                    path,
                    format!("nested deeper than {MAX_DEPTH} levels (does a table contain itself?)"),
                ));
            }
            table(t, path, depth, budget)
        }
        other => Err(Refusal::field(path, format!("a {} cannot be sent as JSON", other.type_name()))),
    }
}

fn number(n: f64, path: &str) -> Result<Value, Refusal> {
    if !n.is_finite() {
        return Err(Refusal::field(path, "NaN and infinite numbers cannot be sent as JSON"));
    }
    // Whole numbers inside the i64 range become integers (2^63 itself is out of range).
    if n.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        return Ok(Value::from(n as i64));
    }
    Ok(Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null))
}

/// A table key as an integer, when it is a whole number.
fn int_key(k: &LuaValue) -> Option<i64> {
    match k {
        LuaValue::Integer(i) => Some(*i),
        LuaValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(*n as i64),
        _ => None,
    }
}

fn table(t: &Table, path: &str, depth: usize, budget: &mut Budget) -> Result<Value, Refusal> {
    let marked = t.metatable().and_then(|mt| mt.raw_get::<Option<String>>("__jsontype").ok().flatten());
    let as_object = marked.as_deref() == Some("object");
    let mut items: Vec<(i64, LuaValue)> = Vec::new();
    let mut fields: Vec<(String, LuaValue)> = Vec::new();
    for pair in t.pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair.map_err(|e| Refusal::field(path, format!("could not be read ({e})")))?;
        // A comma, and for an object its key, a colon and quotes.
        budget.spend(match &k {
            LuaValue::String(s) => s.as_bytes().len() + 4,
            _ => 1,
        })?;
        match &k {
            LuaValue::String(s) => match s.to_str() {
                Ok(name) => fields.push((name.to_string(), v)),
                Err(_) => return Err(Refusal::field(path, "has a key that is not valid UTF-8 text")),
            },
            other => match int_key(other) {
                Some(i) if as_object => fields.push((i.to_string(), v)),
                Some(i) => items.push((i, v)),
                None => {
                    let shown = match other {
                        LuaValue::Number(n) => format!("the number {n}"),
                        o => format!("a {}", o.type_name()),
                    };
                    return Err(Refusal::field(
                        path,
                        format!("has a key that is {shown}: JSON objects need string keys, arrays the keys 1..n"),
                    ));
                }
            },
        }
    }
    if !items.is_empty() && !fields.is_empty() {
        return Err(Refusal::field(
            path,
            format!(
                "mixes array items (1, 2, ...) with named keys ('{}'): use one or the other",
                crate::config::printable(&fields[0].0)
            ),
        ));
    }
    if !fields.is_empty() || (items.is_empty() && as_object) {
        let mut obj = Map::new();
        for (name, v) in fields {
            let child = format!("{path}.{}", crate::config::printable(&name));
            let j = to_json_at(&v, &child, depth + 1, budget)?;
            obj.insert(name, j);
        }
        return Ok(Value::Object(obj));
    }
    items.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(items.len());
    for (pos, (i, v)) in items.iter().enumerate() {
        let expected = pos as i64 + 1;
        if *i != expected {
            let problem = if *i < 1 {
                format!("has the key {i}: arrays are indexed from 1")
            } else {
                format!(
                    "has a hole: Lua index {i} follows {} (a nil in an array cannot be sent; use sonoran.null for a JSON null)",
                    expected - 1
                )
            };
            return Err(Refusal::field(path, problem));
        }
        out.push(to_json_at(v, &format!("{path}[{pos}]"), depth + 1, budget)?);
    }
    Ok(Value::Array(out))
}

/// Convert JSON to a Lua value (see the module documentation for the rules).
pub(crate) fn to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    Ok(match value {
        Value::Null => LuaValue::NULL,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i as mlua::Integer),
            None => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            if items.is_empty() {
                t.set_metatable(Some(lua.named_registry_value::<Table>(ARRAY_MT)?));
            }
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Object(fields) => {
            let t = lua.create_table_with_capacity(0, fields.len())?;
            if fields.is_empty() {
                t.set_metatable(Some(lua.named_registry_value::<Table>(OBJECT_MT)?));
            }
            for (k, v) in fields {
                if !v.is_null() {
                    t.raw_set(k.as_str(), to_lua(lua, v)?)?;
                }
            }
            LuaValue::Table(t)
        }
    })
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
        }
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

/// Push a JSON value as `to_lua` converts it, with the raw API (see [`push_completion`]).
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
