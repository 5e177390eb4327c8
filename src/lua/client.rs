//! The client userdata: a core [`Client`] in `poll` delivery plus the Lua callbacks of its
//! pending requests, held in this state's registry and keyed by request id.
//!
//! Every method answers `value` or `nil, message`; the Lua face (`sonoran.lua`) turns a message
//! into a Lua error at the caller's line. Lua is only touched inside these methods, which run on
//! the thread that owns the state.

use super::poll::{idle_function, poll_max, Freer};
use super::{convert, push};
use crate::client::Client;
use crate::config::Config;
use crate::error::{Refusal, RefusalKind};
use crate::flows::linking::PlayerIds;
use crate::flows::session::parse_session_value;
use crate::request::{ApiVersion, Call, Kind};
use crate::text::printable;
use mlua::{ffi, Function, IntoLua, Lua, MultiValue, RegistryKey, UserData, UserDataMethods, Value as LuaValue};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct LuaClient {
    /// Shared with the `idle` function of the Lua face (see [`idle_function`]).
    client: Arc<Client>,
    /// Requests whose result has not been delivered by `poll()` yet, with their callback
    /// (None: no callback, result dropped unless `attach` gives one).
    callbacks: RefCell<HashMap<u64, Option<RegistryKey>>>,
    /// Frees delivered results off the polling thread while the client is open (None after
    /// close, or when its thread could not start: results are then freed inline).
    freer: RefCell<Option<Freer>>,
}

/// `value` or `nil, message, code` (the refusal's kind: `"QUEUE_FULL"`, ...).
fn answer<T: IntoLua>(lua: &Lua, r: Result<T, Refusal>) -> mlua::Result<MultiValue> {
    match r {
        Ok(v) => Ok(MultiValue::from_iter([v.into_lua(lua)?])),
        Err(refusal) => Ok(MultiValue::from_iter([
            LuaValue::Nil,
            refusal.message().into_lua(lua)?,
            refusal.kind().as_str().into_lua(lua)?,
        ])),
    }
}

fn request_id(v: &LuaValue) -> Result<u64, Refusal> {
    let id = match v {
        LuaValue::Integer(i) => u64::try_from(*i).ok(),
        LuaValue::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n < 9.0e15 => Some(*n as u64),
        _ => None,
    };
    id.filter(|id| *id > 0).ok_or_else(|| {
        Refusal::field("id", format!("expected a request id (a positive integer), got a {}", v.type_name()))
    })
}

/// `sonoran.new(config)`: the configuration table, validated by the core. Lua always gets
/// `poll` delivery: a Lua state must never be touched off its own thread.
pub(crate) fn new(lua: &Lua, config: LuaValue) -> mlua::Result<MultiValue> {
    let r = (|| {
        let mut value = convert::to_json(lua, &config, "config", convert::CONFIG_BUDGET)?;
        if let Value::Object(obj) = &mut value {
            match obj.get("delivery") {
                None => {
                    obj.insert("delivery".into(), Value::from("poll"));
                }
                Some(Value::String(s)) if s == "thread" => {
                    return Err(Refusal::field(
                        "config.delivery",
                        "\"thread\" is not available from Lua: callbacks run on the script's own thread, inside \
                         cad:poll() (leave delivery out, or set it to \"poll\")",
                    ))
                }
                Some(_) => {}
            }
        }
        let config = Config::from_value(&value)?;
        Ok(LuaClient {
            client: Arc::new(Client::new(config)?),
            callbacks: RefCell::new(HashMap::new()),
            freer: RefCell::new(Freer::start()),
        })
    })();
    match r {
        Ok(c) => {
            let idle = idle_function(lua, &c.client)?;
            let client = lua.create_userdata(c)?;
            #[cfg(feature = "gmod")]
            super::gmod::track(lua, &client)?;
            Ok(MultiValue::from_iter([LuaValue::UserData(client), LuaValue::Function(idle)]))
        }
        Err(e) => answer::<bool>(lua, Err(e)),
    }
}

impl LuaClient {
    /// Queue a call or a flow with its callback (`cb`: a function or nil) held in the registry,
    /// and answer the id or `nil, message`.
    fn submit_op(
        &self,
        lua: &Lua,
        cb: LuaValue,
        op: impl FnOnce(&Client) -> Result<u64, Refusal>,
    ) -> mlua::Result<MultiValue> {
        let cb = match cb {
            LuaValue::Nil => None,
            LuaValue::Function(f) => Some(f),
            other => {
                let e = format!("expected a function or nil, got a {}", other.type_name());
                return answer::<bool>(lua, Err(Refusal::field("callback", e)));
            }
        };
        // Hold the callback before submitting, so an accepted request always has it.
        let key = cb.map(|f| lua.create_registry_value(f)).transpose()?;
        match op(&self.client) {
            Ok(id) => {
                self.callbacks.borrow_mut().insert(id, key);
                answer(lua, Ok(id))
            }
            Err(e) => {
                if let Some(k) = key {
                    lua.remove_registry_value(k)?;
                }
                answer::<bool>(lua, Err(e))
            }
        }
    }

