//! The v2 API, over the same state as the legacy one: Bearer auth, REST routes under `/v2/`,
//! JSON bodies, problem+json errors with a `traceId`, per-key per-route limits in fixed
//! windows, the PascalCase identifier list, and the test-only `/__emulator/links/complete`
//! that stands in for the `sonorancad.com/id` page.
//!
//! Choices the documents leave open (the README lists them): 400 for a selector count other
//! than one, 404 problem+json for an unknown account, identifier or link code, a link code of
//! four characters from `A-Z0-9` living 600 s, the plan name of GET version, `x-trace-id` on
//! every answer, and legacy API IDs counting as a player's `communityUserId`.

use super::state::{iso_after, Account, Identifier, State};
use super::wire::{permission_key, PERMISSION_KEYS};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The published per-route limits (per minute per key). The emulator's own copy: it is the
/// library's test oracle.
pub const ROUTE_LIMITS: &[(&str, u32)] = &[
    ("GET /v2/general/version", 10),
    ("POST /v2/general/links", 30),
    ("POST /v2/general/links/check", 30),
    ("POST /v2/general/links/set", 30),
    ("GET /v2/general/accounts/account", 10),
    ("PATCH /v2/general/accounts/permissions", 10),
    ("PUT /v2/general/api-ids", 10),
    ("PUT /v2/civilian/character-links/{syncId}", 10),
    ("DELETE /v2/civilian/character-links/{syncId}", 10),
    ("GET /v2/emergency/accounts/{accountUuid}/identifiers", 10),
    ("POST /v2/emergency/accounts/{accountUuid}/identifiers", 10),
    ("PATCH /v2/emergency/accounts/{accountUuid}/identifiers/{identId}", 10),
    ("DELETE /v2/emergency/accounts/{accountUuid}/identifiers/{identId}", 10),
];

/// One v2 request as the emulator sees it.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// The path, percent-encoded as sent.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// A v2 answer.
pub(crate) struct Reply {
    pub status: u16,
    pub problem: bool,
    pub body: String,
    pub retry_after: Option<String>,
}

impl Reply {
    fn ok(v: Value) -> Reply {
        Reply { status: 200, problem: false, body: v.to_string(), retry_after: None }
    }
}

/// A problem+json answer.
pub(crate) fn problem(status: u16, title: &str, detail: &str, instance: &str, trace_id: &str) -> Reply {
    let body = json!({
        "type": format!("https://httpstatuses.com/{status}"),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "traceId": trace_id,
    });
    Reply { status, problem: true, body: body.to_string(), retry_after: None }
}

/// The gateway's 429.
pub(crate) fn rate_limited(request_id: &str, retry_after: Option<String>) -> Reply {
    let body = json!({"message": "API rate limit exceeded", "request_id": request_id});
    Reply { status: 429, problem: false, body: body.to_string(), retry_after }
}

/// `%XX` sequences decoded (invalid ones kept as they are).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The route template of a request and the decoded values of its path parameters.
pub(crate) fn route(method: &str, path: &str) -> Option<(&'static str, Vec<String>)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let fixed = |t: &'static str| Some((t, Vec::new()));
    match (method, segs.as_slice()) {
        ("GET", ["v2", "general", "version"]) => fixed("GET /v2/general/version"),
        ("POST", ["v2", "general", "links"]) => fixed("POST /v2/general/links"),
        ("POST", ["v2", "general", "links", "check"]) => fixed("POST /v2/general/links/check"),
        ("POST", ["v2", "general", "links", "set"]) => fixed("POST /v2/general/links/set"),
        ("GET", ["v2", "general", "accounts", "account"]) => fixed("GET /v2/general/accounts/account"),
        ("PATCH", ["v2", "general", "accounts", "permissions"]) => fixed("PATCH /v2/general/accounts/permissions"),
        ("PUT", ["v2", "general", "api-ids"]) => fixed("PUT /v2/general/api-ids"),
        ("PUT", ["v2", "civilian", "character-links", id]) => {
            Some(("PUT /v2/civilian/character-links/{syncId}", vec![percent_decode(id)]))
        }
        ("DELETE", ["v2", "civilian", "character-links", id]) => {
            Some(("DELETE /v2/civilian/character-links/{syncId}", vec![percent_decode(id)]))
        }
        ("GET", ["v2", "emergency", "accounts", uuid, "identifiers"]) => {
            Some(("GET /v2/emergency/accounts/{accountUuid}/identifiers", vec![percent_decode(uuid)]))
        }
        ("POST", ["v2", "emergency", "accounts", uuid, "identifiers"]) => {
            Some(("POST /v2/emergency/accounts/{accountUuid}/identifiers", vec![percent_decode(uuid)]))
        }
        ("PATCH", ["v2", "emergency", "accounts", uuid, "identifiers", id]) => Some((
            "PATCH /v2/emergency/accounts/{accountUuid}/identifiers/{identId}",
            vec![percent_decode(uuid), percent_decode(id)],
        )),
        ("DELETE", ["v2", "emergency", "accounts", uuid, "identifiers", id]) => Some((
            "DELETE /v2/emergency/accounts/{accountUuid}/identifiers/{identId}",
            vec![percent_decode(uuid), percent_decode(id)],
        )),
        ("POST", ["__emulator", "links", "complete"]) => fixed("POST /__emulator/links/complete"),
        _ => None,
    }
}

