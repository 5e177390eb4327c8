//! The two in-game flows: linking a player from the tablet's login capture, and checking
//! whether a player is linked (with a short-lived, single-flight cache so a join storm does not
//! call the API once per check).

use super::session::Capture;
use crate::client::{Callback, Client, Engine, Handler};
use crate::config::{ApiVersion, IdentifierType};
use crate::error::{Refusal, RefusalKind};
use crate::request::Call;
use crate::response::{ErrorCode, Failure, Success};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Result type of [`Client::link_from_tablet`].
pub const LINK_FROM_TABLET: &str = "LINK_FROM_TABLET";
/// Result type of [`Client::is_linked`].
pub const IS_LINKED: &str = "IS_LINKED";
/// The v2 call of the tablet flow (`links/set`).
const SET_COMMUNITY_LINK: &str = "SET_COMMUNITY_LINK";

/// Who to check: a bare API ID, or the identifiers the game server gives for a player
/// (`steam:...`, `license:...`, `discord:...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerIds {
    ApiId(String),
    Identifiers(Vec<String>),
}

impl PlayerIds {
    /// The identifiers argument of the C and Lua surfaces: a JSON string is a bare API ID, an
    /// array of strings a player's identifiers.
    pub fn from_value(v: &Value) -> Result<PlayerIds, Refusal> {
        match v {
            Value::String(s) => Ok(PlayerIds::ApiId(s.clone())),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Refusal::field(format!("identifiers[{i}]"), "expected a string"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(PlayerIds::Identifiers),
            _ => Err(Refusal::field("identifiers", "expected an API ID string or an array of player identifiers")),
        }
    }

    /// The identifiers argument of the tablet flow: the player's identifiers, as a list only.
    pub fn list_from_value(v: &Value) -> Result<Vec<String>, Refusal> {
        match PlayerIds::from_value(v)? {
            PlayerIds::Identifiers(list) => Ok(list),
            PlayerIds::ApiId(_) => Err(Refusal::field("identifiers", "expected the player's identifiers as a list")),
        }
    }
}

type Shared = Result<bool, Failure>;

enum Entry {
    Known { linked: bool, until: Instant },
    InFlight(watch::Receiver<Option<Shared>>),
}

/// Cache of CHECK_APIID answers, one per client (`Engine::state`). Failures are never stored.
#[derive(Default)]
struct LinkCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl LinkCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, api_id: &str, linked: bool, ttl: Duration) {
        let mut map = self.lock();
        if ttl.is_zero() {
            map.remove(api_id);
            return;
        }
        let now = Instant::now();
        if map.len() >= 10_000 {
            map.retain(|_, e| !matches!(e, Entry::Known { until, .. } if *until <= now));
        }
        map.insert(api_id.to_string(), Entry::Known { linked, until: now + ttl });
    }
}

/// Removes a leader's in-flight marker if its task ends without an answer (cancelled,
/// timed out, shut down), so that waiters retry instead of waiting forever.
struct InFlightGuard<'a> {
    cache: &'a LinkCache,
    api_id: &'a str,
    armed: bool,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut map = self.cache.lock();
            if matches!(map.get(self.api_id), Some(Entry::InFlight(_))) {
                map.remove(self.api_id);
            }
        }
    }
}

/// CHECK_APIID through the cache: `Ok(true)` linked, `Ok(false)` not linked, `Err` for any
/// other outcome (never taken as "not linked").
async fn check_linked(engine: &Engine, api_id: &str) -> Result<bool, Failure> {
    let cache = engine.state::<LinkCache>();
    let ttl = engine.config().link_check_ttl;
    loop {
        enum Role {
            Wait(watch::Receiver<Option<Shared>>),
            Lead(watch::Sender<Option<Shared>>),
        }
        let role = {
            let mut map = cache.lock();
            match map.get(api_id) {
                Some(Entry::Known { linked, until }) if *until > Instant::now() => return Ok(*linked),
                Some(Entry::InFlight(rx)) => Role::Wait(rx.clone()),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(api_id.to_string(), Entry::InFlight(rx));
                    Role::Lead(tx)
                }
            }
        };
        match role {
            Role::Wait(mut rx) => match rx.wait_for(Option::is_some).await {
                Ok(v) => return v.clone().expect("wait_for saw Some"),
                Err(_) => continue, // the leader went away without an answer: try again
            },
            Role::Lead(tx) => {
                let mut guard = InFlightGuard { cache: &cache, api_id, armed: true };
                let result = check_api_id_uncached(engine, api_id).await;
                match &result {
                    Ok(linked) => cache.remember(api_id, *linked, ttl),
                    Err(_) => {
                        cache.lock().remove(api_id);
                    }
                }
                guard.armed = false;
                let _ = tx.send(Some(result.clone()));
                return result;
            }
        }
    }
}

