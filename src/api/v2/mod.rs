//! The v2 API's wire format, in one room: REST routes under `/v2/`, `Authorization: Bearer`,
//! JSON bodies without an envelope (and no community id anywhere), problem+json errors, and
//! the published per-route limits.
//!
//! The calls keep their names (`GET_ACCOUNT`, `SET_API_ID`, ...) and take the legacy field
//! names as aliases of v2's (`apiId` is `communityUserId`, `account` and `accId` are
//! `accountUuid`), so that one script works on either API.

use super::{Api, Header, Method, Outgoing, RawResponse, RetryClass};
use crate::error::{Refusal, RefusalKind};
use crate::request::Call;
use crate::response::{ErrorCode, Failure, Outcome, Success};
use crate::text::percent_encode;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Result type of the link code flow's call (`POST /v2/general/links`).
pub(crate) const CREATE_LINK_CODE: &str = "CREATE_LINK_CODE";
/// Result type of the tablet flow's v2 call (`POST /v2/general/links/set`).
pub(crate) const SET_COMMUNITY_LINK: &str = "SET_COMMUNITY_LINK";

/// The published limit of each route, per minute per key (the vendor's endpoint pages).
pub(crate) const ROUTE_LIMITS: &[(&str, u32)] = &[
    ("GET /v2/general/version", 10),
    ("POST /v2/general/links", 30),
    ("POST /v2/general/links/check", 30),
    ("POST /v2/general/links/set", 30),
    ("GET /v2/general/accounts/account", 10),
    ("PATCH /v2/general/accounts/permissions", 10),
    ("PUT /v2/general/api-ids", 10),
    ("PUT /v2/civilian/character-links/{syncId}", 10),
    ("DELETE /v2/civilian/character-links/{syncId}", 10),
    ("POST /v2/emergency/accounts/{accountUuid}/identifiers", 10),
    ("PATCH /v2/emergency/accounts/{accountUuid}/identifiers/{identId}", 10),
    ("DELETE /v2/emergency/accounts/{accountUuid}/identifiers/{identId}", 10),
];

/// A `rate_limits` key in v2: `"METHOD /v2/..."` (a route of the table, or any other route).
pub(crate) fn check_route_key(field: &str, key: &str) -> Result<(), Refusal> {
    let ok = key.split_once(' ').is_some_and(|(m, path)| {
        ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m)
            && path.starts_with("/v2/")
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-.{}".contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(Refusal::field(field, "expected a v2 route like \"POST /v2/general/links/check\" (or \"global\")"))
    }
}

/// The v2 API of one key.
pub(crate) struct V2 {
    api_key: String,
    /// `communityUserId` -> (`accountUuid`, when learnt), for the identifier routes.
    uuids: Mutex<HashMap<String, (String, Instant)>>,
    uuid_ttl: Duration,
}

impl V2 {
    /// `uuid_ttl`: how long a player's account UUID, learnt from `links/check`, is reused.
    pub(crate) fn new(api_key: &str, uuid_ttl: Duration) -> V2 {
        V2 { api_key: api_key.to_string(), uuids: Mutex::new(HashMap::new()), uuid_ttl }
    }

    fn cached_uuid(&self, community_user_id: &str) -> Option<String> {
        let map = self.uuids.lock().unwrap_or_else(|p| p.into_inner());
        map.get(community_user_id).filter(|(_, at)| at.elapsed() < self.uuid_ttl).map(|(u, _)| u.clone())
    }
}

/// The selector keys v2 takes, and the legacy names that stand for them.
const ALIASES: &[(&str, &str)] = &[("apiId", "communityUserId"), ("account", "accountUuid"), ("accId", "accountUuid")];
const SELECTORS: &[&str] = &["communityUserId", "accountUuid", "username", "discord", "roblox"];

