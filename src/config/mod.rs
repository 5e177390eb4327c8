//! Client configuration: the keys and their defaults. Parsing the JSON the C and Lua surfaces
//! take is in [`parse`], the checks of every field in [`validate`].

mod parse;
mod validate;

use crate::error::Refusal;
pub use crate::request::{ApiVersion, SetApiIdForm};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// `api_url = "production"`.
pub const PRODUCTION_URL: &str = "https://api.sonorancad.com";
/// `api_url = "development"` (separate data, reset at random).
pub const DEVELOPMENT_URL: &str = "https://staging-api.dev.sonorancad.com";
/// The CAD page where a player enters a v2 link code (`?code=...`).
pub const LINK_PAGE: &str = "https://sonorancad.com/id";
/// The same page of the development CAD, for `api_url = "development"`.
pub const DEVELOPMENT_LINK_PAGE: &str = "https://staging.dev.sonorancad.com/id";

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on accepted requests whose callback has not run yet.
pub const DEFAULT_MAX_PENDING: usize = 10_000;
/// Default number of library worker threads.
pub const DEFAULT_WORKER_THREADS: usize = 2;
/// Default cap on an answer body; a larger answer completes `BAD_RESPONSE`.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Default cap on a request body (the encoded envelope); a larger request is refused at submit.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Default number of times one request may be sent (the first send included): up to two
/// automatic retries, for the failures and types where a retry is safe (README, "Retry classes").
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default base of the exponential retry backoff: about 250 ms, 500 ms, 1 s ... (with jitter),
/// capped at [`MAX_RETRY_BACKOFF`].
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(250);
/// Upper bound of one retry backoff.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(10);
/// How long a type is paused after a 429 that carries no `Retry-After`.
pub const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(5);
/// How long sending stays stopped after a fatal configuration answer (`INVALID_API_KEY`,
/// `INVALID_COMMUNITY_ID` stop every type; `API_NOT_ENABLED` stops its type), unless
/// `Client::resume` is called first: 10 minutes.
pub const DEFAULT_DISABLE_COOLDOWN: Duration = Duration::from_secs(600);
/// Default `rate_limit_margin_ms`: the network jitter the limiter leaves room for.
pub const DEFAULT_RATE_LIMIT_MARGIN: Duration = Duration::from_millis(250);
/// Longest wait a server may impose with `Retry-After` (or a date in it): one hour, the same
/// cap as `rate_limit_pause_ms`. A longer value is capped, and the log line says so.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(3600);
/// Default `max_connections`: HTTP connections the client opens to the API at most. Requests
/// beyond it wait for a free connection (within their deadline) instead of opening more.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;
/// Shortest API key accepted. A value that short cannot be a community's key, and removing it
/// from every text that leaves the library would mangle ordinary words.
pub const MIN_API_KEY_CHARS: usize = 16;

/// A token bucket: up to `burst` requests at once, refilled at `per_second` requests per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// The default global limit: **1 request per second sustained, bursts of up to 5**.
///
/// The API's limits are not published; its documentation asks for no more than about one call
/// per second sustained, and the backend blacklists communities that hammer it. A burst of 5
/// lets a handful of calls made together (a player joining: check, link, account lookup) go out
/// at once, while anything longer settles at one call per second. There is no per-type limit by
/// default: every type shares this one. Raise it only when the vendor has told you your limit.
pub const DEFAULT_GLOBAL_RATE: Rate = Rate { per_second: 1.0, burst: 5 };

/// Slowest rate accepted: one request an hour.
pub const MIN_PER_SECOND: f64 = 1.0 / 3600.0;
/// Fastest rate accepted.
pub const MAX_PER_SECOND: f64 = 100_000.0;

impl Rate {
    /// A rate the limiter can use: `per_second` from [`MIN_PER_SECOND`] (one an hour) to
    /// [`MAX_PER_SECOND`], `burst` from 1 to 100000.
    pub(crate) fn check(&self, field: &str) -> Result<(), Refusal> {
        if !(self.per_second.is_finite() && (MIN_PER_SECOND..=MAX_PER_SECOND).contains(&self.per_second)) {
            return Err(Refusal::field(
                format!("{field}.per_second"),
                "expected a number from 0.000278 (one request an hour) to 100000",
            ));
        }
        if self.burst == 0 || self.burst > 100_000 {
            return Err(Refusal::field(format!("{field}.burst"), "expected an integer from 1 to 100000"));
        }
        Ok(())
    }

    /// The bucket of a limit of `n` calls a minute (v2's published limits): never more than `n`
    /// sent in any 61 s (one second of slack for arrival jitter), so neither a fixed nor a
    /// sliding one-minute window on the server sees more than `n`: bursts of `n / 10` (at least
    /// one), the rest spread over the minute.
    pub fn per_minute(n: u32) -> Rate {
        let burst = (n / 10).max(1);
        Rate { per_second: f64::from(n.saturating_sub(burst).max(1)) / 61.0, burst }
    }

