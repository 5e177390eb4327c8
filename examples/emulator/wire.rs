//! The legacy wire format: request types, routes, the permission-name table and the strict
//! request checker that reports wire-format violations.

use serde_json::{Map, Value};

/// The request types the emulator implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApiType {
    SetApiId,
    CheckApiId,
    GetVersion,
    GetAccount,
    SetAccountPermissions,
    LinkCharacter,
    ModifyIdentifier,
    GetServers,
}

pub(crate) const ALL_TYPES: [ApiType; 8] = [
    ApiType::SetApiId,
    ApiType::CheckApiId,
    ApiType::GetVersion,
    ApiType::GetAccount,
    ApiType::SetAccountPermissions,
    ApiType::LinkCharacter,
    ApiType::ModifyIdentifier,
    ApiType::GetServers,
];

impl ApiType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ApiType::SetApiId => "SET_API_ID",
            ApiType::CheckApiId => "CHECK_APIID",
            ApiType::GetVersion => "GET_VERSION",
            ApiType::GetAccount => "GET_ACCOUNT",
            ApiType::SetAccountPermissions => "SET_ACCOUNT_PERMISSIONS",
            ApiType::LinkCharacter => "LINK_CHARACTER",
            ApiType::ModifyIdentifier => "MODIFY_IDENTIFIER",
            ApiType::GetServers => "GET_SERVERS",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<ApiType> {
        ALL_TYPES.iter().copied().find(|t| t.name() == name)
    }

    /// Whether a successful request of this type changes state.
    pub(crate) fn mutates(self) -> bool {
        matches!(
            self,
            ApiType::SetApiId | ApiType::SetAccountPermissions | ApiType::LinkCharacter | ApiType::ModifyIdentifier
        )
    }
}

/// Where a path leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/{section}/{lower(type)}`: the body's `type` must be this one.
    Typed(ApiType),
    /// The pre-2020 generic `/general`: dispatch on the body's `type`.
    Generic,
}

pub(crate) fn route(path: &str) -> Option<Route> {
    Some(match path {
        "/general" => Route::Generic,
        "/general/set_api_id" => Route::Typed(ApiType::SetApiId),
        "/general/check_apiid" => Route::Typed(ApiType::CheckApiId),
        "/general/get_version" => Route::Typed(ApiType::GetVersion),
        "/general/get_servers" => Route::Typed(ApiType::GetServers),
        "/general/get_account" => Route::Typed(ApiType::GetAccount),
        "/general/set_account_permissions" => Route::Typed(ApiType::SetAccountPermissions),
        "/civilian/link_character" => Route::Typed(ApiType::LinkCharacter),
        "/emergency/modify_identifier" | "/emergency/modify_identifiers" => Route::Typed(ApiType::ModifyIdentifier),
        _ => return None,
    })
}

/// The 43 permission names SET_ACCOUNT_PERMISSIONS accepts (exact, upper case). Written out
/// here rather than taken from the library: the emulator is the library's test oracle, so it
/// reads the API documents on its own; tests/emulator_wire.rs checks the two lists agree.
pub const PERMISSION_NAMES: [&str; 43] = [
    "CIVILIAN",
    "LAWYER",
    "DMV",
    "POLICE",
    "FIRE",
    "EMS",
    "DISPATCH",
    "ADMIN",
    "POLRECADD",
    "POLRECEDIT",
    "POLRECREMOVE",
    "POLSUPER",
    "POLEDITUNIT",
    "POLEDITOTHERUNIT",
    "SELFDISPATCH",
    "LIVEMAP",
    "MEDRECADD",
    "MEDRECEDIT",
    "MEDRECREMOVE",
    "MEDSUPER",
    "FIRERECADD",
    "FIRERECEDIT",
    "FIRERECREMOVE",
    "FIRESUPER",
    "DMVRECADD",
    "DMVRECEDIT",
    "DMVRECREMOVE",
    "DMVSUPER",
    "MODIFYSTREETSIGNS",
    "LAWRECADD",
    "LAWRECEDIT",
    "LAWRECREMOVE",
    "LAWSUPER",
    "ADMINACCOUNTS",
    "ADMINPERMISSIONKEYS",
    "ADMINCUSTOMIZATION",
    "ADMINDEPARTMENTS",
    "ADMINTENCODES",
    "ADMINPENALCODES",
    "ADMININGAMEINTEGRATION",
    "ADMINDISCORDINTEGRATION",
    "ADMINLIMITS",
    "ADMINLOGS",
];

