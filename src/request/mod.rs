//! Typed requests and their validation. Nothing is sent unless it passes: the backend
//! blacklists communities that send malformed requests.

mod fields;

pub(crate) use fields::is_uuid;

use crate::error::Refusal;
use crate::text::{check_type_name, printable};
use fields::Fields;
use serde_json::{json, Value};
use std::sync::Arc;

/// The 43 permission names SET_ACCOUNT_PERMISSIONS accepts.
pub const PERMISSIONS: [&str; 43] = [
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

/// The request types with typed validation; everything else is [`Kind::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    SetApiId,
    LinkCharacter,
    ModifyIdentifier,
    SetAccountPermissions,
    GetAccount,
    CheckApiId,
    Other,
}

impl Kind {
    /// The type name of a typed kind (`None` for `Other`).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Kind::SetApiId => "SET_API_ID",
            Kind::LinkCharacter => "LINK_CHARACTER",
            Kind::ModifyIdentifier => "MODIFY_IDENTIFIER",
            Kind::SetAccountPermissions => "SET_ACCOUNT_PERMISSIONS",
            Kind::GetAccount => "GET_ACCOUNT",
            Kind::CheckApiId => "CHECK_APIID",
            Kind::Other => return None,
        })
    }

    /// The kind of a type name.
    pub fn of(request_type: &str) -> Kind {
        match request_type {
            "SET_API_ID" => Kind::SetApiId,
            "LINK_CHARACTER" => Kind::LinkCharacter,
            "MODIFY_IDENTIFIER" => Kind::ModifyIdentifier,
            "SET_ACCOUNT_PERMISSIONS" => Kind::SetAccountPermissions,
            "GET_ACCOUNT" => Kind::GetAccount,
            "CHECK_APIID" => Kind::CheckApiId,
            _ => Kind::Other,
        }
    }
}

/// Which of the vendor's APIs the client speaks (`api_version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// The seeds' API: `POST /{section}/{type}` with the `{id, key, type, data}` envelope.
    Legacy,
    /// The REST API under `/v2/`, `Authorization: Bearer`, problem+json errors.
    V2,
}

/// Which SET_API_ID form the tablet flow sends (`set_api_id_form`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum SetApiIdForm {
    /// `{"apiIds": [id], "pushNew": true}` (current).
    #[serde(rename = "apiIds")]
    ApiIds,
    /// `{"id1": id}` (the seed's form).
    #[serde(rename = "id1")]
    Id1,
}

/// One validated API call: its type and its request objects. The fields are the library's own
/// request vocabulary (the seeds' names); each API's room turns them into its wire format.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub request_type: Arc<str>,
    pub data: Vec<Value>,
}

impl Call {
    /// The kind of the call's type.
    pub fn kind(&self) -> Kind {
        Kind::of(&self.request_type)
    }

    /// A typed call validated for an API: the legacy rows (the seeds' fields), or v2's (its
    /// selectors `communityUserId`, `accountUuid`, `username`, `discord`, `roblox`, with the
    /// legacy names as aliases; one request object; no `sessionId`, `id1` or `id2`).
    pub fn for_api(api: ApiVersion, kind: Kind, data: Value) -> Result<Call, Refusal> {
        let Some(name) = kind.name() else {
            return Err(Refusal::field("type", "not a typed call"));
        };
        if api == ApiVersion::V2 {
            if let Value::Array(items) = &data {
                if items.len() > 1 {
                    return Err(Refusal::field("data", "v2 takes one request object per call (one account per route)"));
                }
            }
        }
        Call::typed_for(name, kind, data, api == ApiVersion::V2)
    }

