//! Lua values to JSON values (requests and the configuration), with one set of rules for Lua
//! 5.4, LuaJIT and Lua 5.1; the way back is in `push.rs`.
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
//!   the configuration and the flows' arguments): a value whose JSON would be larger is
//!   refused. A table reached twice is sent twice (its JSON holds it twice), so a value whose
//!   tables share sub-tables can encode to gigabytes; a first walk that only counts bytes, with
//!   the raw API and no allocation, finds that out at a small cost per byte of the budget.
//!
//! Paths in refusals use JSON indexes (0-based), like the core's own refusals.

use crate::error::Refusal;
use mlua::{ffi, Lua, Table, Value as LuaValue};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted from Lua.
const MAX_DEPTH: usize = 64;

/// Registry names of the two marker metatables.
pub(crate) const ARRAY_MT: &str = "sonoran.array_mt";
pub(crate) const OBJECT_MT: &str = "sonoran.object_mt";

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

/// Budget of the configuration's conversion (done once, when a client is made): 1 MiB of JSON.
pub(crate) const CONFIG_BUDGET: usize = 1 << 20;
/// Budget of a flow's arguments (a capture, a player's identifiers), far above any real one
/// (a capture is at most 4 KiB): 64 KiB of JSON.
pub(crate) const FLOW_BUDGET: usize = 64 << 10;

/// Where a value sits in what is being converted (`data.apiIds[1]`), rendered only for a
/// refusal: building the text for every value would cost more than the conversion.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root(name) => name.to_string(),
            Path::Key(parent, key) => format!("{}.{}", parent.render(), crate::text::printable(key)),
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }

    fn refuse(&self, problem: impl std::fmt::Display) -> Refusal {
        Refusal::field(self.render(), problem)
    }
}

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
///
/// A value whose tables share sub-tables is found out by a first walk that only counts bytes
/// (the raw API, no allocation), so refusing it costs a fraction of converting the same size.
pub(crate) fn to_json(lua: &Lua, value: &LuaValue, path: &str, budget: usize) -> Result<Value, Refusal> {
    let mut budget = Budget { left: budget, limit: budget, root: path.to_string() };
    if matches!(value, LuaValue::Table(_)) && !fits(lua, value, budget.limit) {
        return Err(budget.spend(usize::MAX).expect_err("nothing fits usize::MAX bytes"));
    }
    to_json_at(value, &Path::Root(path), 0, &mut budget)
}

/// Whether `value` encodes to at most `budget` bytes by the [`Budget`] estimate. Values the
/// converter refuses for other reasons (nesting, types, keys) count as they come: the converter
/// then says what is wrong with them.
fn fits(lua: &Lua, value: &LuaValue, budget: usize) -> bool {
    /// Spend the estimate of the value on top of the stack (its table walked with lua_next);
    /// false once over. Calls only functions that neither allocate nor raise: this frame and
    /// its callers own nothing a Lua error could skip.
    unsafe fn walk(state: *mut ffi::lua_State, depth: usize, left: &mut usize) -> bool {
        let cost = match ffi::lua_type(state, -1) {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                ffi::lua_tolstring(state, -1, &mut len);
                len + 2
            }
            ffi::LUA_TTABLE => 2,
            _ => 24,
        };
        let Some(l) = left.checked_sub(cost) else { return false };
        *left = l;
        if ffi::lua_type(state, -1) != ffi::LUA_TTABLE || depth >= MAX_DEPTH || ffi::lua_checkstack(state, 3) == 0 {
            return true;
        }
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, -2) != 0 {
            let key = if ffi::lua_type(state, -2) == ffi::LUA_TSTRING {
                let mut len = 0usize;
                ffi::lua_tolstring(state, -2, &mut len);
                len + 4
            } else {
                1
            };
            let within = match left.checked_sub(key) {
                Some(l) => {
                    *left = l;
                    walk(state, depth + 1, left)
                }
                None => false,
            };
            ffi::lua_settop(state, -2);
            if !within {
                ffi::lua_settop(state, -2);
                return false;
            }
        }
        true
    }
    let mut left = budget;
    let mut within = true;
    // SAFETY: on the state's own thread; `walk` leaves the stack as it found it.
    let ran = unsafe {
        lua.exec_raw::<()>(value, |state| {
            within = walk(state, 0, &mut left);
        })
    };
    // Could not even look (out of memory): let the converter meet whatever it meets.
    ran.is_err() || within
}