/// The body keys each route takes (beyond its selector).
fn body_keys(template: &str) -> &'static [&'static str] {
    match template {
        "POST /v2/general/links" | "POST /v2/general/links/check" => &["communityUserId"],
        "POST /v2/general/links/set" => &["accountUuid", "secretUuid", "communityUserId"],
        "PATCH /v2/general/accounts/permissions" => &["add", "remove", "set", "active", "join"],
        "PUT /v2/general/api-ids" => &["apiIds", "pushNew"],
        "POST /v2/emergency/accounts/{accountUuid}/identifiers"
        | "PATCH /v2/emergency/accounts/{accountUuid}/identifiers/{identId}" => &[
            "status",
            "location",
            "aop",
            "unitNum",
            "name",
            "district",
            "department",
            "subdivision",
            "rank",
            "group",
            "page",
            "isDispatch",
        ],
        "POST /__emulator/links/complete" => &["code", "username", "accountUuid"],
        _ => &[],
    }
}

/// The routes that name an account with one selector in the body (or, for GET, the query).
fn selectors(template: &str) -> &'static [&'static str] {
    match template {
        "GET /v2/general/accounts/account" | "PATCH /v2/general/accounts/permissions" | "PUT /v2/general/api-ids" => {
            &["communityUserId", "roblox", "discord", "accountUuid", "username"]
        }
        "PUT /v2/civilian/character-links/{syncId}" | "DELETE /v2/civilian/character-links/{syncId}" => {
            &["communityUserId", "roblox", "discord", "accountUuid"]
        }
        _ => &[],
    }
}

/// Wire-format problems of a v2 request (the emulator answers it anyway when it can).
pub(crate) fn violations(r: &Request<'_>, community_id: &str, body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match r.authorization {
        None => out.push("Authorization header is missing".into()),
        Some(a) if !a.starts_with("Bearer ") => out.push("Authorization is not `Bearer <key>`".into()),
        _ => {}
    }
    if !r.accept.is_some_and(|a| a.split(',').any(|p| p.trim().starts_with("application/json"))) {
        out.push("Accept is not application/json".into());
    }
    if !r.body.is_empty() {
        let json_ct = r.content_type.is_some_and(|c| c.split(';').next().unwrap_or("").trim() == "application/json");
        if !json_ct {
            out.push(format!("Content-Type is {:?} on a body, expected application/json", r.content_type));
        }
        match body {
            Value::Object(o) => {
                for k in ["id", "key", "type", "data"] {
                    if o.contains_key(k) {
                        out.push(format!("legacy envelope key `{k}` in a v2 body"));
                    }
                }
            }
            _ => out.push("body is not a JSON object".into()),
        }
    }
    let raw = format!("{}?{}{}", r.path, r.query.unwrap_or(""), String::from_utf8_lossy(r.body));
    if !community_id.is_empty() && raw.contains(community_id) {
        out.push("the community id appears in a v2 request (the key alone selects the community)".into());
    }
    if let (Some((template, _)), Value::Object(o)) = (route(r.method, r.path), body) {
        let allowed: Vec<&str> = selectors(template).iter().chain(body_keys(template)).copied().collect();
        for k in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
            out.push(format!("{template}: unknown body key `{k}`"));
        }
    }
    out
}

/// Per-key, per-route fixed windows.
#[derive(Default)]
pub(crate) struct Windows {
    open: HashMap<&'static str, (Instant, u32)>,
}