async fn check_api_id_uncached(engine: &Engine, api_id: &str) -> Result<bool, Failure> {
    let call = Call::check_api_id(json!({ "apiId": api_id })).map_err(refused)?;
    match engine.send(&call).await {
        Ok(_) => Ok(true),
        Err(f) if f.code == ErrorCode::NotLinked => Ok(false),
        Err(f) => Err(f),
    }
}

/// A call of the flow that validation refused (its values come from checked input, so this
/// does not happen; if it did, it would say why).
fn refused(r: Refusal) -> Failure {
    Failure::new(0, ErrorCode::HttpError, r.to_string())
}

async fn link(engine: &Engine, capture: Capture, api_id: String) -> Result<Success, Failure> {
    let cfg = engine.config();
    let set = match capture {
        // v2: links/set reassigns the link atomically; there is nothing to check first.
        Capture::AccountLink { account_uuid, secret_uuid } => {
            let data = json!({"accountUuid": account_uuid, "secretUuid": secret_uuid, "communityUserId": api_id});
            let set = engine.send(&Call::internal(SET_COMMUNITY_LINK, data)).await?;
            engine.state::<LinkCache>().remember(&api_id, true, cfg.link_check_ttl);
            let data = json!({"outcome": "LINKED", "apiId": api_id, "accountUuid": account_uuid});
            return Ok(Success { status: set.status, data, trace_id: set.trace_id });
        }
        Capture::Login { username, session_id, .. } => {
            if check_linked(engine, &api_id).await? {
                return Ok(Success::new(200, json!({"outcome": "ALREADY_LINKED", "apiId": api_id})));
            }
            let call = Call::link_api_id(&username, &session_id, &api_id, cfg.set_api_id_form).map_err(refused)?;
            engine.send(&call).await?
        }
    };
    engine.state::<LinkCache>().remember(&api_id, true, cfg.link_check_ttl);
    Ok(Success::new(set.status, json!({"outcome": "LINKED", "apiId": api_id})))
}

/// The player's id a flow acts on: a bare id as given (checked as the text of `field`), or the
/// one picked from their identifiers. `Ok(None)`: no identifier of the configured type.
pub(super) fn player_id(client: &Client, ids: PlayerIds, field: &str) -> Result<Option<String>, Refusal> {
    let cfg = client.config();
    match ids {
        PlayerIds::ApiId(id) => {
            check_identifier_text(field, &id)?;
            Ok(Some(id))
        }
        PlayerIds::Identifiers(list) => pick_api_id(&list, cfg.primary_identifier, cfg.identifier_prefix),
    }
}

/// The player's API ID among the identifiers the game server gives: the configured type's
/// value, without its `type:` prefix unless `identifier_prefix` is set. `Ok(None)`: no
/// identifier of that type.
pub(crate) fn pick_api_id(
    identifiers: &[String],
    kind: IdentifierType,
    keep_prefix: bool,
) -> Result<Option<String>, Refusal> {
    let prefix = format!("{}:", kind.as_str());
    for (i, id) in identifiers.iter().enumerate() {
        check_identifier_text(&format!("identifiers[{i}]"), id)?;
    }
    // `get`, not indexing: an identifier may hold any character, and a byte offset inside one
    // is no place to cut.
    let value_of = |id: &String| -> Option<String> {
        let value = id.get(prefix.len()..).filter(|v| !v.is_empty())?;
        id.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(&prefix))?;
        Some(if keep_prefix { format!("{prefix}{value}") } else { value.to_string() })
    };
    Ok(identifiers.iter().find_map(value_of))
}

fn check_identifier_text(field: &str, id: &str) -> Result<(), Refusal> {
    if id.trim().is_empty() {
        return Err(Refusal::field(field, "must not be empty"));
    }
    if id.len() > 256 || id.chars().any(|c| c.is_control() || c.is_whitespace() || c == '"') {
        return Err(Refusal::field(
            field,
            "is not a player identifier (no spaces, quotes or control characters; at most 256 bytes)",
        ));
    }
    Ok(())
}

pub(super) fn no_identifier(kind: IdentifierType) -> Failure {
    Failure::new(
        0,
        ErrorCode::NoIdentifier,
        format!(
            "the player has no {0} identifier (primary_identifier is \"{0}\"): they must connect with {0} running to be linked",
            kind.as_str()
        ),
    )
}