fn to_json_at(value: &LuaValue, path: &Path<'_>, depth: usize, budget: &mut Budget) -> Result<Value, Refusal> {
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
            Err(_) => Err(path.refuse("is not valid UTF-8 text")),
        },
        LuaValue::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(
                    path.refuse(format!("nested deeper than {MAX_DEPTH} levels (does a table contain itself?)"))
                );
            }
            table(t, path, depth, budget)
        }
        other => Err(path.refuse(format!("a {} cannot be sent as JSON", other.type_name()))),
    }
}

fn number(n: f64, path: &Path<'_>) -> Result<Value, Refusal> {
    if !n.is_finite() {
        return Err(path.refuse("NaN and infinite numbers cannot be sent as JSON"));
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

fn table(t: &Table, path: &Path<'_>, depth: usize, budget: &mut Budget) -> Result<Value, Refusal> {
    let marked = t.metatable().and_then(|mt| mt.raw_get::<Option<String>>("__jsontype").ok().flatten());
    let as_object = marked.as_deref() == Some("object");
    let mut items: Vec<(i64, LuaValue)> = Vec::new();
    let mut fields: Vec<(String, LuaValue)> = Vec::new();
    let mut refused: Option<Refusal> = None;
    let walked = t.for_each::<LuaValue, LuaValue>(|k, v| {
        match visit(k, v, path, as_object, budget, &mut items, &mut fields) {
            Ok(()) => Ok(()),
            Err(r) => {
                refused = Some(r);
                // Stops the walk; the refusal above is what is reported.
                Err(mlua::Error::runtime("refused"))
            }
        }
    });
    if let Some(r) = refused {
        return Err(r);
    }
    walked.map_err(|e| path.refuse(format!("could not be read ({e})")))?;
    finish(path, depth, budget, as_object, items, fields)
}

/// One key and value of a table, sorted into array items or object fields.
fn visit(
    k: LuaValue,
    v: LuaValue,
    path: &Path<'_>,
    as_object: bool,
    budget: &mut Budget,
    items: &mut Vec<(i64, LuaValue)>,
    fields: &mut Vec<(String, LuaValue)>,
) -> Result<(), Refusal> {
    {
        // A comma, and for an object its key, a colon and quotes.
        budget.spend(match &k {
            LuaValue::String(s) => s.as_bytes().len() + 4,
            _ => 1,
        })?;
        match &k {
            LuaValue::String(s) => match s.to_str() {
                Ok(name) => fields.push((name.to_string(), v)),
                Err(_) => return Err(path.refuse("has a key that is not valid UTF-8 text")),
            },
            other => match int_key(other) {
                Some(i) if as_object => fields.push((i.to_string(), v)),
                Some(i) => items.push((i, v)),
                None => {
                    let shown = match other {
                        LuaValue::Number(n) => format!("the number {n}"),
                        o => format!("a {}", o.type_name()),
                    };
                    return Err(path.refuse(format!(
                        "has a key that is {shown}: JSON objects need string keys, arrays the keys 1..n"
                    )));
                }
            },
        }
    }
    Ok(())
}

/// The table's JSON from its sorted keys: an object, or an array without holes.
fn finish(
    path: &Path<'_>,
    depth: usize,
    budget: &mut Budget,
    as_object: bool,
    mut items: Vec<(i64, LuaValue)>,
    fields: Vec<(String, LuaValue)>,
) -> Result<Value, Refusal> {
    if !items.is_empty() && !fields.is_empty() {
        return Err(path.refuse(format!(
            "mixes array items (1, 2, ...) with named keys ('{}'): use one or the other",
            crate::text::printable(&fields[0].0)
        )));
    }
    if !fields.is_empty() || (items.is_empty() && as_object) {
        let mut obj = Map::new();
        for (name, v) in fields {
            let j = to_json_at(&v, &Path::Key(path, &name), depth + 1, budget)?;
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
            return Err(path.refuse(problem));
        }
        out.push(to_json_at(v, &Path::Index(path, pos), depth + 1, budget)?);
    }
    Ok(Value::Array(out))
}