/// The one selector of a request object, its alias resolved: `(v2 name, value)`.
fn selector(o: &Map<String, Value>, allowed: &[&str]) -> Result<(&'static str, Value), Refusal> {
    let mut found: Vec<(&'static str, &str, &Value)> = Vec::new();
    for (k, v) in o {
        let name = ALIASES
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, n)| *n)
            .or_else(|| SELECTORS.iter().find(|s| *s == k).copied());
        if let Some(name) = name.filter(|n| allowed.contains(n)) {
            found.push((name, k.as_str(), v));
        }
    }
    match found.as_slice() {
        [(name, _, v)] => Ok((name, (*v).clone())),
        [] => Err(Refusal::field("data", format!("v2 needs one of {} to name the account", allowed.join(", ")))),
        many => {
            let given: Vec<&str> = many.iter().map(|(_, k, _)| *k).collect();
            Err(Refusal::field(
                "data",
                format!("give only one of {} (got {})", allowed.join(", "), given.join(" and ")),
            ))
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Refuse fields that v2 does not have, saying what it uses instead.
fn refuse_legacy_fields(o: &Map<String, Value>) -> Result<(), Refusal> {
    if o.contains_key("sessionId") {
        return Err(Refusal::field(
            "data.sessionId",
            "v2 has no sessionId: link a player from the tablet's scad:account-link message (link_from_tablet) or with a \
             link code (create_link_code)",
        ));
    }
    for k in ["id1", "id2"] {
        if o.contains_key(k) {
            return Err(Refusal::field(format!("data.{k}"), "v2 takes apiIds (a list) instead of id1 / id2"));
        }
    }
    Ok(())
}

/// A legacy identifier `{status, location, aop, data{unitNum, ...}}` as v2's flat body.
fn flat_identifier(ident: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(i)) = ident {
        for (k, v) in i {
            match (k.as_str(), v) {
                ("data", Value::Object(d)) => out.extend(d.iter().map(|(k, v)| (k.clone(), v.clone()))),
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

fn out(method: Method, path: String, body: Option<Value>, not_found: ErrorCode) -> Outgoing {
    let body = body.map(|b| serde_json::to_vec(&b).expect("serializing a JSON value cannot fail"));
    Outgoing { method, path, body, not_found }
}

impl Api for V2 {
    fn headers(&self) -> Vec<Header> {
        vec![
            Header { name: "authorization", value: format!("Bearer {}", self.api_key), sensitive: true },
            Header { name: "accept", value: "application/json".into(), sensitive: false },
        ]
    }

    fn encode(&self, call: &Call) -> Result<Outgoing, Refusal> {
        let ty = &*call.request_type;
        if let Some((method, _)) = generic_route(ty) {
            let o = call.data.first().and_then(Value::as_object).cloned().unwrap_or_default();
            let path = o.get("path").and_then(Value::as_str).unwrap_or("").to_string();
            let body = o.get("body").filter(|b| !b.is_null()).cloned();
            return Ok(out(method, path, body, ErrorCode::NotFound));
        }
        if ty == "GET_VERSION" {
            return Ok(out(Method::Get, "/v2/general/version".into(), None, ErrorCode::NotFound));
        }
        let o = match call.data.as_slice() {
            [Value::Object(o)] => o,
            [] => return Err(Refusal::field("data", format!("{ty} needs a request object"))),
            _ => return Err(Refusal::field("data", "v2 takes one request object per call (one account per route)")),
        };
        let on_404 = |sel: &str| if sel == "communityUserId" { ErrorCode::NotLinked } else { ErrorCode::NotFound };
        Ok(match ty {
            "GET_ACCOUNT" => {
                let (sel, v) = selector(o, SELECTORS)?;
                let path = format!("/v2/general/accounts/account?{sel}={}", percent_encode(&text(&v)));
                out(Method::Get, path, None, on_404(sel))
            }
            "CHECK_APIID" => {
                let (_, v) = selector(o, &["communityUserId"])?;
                let body = json!({ "communityUserId": v });
                out(Method::Post, "/v2/general/links/check".into(), Some(body), ErrorCode::NotLinked)
            }
            "SET_API_ID" => {
                refuse_legacy_fields(o)?;
                let (sel, v) = selector(o, SELECTORS)?;
                let push_new = o.get("pushNew").cloned().unwrap_or(Value::Bool(true));
                let body =
                    json!({ sel: v, "apiIds": o.get("apiIds").cloned().unwrap_or(json!([])), "pushNew": push_new });
                out(Method::Put, "/v2/general/api-ids".into(), Some(body), on_404(sel))
            }
            "LINK_CHARACTER" => {
                let (sel, v) = selector(o, &["communityUserId", "accountUuid", "discord", "roblox"])?;
                let sync = o.get("syncId").map(text).unwrap_or_default();
                let method =
                    if o.get("action").and_then(Value::as_u64) == Some(2) { Method::Delete } else { Method::Put };
                let path = format!("/v2/civilian/character-links/{}", percent_encode(&sync));
                out(method, path, Some(json!({ sel: v })), on_404(sel))
            }
            "MODIFY_IDENTIFIER" => {
                let uuid = match selector(o, &["accountUuid", "communityUserId"])? {
                    ("accountUuid", v) => text(&v),
                    (_, v) => self.cached_uuid(&text(&v)).ok_or_else(|| {
                        Refusal::new("MODIFY_IDENTIFIER: the account's UUID was not resolved first (links/check)")
                    })?,
                };
                let base = format!("/v2/emergency/accounts/{}/identifiers", percent_encode(&uuid));
                let id = o.get("identId").and_then(Value::as_u64);
                match (o.get("action").and_then(Value::as_u64), id) {
                    (Some(0), _) => {
                        out(Method::Post, base, Some(flat_identifier(o.get("identifier"))), ErrorCode::NotFound)
                    }
                    (Some(1), Some(id)) => {
                        let body = flat_identifier(o.get("identifier"));
                        out(Method::Patch, format!("{base}/{id}"), Some(body), ErrorCode::NotFound)
                    }
                    (Some(2), Some(id)) => out(Method::Delete, format!("{base}/{id}"), None, ErrorCode::NotFound),
                    _ => {
                        return Err(Refusal::field(
                            "data.identId",
                            "is required for EDIT and REMOVE in v2 (the route names the identifier)",
                        ))
                    }
                }
            }
            "SET_ACCOUNT_PERMISSIONS" => {
                let (sel, v) = selector(o, SELECTORS)?;
                let mut body = Map::new();
                body.insert(sel.to_string(), v);
                for k in ["add", "remove", "set", "active", "join"] {
                    if let Some(x) = o.get(k) {
                        body.insert(k.to_string(), x.clone());
                    }
                }
                out(Method::Patch, "/v2/general/accounts/permissions".into(), Some(Value::Object(body)), on_404(sel))
            }
            CREATE_LINK_CODE => {
                out(Method::Post, "/v2/general/links".into(), Some(Value::Object(o.clone())), ErrorCode::NotLinked)
            }
            SET_COMMUNITY_LINK => {
                out(Method::Post, "/v2/general/links/set".into(), Some(Value::Object(o.clone())), ErrorCode::NotLinked)
            }
            other => {
                return Err(Refusal::of(
                    RefusalKind::WrongApi,
                    format!(
                        "type: {other} is a legacy API type; with api_version v2 send its v2 route with request_v2"
                    ),
                ))
            }
        })
    }

    fn decode(&self, out: &Outgoing, request_type: &str, raw: RawResponse) -> Outcome {
        let trace_id = raw.trace_id.clone();
        let with_trace = |mut f: Failure| {
            f.trace_id = f.trace_id.take().or_else(|| trace_id.clone());
            f
        };
        decode(out, request_type, raw)
            .map(|mut s| {
                s.trace_id = s.trace_id.take().or(trace_id.clone());
                s
            })
            .map_err(with_trace)
    }

    fn retry_class(&self, call: &Call) -> RetryClass {
        match self.route(call) {
            Some((Method::Post, route))
                if !["/v2/general/links/check", "/v2/general/links/set"].contains(&route.as_str()) =>
            {
                RetryClass::Once
            }
            Some(_) => RetryClass::Repeatable,
            None => RetryClass::Once,
        }
    }

    fn pacing_key(&self, call: &Call) -> Arc<str> {
        match self.route(call) {
            Some((method, route)) => Arc::from(format!("{} {route}", method_name(method))),
            None => call.request_type.clone(),
        }
    }

    fn secrets<'c>(&self, call: &'c Call) -> Vec<&'c str> {
        call.data.iter().filter_map(|v| v.get("secretUuid").and_then(Value::as_str)).collect()
    }

    fn prerequisite(&self, call: &Call) -> Option<Call> {
        if &*call.request_type != "MODIFY_IDENTIFIER" {
            return None;
        }
        let o = call.data.first()?.as_object()?;
        let id = o.get("communityUserId").or_else(|| o.get("apiId")).map(text)?;
        if o.contains_key("accountUuid") || o.contains_key("account") || self.cached_uuid(&id).is_some() {
            return None;
        }
        Some(Call::internal("CHECK_APIID", json!({ "communityUserId": id })))
    }

    fn after_prerequisite(&self, call: &Call, answer: &Success) -> Result<Call, Failure> {
        let uuid = answer.data.get("accountUuid").and_then(Value::as_str).ok_or_else(|| {
            Failure::new(answer.status, ErrorCode::BadResponse, "links/check answered linked without an accountUuid")
        })?;
        let mut call = call.clone();
        if let Some(Value::Object(o)) = call.data.first_mut() {
            let id = o.remove("communityUserId").or_else(|| o.remove("apiId")).map(|v| text(&v)).unwrap_or_default();
            self.uuids.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (uuid.to_string(), Instant::now()));
            o.insert("accountUuid".into(), Value::from(uuid));
        }
        Ok(call)
    }
}

impl V2 {
    /// The route template of a call (`{syncId}` for its value), as `rate_limits` keys name it.
    fn route(&self, call: &Call) -> Option<(Method, String)> {
        if let Some((m, path)) = generic_route(&call.request_type) {
            return Some((m, path.to_string()));
        }
        let o = call.data.first().and_then(Value::as_object);
        let action = o.and_then(|o| o.get("action")).and_then(Value::as_u64);
        Some(match &*call.request_type {
            "GET_VERSION" => (Method::Get, "/v2/general/version".into()),
            "GET_ACCOUNT" => (Method::Get, "/v2/general/accounts/account".into()),
            "CHECK_APIID" => (Method::Post, "/v2/general/links/check".into()),
            "SET_API_ID" => (Method::Put, "/v2/general/api-ids".into()),
            "SET_ACCOUNT_PERMISSIONS" => (Method::Patch, "/v2/general/accounts/permissions".into()),
            CREATE_LINK_CODE => (Method::Post, "/v2/general/links".into()),
            SET_COMMUNITY_LINK => (Method::Post, "/v2/general/links/set".into()),
            "LINK_CHARACTER" if action == Some(2) => (Method::Delete, "/v2/civilian/character-links/{syncId}".into()),
            "LINK_CHARACTER" => (Method::Put, "/v2/civilian/character-links/{syncId}".into()),
            "MODIFY_IDENTIFIER" => match action {
                Some(0) => (Method::Post, "/v2/emergency/accounts/{accountUuid}/identifiers".into()),
                Some(1) => (Method::Patch, "/v2/emergency/accounts/{accountUuid}/identifiers/{identId}".into()),
                _ => (Method::Delete, "/v2/emergency/accounts/{accountUuid}/identifiers/{identId}".into()),
            },
            _ => return None,
        })
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

/// A generic v2 call's type is its route: `"PATCH /v2/..."`.
pub(crate) fn generic_route(request_type: &str) -> Option<(Method, &str)> {
    let (m, path) = request_type.split_once(' ')?;
    let method = match m {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        _ => return None,
    };
    path.starts_with("/v2/").then_some((method, path))
}

mod answers;

use answers::decode;

#[cfg(test)]
mod tests;
