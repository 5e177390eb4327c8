//! In-memory community state (accounts, unit identifiers) and what each request type does to
//! it. Everything here is synchronous: the caller holds the state lock only for the duration
//! of one `apply` call, never across an await.

use serde::Serialize;
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

use super::fixture::Fixture;
use super::wire::{permission_key, ApiType, IDENT_DATA_KEYS, PERMISSION_KEYS};

pub(crate) const NOT_LINKED: &str = "API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY";
pub(crate) const IDENT_NOT_FOUND: &str = "IDENTIFIER NOT FOUND";

#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub uuid: String,
    pub username: String,
    pub status: i64,
    pub joined: Option<String>,
    pub last_login: Option<String>,
    pub permissions: Map<String, Value>,
    pub api_ids: Vec<String>,
    pub sync_ids: Vec<String>,
    /// v2's one link per account.
    pub community_user_id: Option<String>,
    pub secret_uuid: String,
}

impl Account {
    /// The account object as GET_ACCOUNT answers it.
    pub(crate) fn wire_json(&self) -> Value {
        serde_json::to_value(self.wire()).unwrap_or(Value::Null)
    }

    /// Serialized in the documented field order.
    pub(crate) fn wire(&self) -> WireAccount<'_> {
        WireAccount {
            uuid: &self.uuid,
            username: &self.username,
            status: self.status,
            joined: self.joined.as_deref(),
            last_login: self.last_login.as_deref(),
            permissions: &self.permissions,
            api_ids: &self.api_ids,
        }
    }

    /// The account object plus emulator-side extras (linked character sync IDs).
    pub(crate) fn snapshot_json(&self) -> Value {
        let mut v = self.wire_json();
        v["syncIds"] = json!(self.sync_ids);
        v["communityUserId"] = json!(self.community_user_id);
        v["secretUuid"] = json!(self.secret_uuid);
        v
    }
}

/// The account object in GET_ACCOUNT's field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAccount<'a> {
    uuid: &'a str,
    username: &'a str,
    status: i64,
    joined: Option<&'a str>,
    last_login: Option<&'a str>,
    permissions: &'a Map<String, Value>,
    api_ids: &'a [String],
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Identifier {
    pub id: u64,
    pub acc_id: String,
    pub status: i64,
    pub location: String,
    pub aop: String,
    pub data: Map<String, Value>,
}

impl Identifier {
    pub(crate) fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One element's answer: text, or a JSON document already serialized in field order.
pub(crate) enum Answer {
    Text(String),
    Json(String),
}

/// One element's failure: HTTP status and plain-text body.
pub(crate) type Failure = (u16, String);

pub(crate) struct State {
    pub version: u32,
    pub servers: Vec<Value>,
    pub accounts: Vec<Account>,
    pub identifiers: Vec<Identifier>,
    pub next_ident: u64,
    /// v2 link codes: code, the communityUserId it links, when it expires.
    pub link_codes: Vec<(String, String, std::time::Instant)>,
    pub next_code: u64,
}

impl State {
    pub(crate) fn from_fixture(f: &Fixture) -> State {
        let accounts = f
            .accounts
            .iter()
            .map(|a| Account {
                uuid: a.uuid.clone(),
                username: a.username.clone(),
                status: a.status,
                joined: a.joined.clone(),
                last_login: a.last_login.clone(),
                permissions: a.permissions.clone(),
                api_ids: a.api_ids.clone(),
                sync_ids: a.sync_ids.clone(),
                community_user_id: a.community_user_id.clone(),
                secret_uuid: a.secret_uuid.clone().unwrap_or_else(|| derived_secret(&a.uuid)),
            })
            .collect();
        let identifiers: Vec<Identifier> = f
            .identifiers
            .iter()
            .map(|i| Identifier {
                id: i.id,
                acc_id: i.acc_id.clone(),
                status: i.status,
                location: i.location.clone(),
                aop: i.aop.clone(),
                data: i.data.clone(),
            })
            .collect();
        let next_ident = identifiers.iter().map(|i| i.id).max().unwrap_or(0) + 1;
        State {
            version: f.version,
            servers: f.servers.clone(),
            accounts,
            identifiers,
            next_ident,
            link_codes: Vec::new(),
            next_code: 0,
        }
    }

    pub(crate) fn snapshot(&self) -> Value {
        json!({
            "version": self.version,
            "accounts": self.accounts.iter().map(Account::snapshot_json).collect::<Vec<_>>(),
            "identifiers": self.identifiers.iter().map(Identifier::json).collect::<Vec<_>>(),
            "nextIdentifierId": self.next_ident,
        })
    }