/// The account object's permission keys: those GET_ACCOUNT shows, plus `liveMap` and
/// `modifyStreetSigns`.
pub(crate) const PERMISSION_KEYS: [&str; 43] = [
    "civilian",
    "lawyer",
    "dmv",
    "police",
    "fire",
    "ems",
    "dispatch",
    "admin",
    "polRecAdd",
    "polRecEdit",
    "polRecRemove",
    "polSuper",
    "polEditUnit",
    "polEditOtherUnit",
    "selfDispatch",
    "liveMap",
    "medRecAdd",
    "medRecEdit",
    "medRecRemove",
    "medSuper",
    "fireRecAdd",
    "fireRecEdit",
    "fireRecRemove",
    "fireSuper",
    "dmvRecAdd",
    "dmvRecEdit",
    "dmvRecRemove",
    "dmvSuper",
    "modifyStreetSigns",
    "lawRecAdd",
    "lawRecEdit",
    "lawRecRemove",
    "lawSuper",
    "adminAccounts",
    "adminPermissionKeys",
    "adminCustomization",
    "adminDepartments",
    "adminTenCodes",
    "adminPenalCodes",
    "adminInGameIntegration",
    "adminDiscordIntegration",
    "adminLimits",
    "adminLogs",
];

/// The account permission key of a permission name (`POLRECEDIT` -> `polRecEdit`), matched
/// case-insensitively against the key table; `None` for a name not among the 43.
pub(crate) fn permission_key(name: &str) -> Option<&'static str> {
    if !PERMISSION_NAMES.contains(&name) {
        return None;
    }
    PERMISSION_KEYS.iter().copied().find(|k| k.eq_ignore_ascii_case(name))
}

/// Keys allowed in an identifier's `data` object.
pub(crate) const IDENT_DATA_KEYS: [&str; 7] =
    ["unitNum", "name", "district", "department", "subdivision", "rank", "group"];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether the Content-Type header names `application/json` (parameters allowed).
pub(crate) fn is_json_content_type(ct: Option<&str>) -> bool {
    match ct {
        Some(ct) => ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"),
        None => false,
    }
}

/// Collects violations with a location prefix.
struct Check<'a> {
    out: &'a mut Vec<String>,
}

impl Check<'_> {
    fn push(&mut self, s: String) {
        self.out.push(s);
    }

    fn unknown_keys(&mut self, o: &Map<String, Value>, allowed: &[&str], ctx: &str) {
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                self.push(format!("{ctx}: unknown key `{k}`"));
            }
        }
    }

    /// A string field; `nonempty` also refuses "" and whitespace-only strings.
    fn string(&mut self, o: &Map<String, Value>, key: &str, ctx: &str, required: bool, nonempty: bool) {
        match o.get(key) {
            None if required => self.push(format!("{ctx}: required field `{key}` is missing")),
            None => {}
            Some(Value::String(s)) if nonempty && s.trim().is_empty() => {
                self.push(format!("{ctx}.{key}: must not be empty"))
            }
            Some(Value::String(_)) => {}
            Some(v) => self.push(format!("{ctx}.{key}: expected string, got {}", kind(v))),
        }
    }

    fn boolean(&mut self, o: &Map<String, Value>, key: &str, ctx: &str) {
        if let Some(v) = o.get(key) {
            if !v.is_boolean() {
                self.push(format!("{ctx}.{key}: expected boolean, got {}", kind(v)));
            }
        }
    }

    /// An integer among `allowed`; returns it when it is one.
    fn int_in(&mut self, o: &Map<String, Value>, key: &str, ctx: &str, required: bool, allowed: &[i64]) -> Option<i64> {
        match o.get(key) {
            None => {
                if required {
                    self.push(format!("{ctx}: required field `{key}` is missing"));
                }
                None
            }
            Some(v) => match v.as_i64() {
                Some(n) if kind(v) == "integer" && allowed.contains(&n) => Some(n),
                Some(n) if kind(v) == "integer" => {
                    self.push(format!("{ctx}.{key}: {n} is not one of {allowed:?}"));
                    None
                }
                _ => {
                    self.push(format!("{ctx}.{key}: expected integer, got {}", kind(v)));
                    None
                }
            },
        }
    }

    /// Exactly one of `keys` must be present.
    fn exactly_one(&mut self, o: &Map<String, Value>, keys: &[&str], ctx: &str) {
        let n = keys.iter().filter(|k| o.contains_key(**k)).count();
        if n != 1 {
            let list = keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            if n == 0 {
                self.push(format!("{ctx}: one of {list} is required"));
            } else {
                self.push(format!("{ctx}: only one of {list} may be given"));
            }
        }
    }

    fn permission_list(&mut self, o: &Map<String, Value>, key: &str, ctx: &str) {
        match o.get(key) {
            None => {}
            Some(Value::Array(items)) => {
                for (i, it) in items.iter().enumerate() {
                    match it {
                        Value::String(s) if permission_key(s).is_some() => {}
                        Value::String(s) => self.push(format!("{ctx}.{key}[{i}]: unknown permission name `{s}`")),
                        v => self.push(format!("{ctx}.{key}[{i}]: expected string, got {}", kind(v))),
                    }
                }
            }
            Some(v) => self.push(format!("{ctx}.{key}: expected array, got {}", kind(v))),
        }
    }
}