impl Windows {
    /// `Err(seconds until the window resets)` when the route's limit is used up.
    pub(crate) fn take(&mut self, template: &'static str, window: Duration, now: Instant) -> Result<(), u64> {
        let Some(limit) = ROUTE_LIMITS.iter().find(|(t, _)| *t == template).map(|(_, n)| *n) else { return Ok(()) };
        let (start, used) = self.open.entry(template).or_insert((now, 0));
        if now.duration_since(*start) >= window {
            *start = now;
            *used = 0;
        }
        if *used >= limit {
            return Err(window.saturating_sub(now.duration_since(*start)).as_secs().max(1));
        }
        *used += 1;
        Ok(())
    }
}

/// One routed request, for [`apply`].
#[derive(Clone, Copy)]
pub(crate) struct Routed<'a> {
    pub template: &'a str,
    pub params: &'a [String],
    pub query: Option<&'a str>,
    pub body: &'a Value,
    pub trace_id: &'a str,
    pub path: &'a str,
    /// Answer an unlinked `links/check` with `{"success": false}`.
    pub unlinked_success_false: bool,
}

/// What a route does to the state, and its answer. `changed`: the state changed.
pub(crate) fn apply(st: &mut State, r: &Routed<'_>) -> (Reply, bool) {
    let Routed { template, params, query, body, trace_id, path, unlinked_success_false } = *r;
    let fail = |status: u16, title: &str, detail: &str| (problem(status, title, detail, path, trace_id), false);
    let empty = Map::new();
    let o = body.as_object().unwrap_or(&empty);
    // The selector: from the body, or for GET from the query.
    let sel_source: Map<String, Value> = if template.starts_with("GET ") {
        query
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (percent_decode(k), Value::String(percent_decode(v))))
            .collect()
    } else {
        o.clone()
    };
    let select = |st: &State| -> Result<usize, (Reply, bool)> {
        let allowed = selectors(template);
        let given: Vec<(&String, &Value)> = sel_source.iter().filter(|(k, _)| allowed.contains(&k.as_str())).collect();
        let [(k, v)] = given.as_slice() else {
            let detail = format!("Provide exactly one of {}.", allowed.join(", "));
            return Err(fail(400, "Bad Request", &detail));
        };
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let found = match k.as_str() {
            "communityUserId" => st.by_api_id(&v),
            "accountUuid" => st.by_uuid(&v),
            "username" => st.by_username(&v),
            _ => None, // discord, roblox: the fixture's accounts have none
        };
        found.ok_or_else(|| fail(404, "Not Found", &format!("Account {v} was not found in this community.")))
    };
    let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").trim().to_string();
    match template {
        "GET /v2/general/version" => {
            let name = ["FREE", "STARTER", "STANDARD", "PLUS", "PRO", "PRO", "SONORAN ONE"].get(st.version as usize);
            (Reply::ok(json!({"version": st.version, "name": name.copied().unwrap_or("UNKNOWN")})), false)
        }
        "POST /v2/general/links" => {
            let cuid = s("communityUserId");
            if cuid.is_empty() {
                return fail(400, "Bad Request", "communityUserId is required.");
            }
            st.next_code += 1;
            let code: String = {
                let mut n = st.next_code.wrapping_mul(2_654_435_761) % 1_679_616; // 36^4
                (0..4)
                    .map(|_| {
                        let d = (n % 36) as u8;
                        n /= 36;
                        (if d < 10 { b'0' + d } else { b'A' + d - 10 }) as char
                    })
                    .collect()
            };
            st.link_codes.retain(|(_, _, exp)| *exp > Instant::now());
            st.link_codes.push((code.clone(), cuid.clone(), Instant::now() + Duration::from_secs(600)));
            let answer = json!({
                "code": code,
                "communityUserId": cuid,
                "communityUuid": "00000000-0000-4000-8000-000000000001",
                "expiresAt": iso_after(600),
                "expiresInSeconds": 600,
            });
            (Reply::ok(answer), true)
        }
        "POST /v2/general/links/check" => {
            let cuid = s("communityUserId");
            match st.by_api_id(&cuid) {
                Some(i) => (
                    Reply::ok(json!({"communityUserId": cuid, "linked": true, "accountUuid": st.accounts[i].uuid})),
                    false,
                ),
                None if unlinked_success_false => (Reply::ok(json!({"success": false})), false),
                None => (Reply::ok(json!({"communityUserId": cuid, "linked": false, "accountUuid": null})), false),
            }
        }
        "POST /v2/general/links/set" => {
            let (uuid, secret, cuid) = (s("accountUuid"), s("secretUuid"), s("communityUserId"));
            if uuid.is_empty() || secret.is_empty() || cuid.is_empty() || cuid.len() > 255 {
                return fail(400, "Bad Request", "The request body is invalid.");
            }
            let Some(i) = st.by_uuid(&uuid).filter(|i| st.accounts[*i].secret_uuid.eq_ignore_ascii_case(&secret))
            else {
                return fail(
                    403,
                    "Forbidden",
                    "The account UUID and secret UUID do not match an account in the authenticated community.",
                );
            };
            link(st, i, &cuid);
            (Reply::ok(json!({"linked": true, "accountUuid": uuid, "communityUserId": cuid})), true)
        }
        "POST /__emulator/links/complete" => {
            let code = s("code").to_ascii_uppercase();
            let Some(pos) = st.link_codes.iter().position(|(c, _, exp)| *c == code && *exp > Instant::now()) else {
                return fail(404, "Not Found", "No such link code (or it expired).");
            };
            let who = if o.contains_key("accountUuid") {
                st.by_uuid(&s("accountUuid"))
            } else {
                st.by_username(&s("username"))
            };
            let Some(i) = who else { return fail(404, "Not Found", "No such account.") };
            let (_, cuid, _) = st.link_codes.remove(pos);
            link(st, i, &cuid);
            (Reply::ok(json!({"communityUserId": cuid, "accountUuid": st.accounts[i].uuid})), true)
        }
        "GET /v2/general/accounts/account" => match select(st) {
            Ok(i) => (Reply::ok(account_json(&st.accounts[i])), false),
            Err(e) => e,
        },
        "PATCH /v2/general/accounts/permissions" => {
            let i = match select(st) {
                Ok(i) => i,
                Err(e) => return e,
            };
            let acc = &mut st.accounts[i];
            let names = |k: &str| -> Vec<&'static str> {
                o.get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).filter_map(permission_key).collect())
                    .unwrap_or_default()
            };
            if o.contains_key("set") {
                for k in PERMISSION_KEYS {
                    acc.permissions.insert(k.to_string(), Value::Bool(false));
                }
                names("set").into_iter().for_each(|k| drop(acc.permissions.insert(k.to_string(), Value::Bool(true))));
            } else {
                names("add").into_iter().for_each(|k| drop(acc.permissions.insert(k.to_string(), Value::Bool(true))));
                names("remove")
                    .into_iter()
                    .for_each(|k| drop(acc.permissions.insert(k.to_string(), Value::Bool(false))));
            }
            if let Some(active) = o.get("active").and_then(Value::as_bool) {
                acc.status = if active { 1 } else { 0 };
            }
            let granted: Map<String, Value> = acc
                .permissions
                .iter()
                .filter(|(_, v)| v.as_bool() == Some(true))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (Reply::ok(json!({"accountUuid": acc.uuid, "permissions": granted, "active": acc.status == 1})), true)
        }
        "PUT /v2/general/api-ids" => {
            let i = match select(st) {
                Ok(i) => i,
                Err(e) => return e,
            };
            let acc = &mut st.accounts[i];
            let ids: Vec<String> = o
                .get("apiIds")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter().filter_map(Value::as_str).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                })
                .unwrap_or_default();
            let push_new = o.get("pushNew").and_then(Value::as_bool).unwrap_or(true);
            if push_new {
                for id in ids {
                    if !acc.api_ids.contains(&id) {
                        acc.api_ids.push(id);
                    }
                }
            } else {
                acc.api_ids = ids;
            }
            (Reply::ok(json!({"accountUuid": acc.uuid, "apiIds": acc.api_ids, "pushNew": push_new})), true)
        }
        "PUT /v2/civilian/character-links/{syncId}" | "DELETE /v2/civilian/character-links/{syncId}" => {
            let i = match select(st) {
                Ok(i) => i,
                Err(e) => return e,
            };
            let sync = params[0].clone();
            let acc = &mut st.accounts[i];
            let action = if template.starts_with("PUT") {
                if !acc.sync_ids.contains(&sync) {
                    acc.sync_ids.push(sync.clone());
                }
                "ADD"
            } else {
                acc.sync_ids.retain(|x| *x != sync);
                "REMOVE"
            };
            (Reply::ok(json!({"accountUuid": acc.uuid, "syncId": sync, "action": action})), true)
        }
        _ => identifiers(st, template, params, o, &fail),
    }
}