    /// Index of the account holding `api_id` (trimmed; exact, case-sensitive; "" never matches):
    /// one of its legacy API IDs, or its v2 `communityUserId` (one state behind both APIs: a
    /// link made in v2 is seen by the legacy calls, and legacy API IDs count as migrated).
    pub(crate) fn by_api_id(&self, api_id: &str) -> Option<usize> {
        let id = api_id.trim();
        if id.is_empty() {
            return None;
        }
        self.accounts
            .iter()
            .position(|a| a.community_user_id.as_deref() == Some(id))
            .or_else(|| self.accounts.iter().position(|a| a.api_ids.iter().any(|x| x == id)))
    }

    /// Username lookups ignore ASCII case; uuid lookups are exact.
    pub(crate) fn by_username(&self, name: &str) -> Option<usize> {
        let name = name.trim();
        self.accounts.iter().position(|a| a.username.eq_ignore_ascii_case(name))
    }

    pub(crate) fn by_uuid(&self, uuid: &str) -> Option<usize> {
        let uuid = uuid.trim();
        self.accounts.iter().position(|a| a.uuid == uuid)
    }

    /// Finds the account named by whichever selector key the element carries.
    fn select(&self, o: &Map<String, Value>, uuid_key: &str) -> Option<usize> {
        if let Some(s) = o.get("apiId").and_then(Value::as_str) {
            self.by_api_id(s)
        } else if let Some(s) = o.get("username").and_then(Value::as_str) {
            self.by_username(s)
        } else if let Some(s) = o.get(uuid_key).and_then(Value::as_str) {
            self.by_uuid(s)
        } else {
            None
        }
    }

