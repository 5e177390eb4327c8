//! Validation of the six typed request objects, field by field, with refusals that name the
//! field (`data[0].apiIds[1]: must not be empty`).

use super::PERMISSIONS;
use crate::error::Refusal;
use crate::text::printable;
use serde_json::{Map, Value};

/// Longest string accepted in a field.
const MAX_FIELD: usize = 256;

pub(super) struct Fields<'a> {
    obj: Map<String, Value>,
    path: String,
    request_type: &'a str,
    /// The v2 rows: v2's selectors beside the legacy names (their aliases), no legacy-only
    /// fields.
    v2: bool,
}

/// v2's selectors and the legacy names that stand for them (`apiId` for `communityUserId`,
/// `account` / `accId` for `accountUuid`), for the routes that take all five.
const V2_SELECTORS: &[&str] =
    &["communityUserId", "apiId", "accountUuid", "account", "accId", "username", "discord", "roblox"];

impl<'a> Fields<'a> {
    pub(super) fn new(obj: Map<String, Value>, path: String, request_type: &'a str, v2: bool) -> Fields<'a> {
        Fields { obj, path, request_type, v2 }
    }

    /// The account selectors of a type: the legacy list, or v2's.
    fn selectors(&self, legacy: &'static [&'static str], v2: &'static [&'static str]) -> &'static [&'static str] {
        if self.v2 {
            v2
        } else {
            legacy
        }
    }

    /// The fields a type takes: its own plus its selectors.
    fn allow(&self, own: &[&str], selectors: &[&str]) -> Result<(), Refusal> {
        if self.v2 {
            self.refuse_legacy_only()?;
        }
        let all: Vec<&str> = selectors.iter().chain(own).copied().collect();
        self.allow_only(&all)
    }

    /// Fields v2 does not have, refused with what v2 uses instead.
    fn refuse_legacy_only(&self) -> Result<(), Refusal> {
        if self.obj.contains_key("sessionId") {
            return Err(Refusal::field(
                self.at("sessionId"),
                "is not in v2: a player is linked from the tablet's scad:account-link message (link_from_tablet) \
                 or with a link code (create_link_code)",
            ));
        }
        for k in ["id1", "id2"] {
            if self.obj.contains_key(k) {
                return Err(Refusal::field(self.at(k), "is not in v2: give apiIds (a list of API IDs) instead"));
            }
        }
        Ok(())
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn allow_only(&self, allowed: &[&str]) -> Result<(), Refusal> {
        if let Some(k) = self.obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Refusal::field(
                self.at(&printable(k)),
                format!("unknown field for {} (expected one of: {})", self.request_type, allowed.join(", ")),
            ));
        }
        Ok(())
    }

    /// Exactly one of `keys` must be present; returns it.
    fn exactly_one(&self, keys: &[&'static str]) -> Result<&'static str, Refusal> {
        let present: Vec<&'static str> = keys.iter().copied().filter(|k| self.obj.contains_key(*k)).collect();
        match present.as_slice() {
            [one] => {
                self.selector_value(one)?;
                Ok(one)
            }
            [] => Err(Refusal::field(
                &self.path,
                format!("{} needs one of {} to name the account", self.request_type, keys.join(", ")),
            )),
            many => Err(Refusal::field(
                &self.path,
                format!("give only one of {} (got {})", keys.join(", "), many.join(" and ")),
            )),
        }
    }

    /// A selector's value: `roblox` an integer, a UUID where v2 puts it in a path or checks it
    /// as one, any other a string.
    fn selector_value(&self, key: &str) -> Result<(), Refusal> {
        let v = &self.obj[key];
        if key == "roblox" {
            return v
                .as_u64()
                .map(|_| ())
                .ok_or_else(|| Refusal::field(self.at(key), "expected an integer Roblox user id"));
        }
        let s = check_string(&self.at(key), v, false)?;
        if self.v2 && matches!(key, "accountUuid" | "account" | "accId") && !is_uuid(s) {
            return Err(Refusal::field(
                self.at(key),
                "expected an account UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
            ));
        }
        Ok(())
    }

    fn string(&self, key: &str, required: bool) -> Result<Option<&str>, Refusal> {
        match self.obj.get(key) {
            None if required => Err(Refusal::field(self.at(key), "is required")),
            None => Ok(None),
            Some(v) => check_string(&self.at(key), v, false).map(Some),
        }
    }

    /// An optional string that may be empty (`id1`, `id2`).
    fn blank_or_string(&self, key: &str) -> Result<Option<&str>, Refusal> {
        self.obj.get(key).map(|v| check_string(&self.at(key), v, true)).transpose()
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, Refusal> {
        match self.obj.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Refusal::field(self.at(key), "expected true or false")),
        }
    }

    /// An enum field given as its number or its name; stored as the number.
    fn action(&mut self, names: &[(&str, u64)]) -> Result<u64, Refusal> {
        let key = "action";
        let expected = names.iter().map(|(n, v)| format!("{v} ({n})")).collect::<Vec<_>>().join(", ");
        let v = self.obj.get(key).ok_or_else(|| Refusal::field(self.at(key), format!("is required: {expected}")))?;
        let n = match v {
            Value::Number(n) => n.as_u64().filter(|n| names.iter().any(|(_, v)| v == n)),
            Value::String(s) => names.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)).map(|(_, v)| *v),
            _ => None,
        }
        .ok_or_else(|| Refusal::field(self.at(key), format!("expected {expected}")))?;
        self.obj.insert(key.to_string(), Value::from(n));
        Ok(n)
    }

    pub(super) fn set_api_id(mut self) -> Result<Map<String, Value>, Refusal> {
        let by = self.selectors(&["username", "account"], V2_SELECTORS);
        self.allow(&["sessionId", "apiIds", "pushNew", "id1", "id2"], by)?;
        self.exactly_one(by)?;
        self.string("sessionId", false)?;
        let old_form = self.obj.contains_key("id1") || self.obj.contains_key("id2");
        let new_form = self.obj.contains_key("apiIds");
        if old_form && new_form {
            return Err(Refusal::field(self.at("apiIds"), "cannot be combined with id1/id2: use one form"));
        }
        if old_form {
            if self.obj.contains_key("pushNew") {
                return Err(Refusal::field(self.at("pushNew"), "only applies to the apiIds form"));
            }
            // "If you leave one blank, it will still override the API ID": "" clears a slot.
            self.blank_or_string("id1")?;
            self.blank_or_string("id2")?;
        } else if new_form {
            let push_new = self.bool("pushNew")?.unwrap_or(true);
            let path = self.at("apiIds");
            let ids = self
                .obj
                .get_mut("apiIds")
                .and_then(Value::as_array_mut)
                .ok_or_else(|| Refusal::field(&path, "expected an array of API ID strings"))?;
            if ids.is_empty() && push_new {
                return Err(Refusal::field(&path, "is empty: give at least one API ID (an empty list only makes sense with pushNew = false, which clears them)"));
            }
            for (i, id) in ids.iter().enumerate() {
                check_string(&format!("{path}[{i}]"), id, false)?;
            }
        } else {
            return Err(Refusal::field(&self.path, "SET_API_ID needs apiIds (an array of API IDs) or id1/id2"));
        }
        Ok(self.obj)
    }

    pub(super) fn link_character(mut self) -> Result<Map<String, Value>, Refusal> {
        let by =
            self.selectors(&["apiId"], &["communityUserId", "apiId", "accountUuid", "account", "discord", "roblox"]);
        self.allow(&["syncId", "action"], by)?;
        if self.v2 {
            self.exactly_one(by)?;
        } else {
            self.string("apiId", true)?;
        }
        self.string("syncId", true)?;
        self.action(&[("ADD", 0), ("REMOVE", 2)])?;
        Ok(self.obj)
    }

    pub(super) fn modify_identifier(mut self) -> Result<Map<String, Value>, Refusal> {
        let by = self.selectors(&["apiId", "account"], &["accountUuid", "account", "communityUserId", "apiId"]);
        self.allow(&["action", "identifier", "identId"], by)?;
        self.exactly_one(by)?;
        let action = self.action(&[("ADD", 0), ("EDIT", 1), ("REMOVE", 2)])?;
        if self.v2 && action == 1 && !self.obj.contains_key("identId") {
            return Err(Refusal::field(
                self.at("identId"),
                "is required for EDIT in v2 (the route names the identifier)",
            ));
        }
        let has_ident = self.obj.contains_key("identifier");
        if let Some(v) = self.obj.get("identId") {
            if v.as_u64().is_none() {
                return Err(Refusal::field(self.at("identId"), "expected a non-negative integer identifier id"));
            }
        }
        let has_id = self.obj.contains_key("identId");
        match action {
            0 if has_id => {
                return Err(Refusal::field(self.at("identId"), "does not apply to ADD (the API assigns the id)"))
            }
            0 | 1 if !has_ident => return Err(Refusal::field(self.at("identifier"), "is required for ADD and EDIT")),
            2 if has_ident => return Err(Refusal::field(self.at("identifier"), "does not apply to REMOVE")),
            2 if !has_id => return Err(Refusal::field(self.at("identId"), "is required for REMOVE")),
            _ => {}
        }
        if has_ident {
            let path = self.at("identifier");
            let ident = self.obj.get_mut("identifier").unwrap();
            check_identifier(&path, ident)?;
        }
        Ok(self.obj)
    }

    pub(super) fn set_account_permissions(self) -> Result<Map<String, Value>, Refusal> {
        let selectors = self.selectors(&["apiId", "username", "accId"], V2_SELECTORS);
        self.allow(&["active", "add", "remove", "set", "join"], selectors)?;
        let by = self.exactly_one(selectors)?;
        self.bool("active")?;
        if self.bool("join")?.is_some() && !matches!(by, "accId" | "accountUuid" | "account") {
            let named = if self.v2 { "accountUuid (or accId)" } else { "accId" };
            return Err(Refusal::field(self.at("join"), format!("only works when the account is named by {named}")));
        }
        for list in ["add", "remove", "set"] {
            let Some(v) = self.obj.get(list) else { continue };
            let names =
                v.as_array().ok_or_else(|| Refusal::field(self.at(list), "expected an array of permission names"))?;
            for (i, name) in names.iter().enumerate() {
                let field = format!("{}[{i}]", self.at(list));
                let Some(s) = name.as_str() else {
                    return Err(Refusal::field(field, "expected a permission name string"));
                };
                if !PERMISSIONS.contains(&s) {
                    let hint = closest_permission(s).map(|p| format!(" (did you mean {p}?)")).unwrap_or_default();
                    return Err(Refusal::field(
                        field,
                        format!(
                            "'{}' is not a permission name{hint}; the 43 names are listed in the README",
                            printable(s)
                        ),
                    ));
                }
            }
        }
        if !["add", "remove", "set", "active", "join"].iter().any(|k| self.obj.contains_key(*k)) {
            return Err(Refusal::field(&self.path, "nothing to change: give add, remove, set, active or join"));
        }
        Ok(self.obj)
    }

    pub(super) fn get_account(self) -> Result<Map<String, Value>, Refusal> {
        let by = self.selectors(&["apiId", "username", "account"], V2_SELECTORS);
        self.allow(&[], by)?;
        self.exactly_one(by)?;
        Ok(self.obj)
    }

    pub(super) fn check_api_id(self) -> Result<Map<String, Value>, Refusal> {
        if self.v2 {
            self.allow(&[], &["communityUserId", "apiId"])?;
            self.exactly_one(&["communityUserId", "apiId"])?;
        } else {
            self.allow_only(&["apiId"])?;
            self.string("apiId", true)?;
        }
        Ok(self.obj)
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits, either case).
pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// A non-empty string without control characters, at most [`MAX_FIELD`] bytes.
fn check_string<'v>(field: &str, v: &'v Value, allow_empty: bool) -> Result<&'v str, Refusal> {
    let s = v.as_str().ok_or_else(|| Refusal::field(field, "expected a string"))?;
    if !allow_empty && s.trim().is_empty() {
        return Err(Refusal::field(field, "must not be empty"));
    }
    if s.chars().any(char::is_control) {
        return Err(Refusal::field(field, "must not contain control characters"));
    }
    if s.len() > MAX_FIELD {
        return Err(Refusal::field(field, format!("is longer than {MAX_FIELD} bytes")));
    }
    Ok(s)
}