/// All wire-format problems of a request to a known route. `ty` is the route's type, or for
/// the generic route the body's type when it names a known one (`None`: only the envelope is
/// checked). Keys beyond `id`, `key`, `type` and `data` in the envelope (the official
/// JavaScript SDK adds `"product": 0`) are violations only when `strict_envelope` is set.
pub(crate) fn violations(
    ty: Option<ApiType>,
    content_type: Option<&str>,
    utf8: bool,
    body: &Value,
    strict_envelope: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = Check { out: &mut out };
    match content_type {
        None => c.push("Content-Type header is missing (expected application/json)".into()),
        Some(ct) if !is_json_content_type(Some(ct)) => {
            c.push(format!("Content-Type is `{ct}`, expected application/json"))
        }
        _ => {}
    }
    if !utf8 {
        c.push("body is not valid UTF-8".into());
    }
    let Value::Object(env) = body else {
        c.push("body is not a JSON object".into());
        return out;
    };
    if strict_envelope {
        c.unknown_keys(env, &["id", "key", "type", "data"], "envelope");
    }
    c.string(env, "id", "envelope", true, false);
    c.string(env, "key", "envelope", true, false);
    c.string(env, "type", "envelope", true, false);
    // GET_VERSION and GET_SERVERS take no request object: `data` may be left out or empty.
    let is_version = matches!(ty, Some(ApiType::GetVersion | ApiType::GetServers));
    let data = match env.get("data") {
        None if is_version => return out,
        None => {
            c.push("envelope: required field `data` is missing".into());
            return out;
        }
        Some(Value::Array(items)) => items,
        Some(v) => {
            c.push(format!("envelope.data: expected array, got {}", kind(v)));
            return out;
        }
    };
    if data.is_empty() && !is_version {
        c.push("envelope.data: must not be empty".into());
    }
    let Some(ty) = ty else { return out };
    for (i, item) in data.iter().enumerate() {
        let ctx = format!("data[{i}]");
        let Value::Object(o) = item else {
            c.push(format!("{ctx}: expected object, got {}", kind(item)));
            continue;
        };
        check_item(&mut c, ty, o, &ctx);
    }
    out
}

