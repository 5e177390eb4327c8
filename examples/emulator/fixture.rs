//! Seed data: the community, its credentials, accounts and unit identifiers.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The default seed data, embedded so the emulator needs no file at run time.
pub const DEFAULT_FIXTURE_JSON: &str = include_str!("fixture.json");

/// Seed data for one emulated community.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub community_id: String,
    pub api_key: String,
    /// Plan version answered by GET_VERSION.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Request types answered `API IS NOT ENABLED FOR THIS COMMUNITY`.
    #[serde(default)]
    pub disabled_types: Vec<String>,
    #[serde(default)]
    pub accounts: Vec<FixtureAccount>,
    #[serde(default)]
    pub identifiers: Vec<FixtureIdentifier>,
    /// The community's game servers, answered by GET_SERVERS as `{"servers": [...]}`: each an
    /// object in the shape the official integrations read (`id`, `name`, `description`,
    /// `signal`, `mapUrl`, `mapIp`, `mapPort`, `differingOutbound`, `outboundIp`,
    /// `listenerPort`, `enableMap`, `mapType`, `isStatic`). The emulator's own choice: no
    /// document in the seeds specifies GET_SERVERS.
    #[serde(default = "default_servers")]
    pub servers: Vec<Value>,
}

fn default_version() -> u32 {
    4
}

fn default_servers() -> Vec<Value> {
    vec![serde_json::json!({
        "id": 1,
        "name": "Main Server",
        "description": "The community's first game server",
        "signal": "",
        "mapUrl": "",
        "mapIp": "",
        "mapPort": "30120",
        "differingOutbound": false,
        "outboundIp": "",
        "listenerPort": "3232",
        "enableMap": false,
        "mapType": "NORMAL",
        "isStatic": false
    })]
}

/// An account as GET_ACCOUNT shows it, plus its linked character sync IDs.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixtureAccount {
    pub uuid: String,
    pub username: String,
    /// 1 active, 0 pending.
    #[serde(default = "default_status")]
    pub status: i64,
    #[serde(default)]
    pub joined: Option<String>,
    #[serde(default)]
    pub last_login: Option<String>,
    #[serde(default)]
    pub permissions: Map<String, Value>,
    #[serde(default)]
    pub api_ids: Vec<String>,
    #[serde(default)]
    pub sync_ids: Vec<String>,
    /// v2: the player id the account is linked to in this community (none: not linked).
    #[serde(default)]
    pub community_user_id: Option<String>,
    /// v2: the account's secret UUID (the tablet's `scad:account-link` message carries it).
    /// Default: derived from the account's uuid (the emulator's choice).
    #[serde(default)]
    pub secret_uuid: Option<String>,
}

fn default_status() -> i64 {
    1
}

/// A unit identifier owned by an account (`acc_id` is the account uuid).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixtureIdentifier {
    pub id: u64,
    pub acc_id: String,
    #[serde(default)]
    pub status: i64,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub aop: String,
    #[serde(default)]
    pub data: Map<String, Value>,
}

impl Fixture {
    /// The embedded `fixture.json`.
    pub fn default_fixture() -> Fixture {
        Fixture::from_json(DEFAULT_FIXTURE_JSON).expect("embedded fixture.json is valid")
    }

    /// Parse and check a fixture (unique usernames, uuids and identifier ids; identifiers
    /// belong to known accounts).
    pub fn from_json(text: &str) -> Result<Fixture, String> {
        let f: Fixture = serde_json::from_str(text).map_err(|e| format!("fixture: {e}"))?;
        if f.community_id.is_empty() || f.api_key.is_empty() {
            return Err("fixture: community_id and api_key must not be empty".into());
        }
        for (i, a) in f.accounts.iter().enumerate() {
            if a.uuid.is_empty() || a.username.is_empty() {
                return Err(format!("fixture: account {i} needs a uuid and a username"));
            }
            for b in &f.accounts[..i] {
                if b.uuid == a.uuid {
                    return Err(format!("fixture: duplicate account uuid {}", a.uuid));
                }
                if b.username.eq_ignore_ascii_case(&a.username) {
                    return Err(format!("fixture: duplicate username {}", a.username));
                }
            }
        }
        for (i, ident) in f.identifiers.iter().enumerate() {
            if ident.id == 0 || f.identifiers[..i].iter().any(|o| o.id == ident.id) {
                return Err(format!("fixture: identifier id {} is zero or repeated", ident.id));
            }
            if !f.accounts.iter().any(|a| a.uuid == ident.acc_id) {
                return Err(format!("fixture: identifier {} has unknown accId", ident.id));
            }
        }
        Ok(f)
    }
}

impl Default for Fixture {
    fn default() -> Fixture {
        Fixture::default_fixture()
    }
}