/// A unit identifier object: `status`, `location`, `aop`, `data{unitNum, name, district,
/// department, subdivision, rank, group}`.
fn check_identifier(path: &str, ident: &mut Value) -> Result<(), Refusal> {
    let obj = ident.as_object_mut().ok_or_else(|| Refusal::field(path, "expected an identifier object"))?;
    const KEYS: &[&str] = &["status", "location", "aop", "data"];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(Refusal::field(
            format!("{path}.{}", printable(k)),
            format!("unknown identifier field (expected one of: {})", KEYS.join(", ")),
        ));
    }
    if let Some(v) = obj.get_mut("status") {
        const STATUS: &[(&str, u64)] =
            &[("UNAVAILABLE", 0), ("BUSY", 1), ("AVAILABLE", 2), ("ENROUTE", 3), ("ON_SCENE", 4)];
        let n = match &*v {
            Value::Number(n) => n.as_u64().filter(|n| *n <= 4),
            Value::String(s) => STATUS.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)).map(|(_, n)| *n),
            _ => None,
        }
        .ok_or_else(|| {
            Refusal::field(
                format!("{path}.status"),
                "expected 0 UNAVAILABLE, 1 BUSY, 2 AVAILABLE, 3 ENROUTE or 4 ON_SCENE",
            )
        })?;
        *v = Value::from(n);
    }
    for key in ["location", "aop"] {
        if let Some(v) = obj.get(key) {
            check_string(&format!("{path}.{key}"), v, true)?;
        }
    }
    if let Some(data) = obj.get_mut("data") {
        let dpath = format!("{path}.data");
        let d = data.as_object_mut().ok_or_else(|| Refusal::field(&dpath, "expected an object"))?;
        const DATA: &[&str] = &["unitNum", "name", "district", "department", "subdivision", "rank", "group"];
        for (k, v) in d.iter_mut() {
            if !DATA.contains(&k.as_str()) {
                return Err(Refusal::field(
                    format!("{dpath}.{}", printable(k)),
                    format!("unknown unit field (expected one of: {})", DATA.join(", ")),
                ));
            }
            if k == "unitNum" {
                if let Some(n) = v.as_i64() {
                    *v = Value::String(n.to_string());
                }
            }
            check_string(&format!("{dpath}.{k}"), v, true)?;
        }
    }
    Ok(())
}

/// The permission name closest to a misspelt one, when it is close enough to suggest.
fn closest_permission(s: &str) -> Option<&'static str> {
    let upper = s.to_ascii_uppercase();
    if let Some(p) = PERMISSIONS.iter().find(|p| **p == upper) {
        return Some(p);
    }
    PERMISSIONS
        .iter()
        .map(|p| (edit_distance(&upper, p), *p))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