    /// A v2 call to any route: `method` (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`), `path` under
    /// `/v2/` (its query included, values percent-encoded by the caller), and a JSON body or
    /// none. Its result's type is `"METHOD /v2/path"`.
    pub fn v2_request(method: &str, path: &str, body: Option<Value>) -> Result<Call, Refusal> {
        let method = method.trim().to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            return Err(Refusal::field("method", "expected GET, POST, PUT, PATCH or DELETE"));
        }
        let ok = path.starts_with("/v2/")
            && path.len() <= 2048
            && path.bytes().all(|b| b.is_ascii_graphic() && !b"\"\\<>^`{|}#".contains(&b));
        if !ok {
            return Err(Refusal::field(
                "path",
                "expected a path under /v2/ (percent-encoded, no spaces or quotes), e.g. \"/v2/general/version\"",
            ));
        }
        if body.as_ref().is_some_and(|b| !b.is_object() && !b.is_array() && !b.is_null()) {
            return Err(Refusal::field("body", "expected a JSON object or array, or null for no body"));
        }
        let route = path.split('?').next().unwrap_or(path);
        let data = serde_json::json!({ "path": path, "body": body.unwrap_or(Value::Null) });
        Ok(Call { request_type: format!("{method} {route}").into(), data: vec![data] })
    }

    /// A call the library's own flows build from values they checked (no further validation).
    pub(crate) fn internal(request_type: &str, data: Value) -> Call {
        Call { request_type: request_type.into(), data: vec![data] }
    }

    /// The SET_API_ID the tablet flow sends: the captured username and session, and the
    /// player's API ID in the configured form.
    pub fn link_api_id(username: &str, session_id: &str, api_id: &str, form: SetApiIdForm) -> Result<Call, Refusal> {
        Call::set_api_id(match form {
            SetApiIdForm::ApiIds => {
                json!({"username": username, "sessionId": session_id, "apiIds": [api_id], "pushNew": true})
            }
            SetApiIdForm::Id1 => json!({"username": username, "sessionId": session_id, "id1": api_id}),
        })
    }

    /// SET_API_ID: `username` or `account`, optional `sessionId`, and either `apiIds` (+ `pushNew`)
    /// or the older `id1` / `id2`.
    pub fn set_api_id(data: Value) -> Result<Call, Refusal> {
        Call::typed("SET_API_ID", Kind::SetApiId, data)
    }
    /// LINK_CHARACTER: `apiId`, `syncId`, `action` (0 / "ADD", 2 / "REMOVE").
    pub fn link_character(data: Value) -> Result<Call, Refusal> {
        Call::typed("LINK_CHARACTER", Kind::LinkCharacter, data)
    }
    /// MODIFY_IDENTIFIER: `apiId` or `account`, `action` (0 ADD, 1 EDIT, 2 REMOVE),
    /// `identifier` for ADD / EDIT, `identId` for REMOVE (optional for EDIT).
    pub fn modify_identifier(data: Value) -> Result<Call, Refusal> {
        Call::typed("MODIFY_IDENTIFIER", Kind::ModifyIdentifier, data)
    }
    /// SET_ACCOUNT_PERMISSIONS: one of `apiId`, `username`, `accId`; `add`, `remove`, `set`,
    /// `active`, `join` (with `accId` only).
    pub fn set_account_permissions(data: Value) -> Result<Call, Refusal> {
        Call::typed("SET_ACCOUNT_PERMISSIONS", Kind::SetAccountPermissions, data)
    }
    /// GET_ACCOUNT: one of `apiId`, `username`, `account`.
    pub fn get_account(data: Value) -> Result<Call, Refusal> {
        Call::typed("GET_ACCOUNT", Kind::GetAccount, data)
    }
    /// CHECK_APIID: `apiId`.
    pub fn check_api_id(data: Value) -> Result<Call, Refusal> {
        Call::typed("CHECK_APIID", Kind::CheckApiId, data)
    }

    /// Any API type. The six typed ones are validated as above; for others `data` must be an
    /// object, an array of objects, or null (sent as `[]`).
    pub fn generic(request_type: &str, data: Value) -> Result<Call, Refusal> {
        check_type_name("type", request_type).map_err(|_| {
            Refusal::field(
                "type",
                format!("'{}' is not an API type name (expected upper-case like UNIT_STATUS)", printable(request_type)),
            )
        })?;
        let kind = Kind::of(request_type);
        if kind != Kind::Other {
            return Call::typed(request_type, kind, data);
        }
        let data = match data {
            Value::Null => Vec::new(),
            Value::Object(_) => vec![data],
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_object() {
                        return Err(Refusal::field(format!("data[{i}]"), "expected a request object"));
                    }
                }
                items
            }
            _ => return Err(Refusal::field("data", "expected a request object or an array of them")),
        };
        Ok(Call { request_type: request_type.into(), data })
    }

    fn typed(request_type: &str, kind: Kind, data: Value) -> Result<Call, Refusal> {
        Call::typed_for(request_type, kind, data, false)
    }

    fn typed_for(request_type: &str, kind: Kind, data: Value, v2: bool) -> Result<Call, Refusal> {
        let (items, single) = match data {
            Value::Object(_) => (vec![data], true),
            Value::Array(items) if items.is_empty() => {
                return Err(Refusal::field("data", format!("expected at least one {request_type} request object")))
            }
            Value::Array(items) => (items, false),
            _ => {
                return Err(Refusal::field(
                    "data",
                    format!("expected a {request_type} request object or an array of them"),
                ))
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = if single { "data".to_string() } else { format!("data[{i}]") };
            let Value::Object(obj) = item else {
                return Err(Refusal::field(path, "expected a request object"));
            };
            let v = Fields::new(obj, path, request_type, v2);
            out.push(Value::Object(match kind {
                Kind::SetApiId => v.set_api_id()?,
                Kind::LinkCharacter => v.link_character()?,
                Kind::ModifyIdentifier => v.modify_identifier()?,
                Kind::SetAccountPermissions => v.set_account_permissions()?,
                Kind::GetAccount => v.get_account()?,
                Kind::CheckApiId => v.check_api_id()?,
                Kind::Other => unreachable!("typed() is only called for typed kinds"),
            }));
        }
        Ok(Call { request_type: request_type.into(), data: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn permissions_are_43_distinct_names() {
        let mut v = PERMISSIONS.to_vec();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), 43);
        assert!(!PERMISSIONS.contains(&"POLICERECEDIT"));
    }

    #[test]
    fn misspelt_permission_is_refused_with_a_hint() {
        let e = Call::set_account_permissions(json!({"apiId": "x", "add": ["POLICE", "POLICERECEDIT"]})).unwrap_err();
        assert!(e.message().starts_with("data.add[1]:"), "{e}");
        assert!(e.message().contains("POLRECEDIT"), "{e}");
    }

    #[test]
    fn set_api_id_forms() {
        assert!(Call::set_api_id(json!({"username": "a", "apiIds": ["1"]})).is_ok());
        assert!(Call::set_api_id(json!({"username": "a", "id1": "1"})).is_ok());
        assert!(Call::set_api_id(json!({"account": "u", "apiIds": [], "pushNew": false})).is_ok());
        let e = Call::set_api_id(json!({"username": "a", "id1": "1", "apiIds": ["2"]})).unwrap_err();
        assert!(e.message().starts_with("data.apiIds:"), "{e}");
        let e = Call::set_api_id(json!([{"username": "a", "apiIds": ["1"]}, {"apiIds": ["2"]}])).unwrap_err();
        assert!(e.message().starts_with("data[1]:"), "{e}");
        let e = Call::set_api_id(json!({"username": "a", "apiIds": ["1", 2]})).unwrap_err();
        assert!(e.message().starts_with("data.apiIds[1]:"), "{e}");
        let e = Call::set_api_id(json!({"username": "a", "apiIds": ["1"], "extra": 1})).unwrap_err();
        assert!(e.message().starts_with("data.extra:"), "{e}");
    }

    #[test]
    fn actions_by_name_become_numbers() {
        let c = Call::link_character(json!({"apiId": "a", "syncId": "s", "action": "REMOVE"})).unwrap();
        assert_eq!(c.data[0]["action"], json!(2));
        assert!(Call::link_character(json!({"apiId": "a", "syncId": "s", "action": 1})).is_err());
        let c = Call::modify_identifier(
            json!({"apiId": "a", "action": "ADD", "identifier": {"status": "AVAILABLE", "data": {"unitNum": 12}}}),
        )
        .unwrap();
        assert_eq!(c.data[0]["identifier"]["status"], json!(2));
        assert_eq!(c.data[0]["identifier"]["data"]["unitNum"], json!("12"));
        assert!(Call::modify_identifier(json!({"apiId": "a", "action": 2})).is_err());
        assert!(Call::modify_identifier(json!({"apiId": "a", "action": 2, "identId": 4})).is_ok());
    }

    #[test]
    fn generic_routes_typed_types_through_validation() {
        assert!(Call::generic("GET_ACCOUNT", json!({})).is_err());
        assert!(Call::generic("UNIT_STATUS", json!({"apiId": "x", "status": 2})).is_ok());
        assert!(Call::generic("unit_status", json!({})).is_err());
        assert_eq!(Call::generic("GET_VERSION", Value::Null).unwrap().data, Vec::<Value>::new());
    }
}