    /// The burst the client uses: `burst` less the tokens that refill within `margin`, and
    /// never less than one.
    pub fn usable_burst(&self, margin: Duration) -> u32 {
        let reserve = (self.per_second * margin.as_secs_f64()).ceil();
        let reserve = if reserve.is_finite() { reserve.min(u32::MAX as f64) as u32 } else { u32::MAX };
        self.burst.saturating_sub(reserve).max(1)
    }
}

/// Where completions are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Callbacks run inside `poll()`, on the thread that calls it (the game thread).
    Poll,
    /// Callbacks run on a library worker thread, one at a time, as soon as a request completes.
    Thread,
}

/// Which player identifier is the API ID (`primary_identifier`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierType {
    Steam,
    License,
    Discord,
}

impl IdentifierType {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierType::Steam => "steam",
            IdentifierType::License => "license",
            IdentifierType::Discord => "discord",
        }
    }
}

/// Default lifetime of a CHECK_APIID answer in the link cache.
pub const DEFAULT_LINK_CHECK_TTL: Duration = Duration::from_secs(30);

/// The community's API key. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
    /// The key itself, for the request body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Everything a client needs. Build with [`Config::new`] or [`Config::from_json`].
#[derive(Clone, Debug)]
pub struct Config {
    /// `"legacy"` (default) or `"v2"`.
    pub api_version: ApiVersion,
    /// The community's id; required by the legacy API, optional (and never sent) in v2, where
    /// the key alone selects the community.
    pub community_id: String,
    pub api_key: ApiKey,
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub timeout: Duration,
    pub delivery: Delivery,
    pub max_pending: usize,
    /// Per-type path overrides, e.g. `MODIFY_IDENTIFIER` -> `/emergency/modify_identifiers`.
    pub paths: HashMap<String, String>,
    /// Sections for types the built-in table lacks, e.g. `GET_LOGS` -> `general`.
    pub sections: HashMap<String, String>,
    pub allow_insecure_http: bool,
    pub worker_threads: usize,
    pub max_response_bytes: usize,
    /// The identifier type that is a player's API ID in the tablet and checker flows.
    pub primary_identifier: IdentifierType,
    /// Send `steam:...` rather than the bare value.
    pub identifier_prefix: bool,
    /// How long a CHECK_APIID answer is reused by the checker (zero: not cached).
    pub link_check_ttl: Duration,
    pub set_api_id_form: SetApiIdForm,
    /// Client-side pacing: a global token bucket and optional per-type ones (`rate_limits`).
    pub rate_limits: RateLimits,
    /// Jitter allowance of the pacing (`rate_limit_margin_ms`): each bucket keeps the tokens
    /// that would refill in this time in reserve (always leaving at least one usable), so a
    /// request that reaches the API sooner after the previous one than it left the client
    /// still finds a token there (see the README, "Reliability").
    pub rate_limit_margin: Duration,
    /// Sends per request, the first included (`max_attempts`, 1 = never retry).
    pub max_attempts: u32,
    /// Base of the exponential retry backoff (`retry_backoff_ms`).
    pub retry_backoff: Duration,
    /// Pause of a type after a 429 without `Retry-After` (`rate_limit_pause_ms`).
    pub rate_limit_pause: Duration,
    /// How long sending stays stopped after a fatal configuration answer (`disable_cooldown_ms`).
    pub disable_cooldown: Duration,
    /// Opt-in coalescing window per type (`coalesce`), only for types that allow it.
    pub coalesce: HashMap<String, Duration>,
    /// Largest request body accepted at submit (`max_request_bytes`).
    pub max_request_bytes: usize,
    /// Most HTTP connections open to the API at once (`max_connections`).
    pub max_connections: usize,
    /// An HTTP proxy for every request (`proxy`), or none. Environment proxies (`HTTP_PROXY`,
    /// `ALL_PROXY`, ...) are never used: only this setting sends requests through a proxy.
    pub proxy: Option<String>,
    /// One rate budget for every server of this key, through Redis (`shared_budget`), or none.
    pub shared_budget: Option<SharedBudget>,
}

/// One rate budget for several servers of one API key (`shared_budget`): every bucket of
/// `rate_limits`, the 429 pauses and the fatal stops are kept in Redis, keyed by a hash of the
/// key, so the servers together stay within the limits.
#[derive(Clone, PartialEq)]
pub struct SharedBudget {
    /// `redis://[user:password@]host[:port][/db]`. It may carry a password: never printed.
    pub redis_url: String,
    /// First part of every Redis key the library writes.
    pub prefix: String,
    /// Longest wait for one Redis round trip; past it the local share takes over.
    pub timeout: Duration,
    /// Share of each limit one server uses on its own while Redis is unreachable.
    pub fallback_share: f64,
    /// How long after Redis failed the client tries it again.
    pub retry: Duration,
}