    /// Applies one already-validated request element. Returns the answer and whether state
    /// changed.
    pub(crate) fn apply(&mut self, ty: ApiType, o: &Map<String, Value>) -> Result<(Answer, bool), Failure> {
        let not_linked = || (404u16, NOT_LINKED.to_string());
        match ty {
            ApiType::GetVersion => Ok((Answer::Text(self.version.to_string()), false)),
            ApiType::GetServers => Ok((Answer::Json(json!({ "servers": self.servers }).to_string()), false)),
            ApiType::CheckApiId => {
                let id = o.get("apiId").and_then(Value::as_str).unwrap_or("");
                let i = self.by_api_id(id).ok_or_else(not_linked)?;
                Ok((Answer::Text(self.accounts[i].username.clone()), false))
            }
            ApiType::GetAccount => {
                let i = self.select(o, "account").ok_or_else(not_linked)?;
                Ok((Answer::Json(to_json(&self.accounts[i].wire())), false))
            }
            ApiType::SetApiId => {
                let i = self.select(o, "account").ok_or_else(not_linked)?;
                let acc = &mut self.accounts[i];
                if let Some(list) = o.get("apiIds").and_then(Value::as_array) {
                    let mut fresh: Vec<String> = Vec::with_capacity(list.len());
                    for s in list.iter().filter_map(Value::as_str).map(str::trim) {
                        if !s.is_empty() && !fresh.iter().any(|x| x == s) {
                            fresh.push(s.to_string());
                        }
                    }
                    let push_new = o.get("pushNew").and_then(Value::as_bool).unwrap_or(true);
                    if push_new {
                        for s in fresh {
                            if !acc.api_ids.contains(&s) {
                                acc.api_ids.push(s);
                            }
                        }
                    } else {
                        acc.api_ids = fresh;
                    }
                } else {
                    for (slot, key) in [(0usize, "id1"), (1, "id2")] {
                        if let Some(s) = o.get(key).and_then(Value::as_str) {
                            while acc.api_ids.len() < 2 {
                                acc.api_ids.push(String::new());
                            }
                            acc.api_ids[slot] = s.trim().to_string();
                        }
                    }
                }
                Ok((Answer::Text("API ID(s) set!".into()), true))
            }
            ApiType::SetAccountPermissions => {
                let i = self.select(o, "accId").ok_or_else(not_linked)?;
                let acc = &mut self.accounts[i];
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
                    for k in names("set") {
                        acc.permissions.insert(k.to_string(), Value::Bool(true));
                    }
                } else {
                    for k in names("add") {
                        acc.permissions.insert(k.to_string(), Value::Bool(true));
                    }
                    for k in names("remove") {
                        acc.permissions.insert(k.to_string(), Value::Bool(false));
                    }
                }
                if let Some(active) = o.get("active").and_then(Value::as_bool) {
                    acc.status = if active { 1 } else { 0 };
                }
                if o.get("join").and_then(Value::as_bool) == Some(true) && acc.joined.is_none() {
                    acc.joined = Some(iso_now());
                }
                Ok((Answer::Text("User account permissions updated.".into()), true))
            }
            ApiType::LinkCharacter => {
                let api_id = o.get("apiId").and_then(Value::as_str).unwrap_or("");
                let i = self.by_api_id(api_id).ok_or_else(not_linked)?;
                let sync = o.get("syncId").and_then(Value::as_str).unwrap_or("").trim().to_string();
                let acc = &mut self.accounts[i];
                let text = if o.get("action").and_then(Value::as_i64) == Some(2) {
                    acc.sync_ids.retain(|s| *s != sync);
                    format!("Unlinked char sync ID '{sync}' from user '{}' - {}", acc.username, acc.uuid)
                } else {
                    if !acc.sync_ids.contains(&sync) {
                        acc.sync_ids.push(sync.clone());
                    }
                    format!("Linked char sync ID '{sync}' to user '{}' - {}", acc.username, acc.uuid)
                };
                Ok((Answer::Text(text), true))
            }
            ApiType::ModifyIdentifier => {
                let i = self.select(o, "account").ok_or_else(not_linked)?;
                let uuid = self.accounts[i].uuid.clone();
                let action = o.get("action").and_then(Value::as_i64).unwrap_or(-1);
                let ident_id = o.get("identId").and_then(Value::as_u64);
                let not_found = || (404u16, IDENT_NOT_FOUND.to_string());
                let patch = o.get("identifier").and_then(Value::as_object);
                match action {
                    0 => {
                        let mut ident = Identifier {
                            id: self.next_ident,
                            acc_id: uuid,
                            status: 0,
                            location: String::new(),
                            aop: String::new(),
                            data: IDENT_DATA_KEYS
                                .iter()
                                .map(|k| (k.to_string(), Value::String(String::new())))
                                .collect(),
                        };
                        if let Some(p) = patch {
                            merge_identifier(&mut ident, p);
                        }
                        self.next_ident += 1;
                        let v = to_json(&ident);
                        self.identifiers.push(ident);
                        Ok((Answer::Json(v), true))
                    }
                    1 => {
                        let pos = match ident_id {
                            Some(id) => self.identifiers.iter().position(|x| x.id == id && x.acc_id == uuid),
                            None => self.identifiers.iter().position(|x| x.acc_id == uuid),
                        }
                        .ok_or_else(not_found)?;
                        let ident = &mut self.identifiers[pos];
                        if let Some(p) = patch {
                            merge_identifier(ident, p);
                        }
                        Ok((Answer::Json(to_json(&*ident)), true))
                    }
                    _ => {
                        let id = ident_id.unwrap_or(0);
                        let pos = self
                            .identifiers
                            .iter()
                            .position(|x| x.id == id && x.acc_id == uuid)
                            .ok_or_else(not_found)?;
                        self.identifiers.remove(pos);
                        Ok((Answer::Text(format!("Identifier {id} removed!")), true))
                    }
                }
            }
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn merge_identifier(ident: &mut Identifier, p: &Map<String, Value>) {
    if let Some(s) = p.get("status").and_then(Value::as_i64) {
        ident.status = s;
    }
    if let Some(s) = p.get("location").and_then(Value::as_str) {
        ident.location = s.to_string();
    }
    if let Some(s) = p.get("aop").and_then(Value::as_str) {
        ident.aop = s.to_string();
    }
    if let Some(d) = p.get("data").and_then(Value::as_object) {
        for (k, v) in d {
            ident.data.insert(k.clone(), v.clone());
        }
    }
}

/// A secret UUID derived from an account's uuid, for fixtures that give none: the uuid's hex
/// digits reversed (stable, and never the uuid itself).
fn derived_secret(uuid: &str) -> String {
    let hex: String = uuid.chars().filter(char::is_ascii_hexdigit).rev().collect();
    let hex = format!("{hex:0<32}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Current UTC time in the account object's format, e.g. `2019-10-12T20:41:52.400299`.
pub(crate) fn iso_now() -> String {
    iso_after(0)
}

/// The UTC time `secs` from now, in the same format.
pub(crate) fn iso_after(secs: u64) -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + std::time::Duration::from_secs(secs);
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_micros()
    )
}