/// The identifier routes of `/v2/emergency/accounts/{accountUuid}/identifiers`.
fn identifiers(
    st: &mut State,
    template: &str,
    params: &[String],
    o: &Map<String, Value>,
    fail: &dyn Fn(u16, &str, &str) -> (Reply, bool),
) -> (Reply, bool) {
    let uuid = params[0].clone();
    if st.by_uuid(&uuid).is_none() {
        return fail(404, "Not Found", &format!("Account {uuid} was not found in this community."));
    }
    let find = |st: &State| -> Result<usize, (Reply, bool)> {
        let id: u64 = params
            .get(1)
            .and_then(|p| p.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| fail(400, "Bad Request", "identId must be a positive integer."))?;
        st.identifiers
            .iter()
            .position(|x| x.id == id && x.acc_id == uuid)
            .ok_or_else(|| fail(404, "Not Found", &format!("Identifier {id} was not found.")))
    };
    match template {
        "GET /v2/emergency/accounts/{accountUuid}/identifiers" => {
            let list: Vec<Value> = st.identifiers.iter().filter(|x| x.acc_id == uuid).map(ident_json).collect();
            let selected = st.identifiers.iter().find(|x| x.acc_id == uuid).map(|x| x.id);
            (Reply::ok(json!({"SelectedIdent": selected, "Identifiers": list})), false)
        }
        "POST /v2/emergency/accounts/{accountUuid}/identifiers" => {
            let mut ident = Identifier {
                id: st.next_ident,
                acc_id: uuid,
                status: 0,
                location: String::new(),
                aop: String::new(),
                data: [
                    ("unitNum", "NEW UNIT"),
                    ("name", "NO NAME"),
                    ("district", "NOT SET"),
                    ("department", "NOT SET"),
                    ("subdivision", "NOT SET"),
                    ("rank", "NOT SET"),
                    ("group", ""),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect(),
            };
            patch(&mut ident, o);
            st.next_ident += 1;
            let id = ident.id;
            st.identifiers.push(ident);
            (Reply::ok(json!({"identId": id})), true)
        }
        "PATCH /v2/emergency/accounts/{accountUuid}/identifiers/{identId}" => {
            let pos = match find(st) {
                Ok(p) => p,
                Err(e) => return e,
            };
            if o.is_empty() {
                return fail(400, "Bad Request", "Provide at least one property to change.");
            }
            patch(&mut st.identifiers[pos], o);
            let ident = &st.identifiers[pos];
            (Reply::ok(json!({"identId": ident.id, "serverId": 1, "identifier": ident_json(ident)})), true)
        }
        _ => {
            let pos = match find(st) {
                Ok(p) => p,
                Err(e) => return e,
            };
            let ident = st.identifiers.remove(pos);
            (Reply::ok(json!({"identId": ident.id, "serverId": 1})), true)
        }
    }
}

/// Link `communityUserId` to account `i`, taking it from any other account (reassigned
/// atomically, as the documents say).
fn link(st: &mut State, i: usize, cuid: &str) {
    for a in st.accounts.iter_mut() {
        if a.community_user_id.as_deref() == Some(cuid) {
            a.community_user_id = None;
        }
    }
    st.accounts[i].community_user_id = Some(cuid.to_string());
}

fn patch(ident: &mut Identifier, o: &Map<String, Value>) {
    for (k, v) in o {
        match k.as_str() {
            "status" => ident.status = v.as_i64().unwrap_or(ident.status),
            "location" => ident.location = v.as_str().unwrap_or("").to_string(),
            "aop" => ident.aop = v.as_str().unwrap_or("").to_string(),
            _ => {
                ident.data.insert(k.clone(), v.clone());
            }
        }
    }
}

/// An identifier as v2 shows it.
fn ident_json(i: &Identifier) -> Value {
    let mut data = i.data.clone();
    let page = data.remove("page").unwrap_or(json!(-1));
    let is_dispatch = data.remove("isDispatch").unwrap_or(json!(false));
    data.insert("page".into(), page);
    json!({
        "id": i.id, "accId": i.acc_id, "status": i.status, "isPanic": false, "location": i.location,
        "coordinates": {"x": 0, "y": 0, "z": 0, "w": 0}, "aop": i.aop, "data": data, "isDispatch": is_dispatch,
    })
}

/// The v2 account object (one `communityUserId`, no API ID list).
fn account_json(a: &Account) -> Value {
    json!({
        "uuid": a.uuid, "username": a.username, "communityUserId": a.community_user_id, "status": a.status,
        "joined": a.joined, "lastLogin": a.last_login, "permissions": a.permissions,
    })
}