    /// The conversion budget of a request's data: the request size cap.
    fn budget(&self) -> usize {
        self.client.config().max_request_bytes
    }

    /// Deliver one completion: hand its callback and the result table to `deliver` (the Lua
    /// face's protected runner), then release the callback. When the call itself fails (the
    /// C stack is exhausted, memory is out), the callback stays held for the next attempt.
    fn deliver(&self, lua: &Lua, deliver: &Function, completion: &crate::Completion) -> mlua::Result<()> {
        let slot = self.callbacks.borrow().get(&completion.id).and_then(|k| k.as_ref().map(RegistryKey::id));
        let Some(slot) = slot else {
            // No callback (or an unknown id): nothing to run; the entry goes.
            self.callbacks.borrow_mut().remove(&completion.id);
            return Ok(());
        };
        // One protected call per result: push the callback and the result table with the raw API
        // (no per-value protected calls or references), then call the runner. Nothing owned
        // lives in the closure: a memory error unwinding through it leaks nothing.
        // SAFETY: on the state's own thread (inside poll); the stack is ours within exec_raw.
        unsafe {
            lua.exec_raw::<()>(deliver, |state| {
                ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, slot as ffi::lua_Integer);
                push::push_completion(state, completion);
                ffi::lua_call(state, 2, 0);
            })
        }?;
        if let Some(Some(key)) = self.callbacks.borrow_mut().remove(&completion.id) {
            lua.remove_registry_value(key)?;
        }
        Ok(())
    }
}

impl LuaClient {
    /// `cad:close()`: stop accepting requests, complete the pending ones as SHUTDOWN (their
    /// callbacks run on later polls) and join the library's threads. Idempotent.
    pub(super) fn close(&self) {
        self.client.close();
        let freer = self.freer.borrow_mut().take();
        if let Some(f) = freer {
            f.stop();
        }
    }

    /// Free a poll's delivered results: on the freer thread while there is one, else here.
    fn free(&self, batch: Vec<crate::Completion>) {
        if batch.is_empty() {
            return;
        }
        let rest = match self.freer.borrow().as_ref() {
            Some(f) => f.free(batch).err(),
            None => Some(batch),
        };
        drop(rest);
    }
}

impl UserData for LuaClient {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("submit", |lua, this, (kind, data, cb): (String, LuaValue, LuaValue)| {
            this.submit_op(lua, cb, |client| {
                let data = convert::to_json(lua, &data, "data", this.budget())?;
                let kind = match kind.as_str() {
                    "set_api_id" => Kind::SetApiId,
                    "link_character" => Kind::LinkCharacter,
                    "modify_identifier" => Kind::ModifyIdentifier,
                    "set_account_permissions" => Kind::SetAccountPermissions,
                    "get_account" => Kind::GetAccount,
                    "check_api_id" => Kind::CheckApiId,
                    other => return Err(Refusal::new(format!("no typed call named '{}'", printable(other)))),
                };
                client.submit(Call::for_api(client.config().api_version, kind, data)?, None)
            })
        });

        methods.add_method("request", |lua, this, (ty, data, cb): (LuaValue, LuaValue, LuaValue)| {
            this.submit_op(lua, cb, |client| {
                if client.config().api_version == ApiVersion::V2 {
                    return Err(Refusal::of(
                        RefusalKind::WrongApi,
                        "request sends a legacy API type; with api_version = \"v2\" use cad:request_v2(method, path, \
                         body, callback)",
                    ));
                }
                let ty = match &ty {
                    LuaValue::String(s) => s.to_str().map_err(|_| Refusal::field("type", "is not valid UTF-8 text"))?,
                    other => {
                        return Err(Refusal::field(
                            "type",
                            format!("expected an API type name like \"UNIT_STATUS\", got a {}", other.type_name()),
                        ))
                    }
                };
                let data = convert::to_json(lua, &data, "data", this.budget())?;
                client.submit(Call::generic(&ty, data)?, None)
            })
        });

        methods.add_method(
            "request_v2",
            |lua, this, (method, path, body, cb): (LuaValue, LuaValue, LuaValue, LuaValue)| {
                this.submit_op(lua, cb, |client| {
                    if client.config().api_version != ApiVersion::V2 {
                        return Err(Refusal::of(
                            RefusalKind::WrongApi,
                            "request_v2 needs api_version = \"v2\"; the legacy API takes cad:request(type, data, \
                             callback)",
                        ));
                    }
                    let text = |v: &LuaValue, name: &str| match v {
                        LuaValue::String(s) => s
                            .to_str()
                            .map(|s| s.to_string())
                            .map_err(|_| Refusal::field(name, "is not valid UTF-8 text")),
                        other => Err(Refusal::field(name, format!("expected a string, got a {}", other.type_name()))),
                    };
                    let body = match &body {
                        LuaValue::Nil => None,
                        b => Some(convert::to_json(lua, b, "body", this.budget())?),
                    };
                    client.submit(Call::v2_request(&text(&method, "method")?, &text(&path, "path")?, body)?, None)
                })
            },
        );