impl SharedBudget {
    /// A shared budget at `redis_url` with the defaults: prefix `sonoran`, 250 ms per round
    /// trip, a quarter of each limit while Redis is away, a new try every 5 s.
    pub fn new(redis_url: impl Into<String>) -> Self {
        SharedBudget {
            redis_url: redis_url.into(),
            prefix: "sonoran".into(),
            timeout: Duration::from_millis(250),
            fallback_share: 0.25,
            retry: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBudget")
            .field("redis_url", &"[redacted]")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("fallback_share", &self.fallback_share)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The client-side token buckets. A request waits (in arrival order) until its type's bucket,
/// if it has one, and the global bucket, if set, both hold a token.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimits {
    /// Shared by every type. `None`: no global limit. Default [`DEFAULT_GLOBAL_RATE`].
    pub global: Option<Rate>,
    /// Per request type, e.g. `SET_API_ID`. A type without an entry only has the global limit.
    pub per_type: HashMap<String, Rate>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { global: Some(DEFAULT_GLOBAL_RATE), per_type: HashMap::new() }
    }
}

impl RateLimits {
    /// The default limits of an API: the legacy advice (1/s, bursts of 5, every type), or for
    /// v2 the same global bucket plus one bucket per route at its published limit.
    pub fn defaults_for(version: ApiVersion) -> Self {
        match version {
            ApiVersion::Legacy => RateLimits::default(),
            ApiVersion::V2 => RateLimits {
                global: Some(DEFAULT_GLOBAL_RATE),
                per_type: crate::api::v2::ROUTE_LIMITS
                    .iter()
                    .map(|(route, n)| (route.to_string(), Rate::per_minute(*n)))
                    .collect(),
            },
        }
    }

    /// No client-side pacing at all (for tests against a local emulator, or a host that paces
    /// its own calls).
    pub fn unlimited() -> Self {
        RateLimits { global: None, per_type: HashMap::new() }
    }
}

impl Config {
    /// A production configuration with defaults.
    pub fn new(community_id: impl Into<String>, api_key: impl Into<String>) -> Self {
        Config {
            api_version: ApiVersion::Legacy,
            community_id: community_id.into(),
            api_key: ApiKey::new(api_key),
            base_url: PRODUCTION_URL.to_string(),
            timeout: DEFAULT_TIMEOUT,
            delivery: Delivery::Poll,
            max_pending: DEFAULT_MAX_PENDING,
            paths: HashMap::new(),
            sections: HashMap::new(),
            allow_insecure_http: false,
            worker_threads: DEFAULT_WORKER_THREADS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            primary_identifier: IdentifierType::Steam,
            identifier_prefix: false,
            link_check_ttl: DEFAULT_LINK_CHECK_TTL,
            set_api_id_form: SetApiIdForm::ApiIds,
            rate_limits: RateLimits::default(),
            rate_limit_margin: DEFAULT_RATE_LIMIT_MARGIN,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            rate_limit_pause: DEFAULT_RATE_LIMIT_PAUSE,
            disable_cooldown: DEFAULT_DISABLE_COOLDOWN,
            coalesce: HashMap::new(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            proxy: None,
            shared_budget: None,
        }
    }

    /// A production configuration for the v2 API (no community id: the key selects the
    /// community), with v2's default per-route limits.
    pub fn v2(api_key: impl Into<String>) -> Self {
        Config::new("", api_key).with_api_version(ApiVersion::V2)
    }

    /// Switch the API, and with it the default rate limits (the legacy advice, or v2's
    /// published per-route limits).
    pub fn with_api_version(mut self, version: ApiVersion) -> Self {
        self.api_version = version;
        self.rate_limits = RateLimits::defaults_for(version);
        self
    }

    /// Set the base URL: `production`, `development` or a URL. Checked by [`Config::validate`].
    pub fn with_api_url(mut self, api_url: &str) -> Self {
        self.base_url = resolve_api_url(api_url);
        self
    }

    /// Parse the JSON configuration the C and Lua surfaces take. Unknown keys are refused by name.
    pub fn from_json(text: &str) -> Result<Config, Refusal> {
        parse::from_json(text)
    }

    /// Parse a configuration object (already decoded JSON).
    pub fn from_value(value: &serde_json::Value) -> Result<Config, Refusal> {
        parse::from_value(value)
    }
}

/// `production` / `development` / any URL (trailing slashes removed).
pub(super) fn resolve_api_url(url: &str) -> String {
    match url.trim() {
        "production" => PRODUCTION_URL.to_string(),
        "development" => DEVELOPMENT_URL.to_string(),
        other => other.trim_end_matches('/').to_string(),
    }
}