fn check_item(c: &mut Check<'_>, ty: ApiType, o: &Map<String, Value>, ctx: &str) {
    match ty {
        ApiType::GetVersion | ApiType::GetServers => c.unknown_keys(o, &[], ctx),
        ApiType::CheckApiId => {
            c.unknown_keys(o, &["apiId"], ctx);
            c.string(o, "apiId", ctx, true, true);
        }
        ApiType::GetAccount => {
            let sel = ["apiId", "username", "account"];
            c.unknown_keys(o, &sel, ctx);
            c.exactly_one(o, &sel, ctx);
            for k in sel {
                c.string(o, k, ctx, false, true);
            }
        }
        ApiType::SetApiId => {
            c.unknown_keys(o, &["username", "account", "sessionId", "id1", "id2", "apiIds", "pushNew"], ctx);
            c.exactly_one(o, &["username", "account"], ctx);
            c.string(o, "username", ctx, false, true);
            c.string(o, "account", ctx, false, true);
            c.string(o, "sessionId", ctx, false, false);
            let pair = o.contains_key("id1") || o.contains_key("id2");
            let list = o.contains_key("apiIds");
            if pair && list {
                c.push(format!("{ctx}: use either `id1`/`id2` or `apiIds`, not both"));
            } else if !pair && !list {
                c.push(format!("{ctx}: one of `id1`, `id2` or `apiIds` is required"));
            }
            c.string(o, "id1", ctx, false, false);
            c.string(o, "id2", ctx, false, false);
            match o.get("apiIds") {
                None => {}
                Some(Value::Array(items)) => {
                    for (i, it) in items.iter().enumerate() {
                        if !it.is_string() {
                            c.push(format!("{ctx}.apiIds[{i}]: expected string, got {}", kind(it)));
                        }
                    }
                }
                Some(v) => c.push(format!("{ctx}.apiIds: expected array, got {}", kind(v))),
            }
            c.boolean(o, "pushNew", ctx);
            if o.contains_key("pushNew") && !list {
                c.push(format!("{ctx}.pushNew: only valid with `apiIds`"));
            }
        }
        ApiType::LinkCharacter => {
            c.unknown_keys(o, &["apiId", "syncId", "action"], ctx);
            c.string(o, "apiId", ctx, true, true);
            c.string(o, "syncId", ctx, true, true);
            c.int_in(o, "action", ctx, true, &[0, 2]);
        }
        ApiType::ModifyIdentifier => {
            c.unknown_keys(o, &["apiId", "account", "action", "identifier", "identId"], ctx);
            c.exactly_one(o, &["apiId", "account"], ctx);
            c.string(o, "apiId", ctx, false, true);
            c.string(o, "account", ctx, false, true);
            let action = c.int_in(o, "action", ctx, true, &[0, 1, 2]);
            match (action, o.get("identifier")) {
                (Some(0 | 1), None) => c.push(format!("{ctx}: required field `identifier` is missing (ADD and EDIT)")),
                (Some(2), Some(_)) => c.push(format!("{ctx}.identifier: only valid for ADD and EDIT")),
                _ => {}
            }
            if let Some(v) = o.get("identifier") {
                check_identifier(c, v, &format!("{ctx}.identifier"));
            }
            match (action, o.get("identId")) {
                (Some(2), None) => c.push(format!("{ctx}: required field `identId` is missing (REMOVE)")),
                (Some(0), Some(_)) => c.push(format!("{ctx}.identId: not valid for ADD")),
                _ => {}
            }
            if let Some(v) = o.get("identId") {
                if v.as_u64().is_none() || kind(v) != "integer" {
                    c.push(format!("{ctx}.identId: expected non-negative integer, got {}", kind(v)));
                }
            }
        }
        ApiType::SetAccountPermissions => {
            c.unknown_keys(o, &["apiId", "username", "accId", "add", "remove", "set", "active", "join"], ctx);
            c.exactly_one(o, &["apiId", "username", "accId"], ctx);
            for k in ["apiId", "username", "accId"] {
                c.string(o, k, ctx, false, true);
            }
            for k in ["add", "remove", "set"] {
                c.permission_list(o, k, ctx);
            }
            c.boolean(o, "active", ctx);
            c.boolean(o, "join", ctx);
            if o.contains_key("join") && !o.contains_key("accId") {
                c.push(format!("{ctx}.join: only valid with `accId`"));
            }
        }
    }
}

fn check_identifier(c: &mut Check<'_>, v: &Value, ctx: &str) {
    let Value::Object(o) = v else {
        c.push(format!("{ctx}: expected object, got {}", kind(v)));
        return;
    };
    c.unknown_keys(o, &["status", "location", "aop", "data"], ctx);
    c.int_in(o, "status", ctx, false, &[0, 1, 2, 3, 4]);
    c.string(o, "location", ctx, false, false);
    c.string(o, "aop", ctx, false, false);
    match o.get("data") {
        None => {}
        Some(Value::Object(d)) => {
            let dctx = format!("{ctx}.data");
            c.unknown_keys(d, &IDENT_DATA_KEYS, &dctx);
            for k in IDENT_DATA_KEYS {
                c.string(d, k, &dctx, false, false);
            }
        }
        Some(v) => c.push(format!("{ctx}.data: expected object, got {}", kind(v))),
    }
}
