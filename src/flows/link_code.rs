//! v2's link code flow: a short code the player enters at the CAD's `/id` page to link their
//! account to their in-game id, handed out again (not minted anew) for five minutes, as the
//! official resource does.

use super::linking::{no_identifier, player_id, PlayerIds};
use crate::client::{Callback, Client, Engine};
use crate::config::{ApiVersion, DEVELOPMENT_LINK_PAGE, DEVELOPMENT_URL, LINK_PAGE};
use crate::error::{Refusal, RefusalKind};
use crate::request::Call;
use crate::response::{ErrorCode, Failure, Success};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Result type of [`Client::create_link_code`].
pub const CREATE_LINK_CODE: &str = "CREATE_LINK_CODE";
/// How long a player's link code is handed out again instead of minting a new one (the
/// official resource's window), and how much of its life must be left to reuse it.
const CODE_REUSE: Duration = Duration::from_secs(300);
const CODE_MIN_LEFT: Duration = Duration::from_secs(60);

/// The link codes handed out, one per player, for reuse (`Engine::state`).
#[derive(Default)]
struct LinkCodes {
    codes: Mutex<HashMap<String, (Value, Instant, Instant)>>,
}

impl LinkCodes {
    /// A code of this player's still worth handing out again.
    fn reusable(&self, community_user_id: &str) -> Option<Value> {
        let map = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        let (data, minted, expires) = map.get(community_user_id)?;
        let now = Instant::now();
        (now.duration_since(*minted) < CODE_REUSE && *expires > now + CODE_MIN_LEFT).then(|| data.clone())
    }

    fn remember(&self, community_user_id: &str, data: &Value, expires_in: Duration) {
        let now = Instant::now();
        let mut map = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, minted, _)| now.duration_since(*minted) < CODE_REUSE);
        map.insert(community_user_id.to_string(), (data.clone(), now, now + expires_in));
    }
}

/// `POST /v2/general/links`, or a code minted for this player in the last five minutes.
async fn link_code(engine: &Engine, community_user_id: String) -> Result<Success, Failure> {
    let codes = engine.state::<LinkCodes>();
    if let Some(data) = codes.reusable(&community_user_id) {
        return Ok(Success::new(200, data));
    }
    let call = Call::internal(CREATE_LINK_CODE, json!({ "communityUserId": community_user_id }));
    let minted = engine.send(&call).await?;
    let code = minted.data.get("code").and_then(Value::as_str).filter(|c| !c.is_empty()).ok_or_else(|| {
        Failure::new(minted.status, ErrorCode::BadResponse, "the API answered a link code request without a code")
    })?;
    let page = if engine.config().base_url == DEVELOPMENT_URL { DEVELOPMENT_LINK_PAGE } else { LINK_PAGE };
    let expires_in = minted.data.get("expiresInSeconds").and_then(Value::as_u64).unwrap_or(600);
    let data = json!({
        "code": code,
        "url": format!("{page}?code={code}"),
        "expiresAt": minted.data.get("expiresAt").cloned().unwrap_or(Value::Null),
        "communityUserId": community_user_id,
    });
    codes.remember(&community_user_id, &data, Duration::from_secs(expires_in));
    Ok(Success { status: minted.status, data, trace_id: minted.trace_id })
}

impl Client {
    /// The v2 link code flow: a code the player enters at `sonorancad.com/id` to link their
    /// account, for their `communityUserId` (picked from `identifiers` like the checker's API
    /// ID). One result, type `CREATE_LINK_CODE`, `data` `{"code", "url", "expiresAt",
    /// "communityUserId"}`. A code minted for the same player in the last five minutes (with a
    /// minute of its life left) is handed out again instead of a new one.
    pub fn create_link_code(&self, identifiers: PlayerIds, callback: Option<Callback>) -> Result<u64, Refusal> {
        let cfg = self.config();
        if cfg.api_version != ApiVersion::V2 {
            return Err(Refusal::of(
                RefusalKind::WrongApi,
                "create_link_code is a v2 API call: set api_version to \"v2\" (the legacy API links through the \
                 tablet's login)",
            ));
        }
        let kind = cfg.primary_identifier;
        let id = player_id(self, identifiers, "identifiers")?;
        self.submit_task(Arc::from(CREATE_LINK_CODE), callback, move |engine| async move {
            link_code(&engine, id.ok_or_else(|| no_identifier(kind))?).await
        })
    }
}