        methods.add_method("create_link_code", |lua, this, (ids, cb): (LuaValue, LuaValue)| {
            this.submit_op(lua, cb, |client| {
                let ids = PlayerIds::from_value(&convert::to_json(lua, &ids, "identifiers", convert::FLOW_BUDGET)?)?;
                client.create_link_code(ids, None)
            })
        });

        methods.add_method("link_from_tablet", |lua, this, (capture, ids, cb): (LuaValue, LuaValue, LuaValue)| {
            this.submit_op(lua, cb, |client| {
                let capture = parse_session_value(&convert::to_json(lua, &capture, "capture", convert::FLOW_BUDGET)?)?;
                let ids =
                    PlayerIds::list_from_value(&convert::to_json(lua, &ids, "identifiers", convert::FLOW_BUDGET)?)?;
                client.link_from_tablet(&capture, &ids, None)
            })
        });

        methods.add_method("is_linked", |lua, this, (ids, cb): (LuaValue, LuaValue)| {
            this.submit_op(lua, cb, |client| {
                let ids = PlayerIds::from_value(&convert::to_json(lua, &ids, "identifiers", convert::FLOW_BUDGET)?)?;
                client.is_linked(ids, None)
            })
        });

        methods.add_method("stats", |lua, this, ()| push::to_lua(lua, &this.client.stats().to_value()));

        methods.add_method("poll", |lua, this, (max_arg, deliver): (LuaValue, Function)| {
            let max = match &max_arg {
                LuaValue::Nil => Some(0),
                LuaValue::Integer(n) => poll_max(*n as f64),
                LuaValue::Number(n) => poll_max(*n),
                _ => None,
            };
            let Some(max) = max else {
                let e = format!("expected a count >= 0 (0 or nil: all ready), got {}", max_arg.type_name());
                return answer::<bool>(lua, Err(Refusal::field("max", e)));
            };
            let ready = this.client.ready();
            let mut delivered = Vec::with_capacity(if max == 0 { ready } else { max.min(ready) });
            let mut failure: Option<(u64, String)> = None;
            let ran = this.client.poll_with(max, |completion| match this.deliver(lua, &deliver, &completion) {
                Ok(()) => {
                    delivered.push(completion);
                    Ok(())
                }
                // The runner is protected, so this is the call itself failing (the C stack is
                // exhausted, memory is out): the result stays ready for the next poll.
                Err(e) => {
                    let text = format!(
                        "could not deliver the result of request {} ({}); it stays ready for the next poll",
                        completion.id,
                        e.to_string().lines().next().unwrap_or("")
                    );
                    failure = Some((completion.id, text));
                    Err(completion)
                }
            });
            this.free(delivered);
            match failure {
                None => answer(lua, Ok(ran)),
                Some((id, text)) => Ok(MultiValue::from_iter([
                    ran.into_lua(lua)?,
                    LuaValue::Nil,
                    text.into_lua(lua)?,
                    id.into_lua(lua)?,
                ])),
            }
        });

        methods.add_method("attach", |lua, this, (id, cb): (LuaValue, Function)| {
            let r = request_id(&id).and_then(|id| {
                let callbacks = this.callbacks.borrow();
                match callbacks.get(&id) {
                    None => Err(Refusal::new(format!(
                        "request {id} is not pending on this client (unknown, or its result was already delivered by poll)"
                    ))),
                    Some(Some(_)) => Err(Refusal::new(format!(
                        "request {id} already has a callback; await works on requests started without one"
                    ))),
                    Some(None) => Ok(id),
                }
            });
            match r {
                Ok(id) => {
                    let key = lua.create_registry_value(cb)?;
                    this.callbacks.borrow_mut().insert(id, Some(key));
                    answer(lua, Ok(id))
                }
                Err(e) => answer::<bool>(lua, Err(e)),
            }
        });

        methods.add_method("pending", |_, this, ()| Ok(this.client.pending()));

        methods.add_method("cancel", |lua, this, id: LuaValue| {
            let r = request_id(&id).map(|id| this.client.cancel(id));
            answer(lua, r)
        });

        methods.add_method("close", |_, this, ()| {
            this.close();
            Ok(())
        });
    }
}

impl Drop for LuaClient {
    /// Runs from `__gc` (or when the state closes): the core closes the client and joins its
    /// threads. Callbacks cannot run here; say so when some were still waiting.
    fn drop(&mut self) {
        self.client.close();
        if let Some(f) = self.freer.get_mut().take() {
            f.stop();
        }
        let waiting = self.callbacks.get_mut().values().filter(|k| k.is_some()).count();
        if waiting > 0 {
            eprintln!(
                "sonoran: a client was garbage-collected with {waiting} callback(s) not yet run; their requests \
                 completed as SHUTDOWN without calling them (call cad:close() and poll() until cad:pending() == 0 \
                 to run them)"
            );
        }
    }
}
