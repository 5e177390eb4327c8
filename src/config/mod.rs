//! Client configuration: the keys, their defaults and their checks. Parsing the JSON the C and
//! Lua surfaces take is in [`parse`].

mod parse;

use crate::api::legacy;
use crate::error::Refusal;
pub use crate::request::SetApiIdForm;
use crate::text::{check_type_name, printable};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// `api_url = "production"`.
pub const PRODUCTION_URL: &str = "https://api.sonorancad.com";
/// `api_url = "development"` (separate data, reset at random).
pub const DEVELOPMENT_URL: &str = "https://staging-api.dev.sonorancad.com";

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
        }
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

    /// Check every field; called by [`Config::from_json`] and by the client constructor.
    pub fn validate(&self) -> Result<(), Refusal> {
        check_header_value("config.community_id", &self.community_id)?;
        check_header_value("config.api_key", self.api_key.expose())?;
        let key_chars = self.api_key.expose().chars().count();
        if key_chars < MIN_API_KEY_CHARS {
            return Err(Refusal::field(
                "config.api_key",
                format!(
                    "is {key_chars} characters long: an API key has at least {MIN_API_KEY_CHARS} (copy the whole key \
                     from the CAD's admin panel)"
                ),
            ));
        }
        check_url("config.api_url", &self.base_url, self.allow_insecure_http)?;
        if let Some(proxy) = &self.proxy {
            check_url("config.proxy", proxy, self.allow_insecure_http)?;
        }
        if self.timeout.is_zero() {
            return Err(Refusal::field("config.timeout_ms", "must be at least 1"));
        }
        if self.max_pending == 0 {
            return Err(Refusal::field("config.max_pending", "must be at least 1"));
        }
        if self.worker_threads == 0 {
            return Err(Refusal::field("config.worker_threads", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(Refusal::field("config.max_attempts", "must be at least 1"));
        }
        if self.max_request_bytes < 1024 {
            return Err(Refusal::field("config.max_request_bytes", "must be at least 1024"));
        }
        if self.max_connections == 0 || self.max_connections > 1024 {
            return Err(Refusal::field("config.max_connections", "expected an integer from 1 to 1024"));
        }
        if let Some(r) = &self.rate_limits.global {
            r.check("config.rate_limits.global")?;
        }
        for (ty, r) in &self.rate_limits.per_type {
            check_type_name(&format!("config.rate_limits key '{}'", printable(ty)), ty)?;
            r.check(&format!("config.rate_limits.{ty}"))?;
        }
        for (ty, window) in &self.coalesce {
            check_type_name(&format!("config.coalesce key '{}'", printable(ty)), ty)?;
            if !legacy::may_coalesce(ty) {
                return Err(Refusal::field(
                    format!("config.coalesce.{ty}"),
                    format!(
                        "{ty} cannot be coalesced (its answer does not apply to every element); types that can: {}",
                        legacy::COALESCABLE.join(", ")
                    ),
                ));
            }
            if window.is_zero() || *window > Duration::from_secs(10) {
                return Err(Refusal::field(format!("config.coalesce.{ty}"), "expected a window from 1 to 10000 ms"));
            }
        }
        for (ty, path) in &self.paths {
            check_type_name(&format!("config.paths key '{}'", printable(ty)), ty)?;
            let ok = path.starts_with('/')
                && path.len() > 1
                && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b));
            if !ok {
                return Err(Refusal::field(
                    format!("config.paths.{ty}"),
                    "expected a path like \"/section/name\" (letters, digits, '/', '_', '-', '.')",
                ));
            }
        }
        for (ty, section) in &self.sections {
            check_type_name(&format!("config.sections key '{}'", printable(ty)), ty)?;
            let ok = !section.is_empty()
                && section.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
            if !ok {
                return Err(Refusal::field(
                    format!("config.sections.{ty}"),
                    "expected a section name like \"general\" (lower-case letters, digits, '_', '-')",
                ));
            }
        }
        Ok(())
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

/// The API's URL or the proxy's: https, or plain http to a loopback address only (unless
/// `allow_insecure_http`), without credentials, query or fragment.
fn check_url(field: &str, url: &str, allow_insecure_http: bool) -> Result<(), Refusal> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        let hint = if field == "config.api_url" {
            "use \"production\", \"development\" or http(s)://host[:port]"
        } else {
            "use http(s)://host:port"
        };
        Refusal::field(field, format!("not a valid URL ({e}); {hint}"))
    })?;
    if parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(Refusal::field(field, "must not carry credentials, a query or a fragment"));
    }
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let host = parsed.host_str().unwrap_or("");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = match bare.parse::<IpAddr>() {
                Ok(ip) => ip.is_loopback(),
                Err(_) => bare.eq_ignore_ascii_case("localhost"),
            };
            if !loopback && !allow_insecure_http {
                return Err(Refusal::field(
                    field,
                    "plain http:// is only accepted for loopback addresses (127.0.0.0/8, ::1, localhost); \
                     use https:// or set allow_insecure_http = true",
                ));
            }
        }
        other => {
            return Err(Refusal::field(
                field,
                format!("unsupported scheme '{}': expected https:// or http://", printable(other)),
            ))
        }
    }
    if parsed.host().is_none() {
        return Err(Refusal::field(field, "has no host"));
    }
    Ok(())
}

/// Values sent in the body must be non-empty and free of control characters.
fn check_header_value(field: &str, value: &str) -> Result<(), Refusal> {
    if value.trim().is_empty() {
        return Err(Refusal::field(field, "must not be empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(Refusal::field(field, "must not contain control characters"));
    }
    if value.len() > 512 {
        return Err(Refusal::field(field, "is longer than 512 bytes"));
    }
    Ok(())
}