impl Client {
    /// The tablet flow: check CHECK_APIID for the player's API ID and, when not linked yet,
    /// send SET_API_ID with the captured username and session. One result, type
    /// `LINK_FROM_TABLET`, `data` `{"outcome": "LINKED" | "ALREADY_LINKED", "apiId": ...}`.
    pub fn link_from_tablet(
        &self,
        capture: &Capture,
        identifiers: &[String],
        handler: Option<Handler>,
    ) -> Result<u64, Refusal> {
        self.link_from_tablet_with(capture, identifiers, handler.map(Callback::Handler))
    }

    /// [`Client::link_from_tablet`] with a callback of either kind.
    pub fn link_from_tablet_with(
        &self,
        capture: &Capture,
        identifiers: &[String],
        callback: Option<Callback>,
    ) -> Result<u64, Refusal> {
        let cfg = self.config();
        match (capture, cfg.api_version) {
            // Legacy only: on v2 (no community id needed) any legacy login is refused below, for
            // the reason that applies there.
            (Capture::Login { community: Some(community), .. }, ApiVersion::Legacy)
                if community != &cfg.community_id =>
            {
                return Err(Refusal::field(
                    "capture.community",
                    format!("'{community}' is not this server's community: the login was for another community"),
                ));
            }
            (Capture::Login { .. }, ApiVersion::V2) => {
                return Err(Refusal::of(
                    RefusalKind::WrongApi,
                    "capture: a legacy login ({username, session} or the console line) cannot link a player on the v2 API: \
                     a v2 CAD's tablet sends the scad:account-link message; or give the player a link code \
                     (create_link_code)",
                ))
            }
            (Capture::AccountLink { .. }, ApiVersion::Legacy) => {
                return Err(Refusal::of(
                    RefusalKind::WrongApi,
                    "capture: the scad:account-link message comes from a CAD on the v2 API: set api_version to \"v2\"",
                ))
            }
            _ => {}
        }
        let api_id = pick_api_id(identifiers, cfg.primary_identifier, cfg.identifier_prefix)?;
        let capture = capture.clone();
        let kind = cfg.primary_identifier;
        self.submit_task(Arc::from(LINK_FROM_TABLET), callback, move |engine| async move {
            match api_id {
                Some(api_id) => link(&engine, capture, api_id).await,
                None => Err(no_identifier(kind)),
            }
        })
    }

    /// The API ID checker: one result, type `IS_LINKED`, `data` `{"linked": bool, "apiId": ...}`;
    /// an API or network failure is an error, never "not linked".
    pub fn is_linked(&self, ids: PlayerIds, handler: Option<Handler>) -> Result<u64, Refusal> {
        self.is_linked_with(ids, handler.map(Callback::Handler))
    }

    /// [`Client::is_linked`] with a callback of either kind.
    pub fn is_linked_with(&self, ids: PlayerIds, callback: Option<Callback>) -> Result<u64, Refusal> {
        let kind = self.config().primary_identifier;
        let api_id = player_id(self, ids, "apiId")?;
        self.submit_task(Arc::from(IS_LINKED), callback, move |engine| async move {
            let api_id = api_id.ok_or_else(|| no_identifier(kind))?;
            let linked = check_linked(&engine, &api_id).await?;
            Ok(Success::new(200, json!({"linked": linked, "apiId": api_id})))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_configured_identifier() {
        let ids: Vec<String> =
            ["license:abc", "steam:110000112345678", "discord:42"].iter().map(|s| s.to_string()).collect();
        assert_eq!(pick_api_id(&ids, IdentifierType::Steam, false).unwrap().as_deref(), Some("110000112345678"));
        assert_eq!(pick_api_id(&ids, IdentifierType::Steam, true).unwrap().as_deref(), Some("steam:110000112345678"));
        assert_eq!(pick_api_id(&ids, IdentifierType::Discord, false).unwrap().as_deref(), Some("42"));
        assert_eq!(pick_api_id(&ids[..1], IdentifierType::Steam, false).unwrap(), None);
        assert!(pick_api_id(&["steam:a b".to_string()], IdentifierType::Steam, false).is_err());
        // A multi-byte character across the prefix's length is no panic.
        let odd: Vec<String> = ["steamé12", "licenséx", "é", "steam:é1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(pick_api_id(&odd, IdentifierType::Steam, false).unwrap().as_deref(), Some("é1"));
        assert_eq!(pick_api_id(&odd, IdentifierType::License, false).unwrap(), None);
    }
}
