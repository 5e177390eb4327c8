//! Client configuration: parsed from JSON (the C and Lua surfaces) or built in Rust.

use crate::error::Refusal;
use crate::policy;
use crate::ratelimit::{Rate, DEFAULT_GLOBAL_RATE};
use crate::wire;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

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
/// automatic retries, for the failures and types where a retry is safe (see `policy`).
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

/// Where completions are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Callbacks run inside `poll()`, on the thread that calls it (the game thread).
    Poll,
    /// Callbacks run on a library worker thread, one at a time, as soon as a request completes.
    Thread,
}

/// Which player identifier is the API ID (`primary_identifier`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// Which SET_API_ID form the tablet flow sends (`set_api_id_form`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetApiIdForm {
    /// `{"apiIds": [id], "pushNew": true}` (current).
    ApiIds,
    /// `{"id1": id}` (the seed's form).
    Id1,
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
    /// still finds a token there. See [`crate::ratelimit`].
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
            base_url: wire::PRODUCTION_URL.to_string(),
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
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Refusal::new(format!("config: not valid JSON ({})", strip_position(&e))))?;
        Config::from_value(&value)
    }

    /// Parse a configuration object (already decoded JSON).
    pub fn from_value(value: &Value) -> Result<Config, Refusal> {
        let obj = value.as_object().ok_or_else(|| Refusal::new("config: expected a JSON object"))?;
        const KEYS: &[&str] = &[
            "community_id",
            "api_key",
            "api_url",
            "timeout_ms",
            "delivery",
            "max_pending",
            "paths",
            "sections",
            "allow_insecure_http",
            "worker_threads",
            "max_response_bytes",
            "primary_identifier",
            "identifier_prefix",
            "link_check_ttl_ms",
            "set_api_id_form",
            "rate_limits",
            "rate_limit_margin_ms",
            "max_attempts",
            "retry_backoff_ms",
            "rate_limit_pause_ms",
            "disable_cooldown_ms",
            "coalesce",
            "max_request_bytes",
            "max_connections",
            "proxy",
        ];
        if let Some(unknown) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(Refusal::new(format!(
                "config: unknown key '{}' (known keys: {})",
                printable(unknown),
                KEYS.join(", ")
            )));
        }
        let community_id = required_string(obj, "community_id")?;
        let api_key = required_string(obj, "api_key")?;
        let mut cfg = Config::new(community_id, api_key);
        if let Some(v) = obj.get("api_url") {
            let url = v.as_str().ok_or_else(|| {
                Refusal::field("config.api_url", "expected \"production\", \"development\" or a URL string")
            })?;
            cfg.base_url = resolve_api_url(url);
        }
        if let Some(ms) = optional_u64(obj, "timeout_ms", 1, 600_000)? {
            cfg.timeout = Duration::from_millis(ms);
        }
        if let Some(v) = obj.get("delivery") {
            cfg.delivery = match v.as_str() {
                Some("poll") => Delivery::Poll,
                Some("thread") => Delivery::Thread,
                _ => return Err(Refusal::field("config.delivery", "expected \"poll\" or \"thread\"")),
            };
        }
        if let Some(n) = optional_u64(obj, "max_pending", 1, 1_000_000)? {
            cfg.max_pending = n as usize;
        }
        if let Some(n) = optional_u64(obj, "worker_threads", 1, 16)? {
            cfg.worker_threads = n as usize;
        }
        if let Some(n) = optional_u64(obj, "max_response_bytes", 1024, 1 << 30)? {
            cfg.max_response_bytes = n as usize;
        }
        if let Some(v) = obj.get("allow_insecure_http") {
            cfg.allow_insecure_http =
                v.as_bool().ok_or_else(|| Refusal::field("config.allow_insecure_http", "expected true or false"))?;
        }
        if let Some(v) = obj.get("primary_identifier") {
            cfg.primary_identifier = match v.as_str() {
                Some("steam") => IdentifierType::Steam,
                Some("license") => IdentifierType::License,
                Some("discord") => IdentifierType::Discord,
                _ => {
                    return Err(Refusal::field(
                        "config.primary_identifier",
                        "expected \"steam\", \"license\" or \"discord\"",
                    ))
                }
            };
        }
        if let Some(v) = obj.get("identifier_prefix") {
            cfg.identifier_prefix =
                v.as_bool().ok_or_else(|| Refusal::field("config.identifier_prefix", "expected true or false"))?;
        }
        if let Some(ms) = optional_u64(obj, "link_check_ttl_ms", 0, 86_400_000)? {
            cfg.link_check_ttl = Duration::from_millis(ms);
        }
        if let Some(v) = obj.get("set_api_id_form") {
            cfg.set_api_id_form = match v.as_str() {
                Some("apiIds") => SetApiIdForm::ApiIds,
                Some("id1") => SetApiIdForm::Id1,
                _ => return Err(Refusal::field("config.set_api_id_form", "expected \"apiIds\" or \"id1\"")),
            };
        }
        if let Some(v) = obj.get("rate_limits") {
            cfg.rate_limits = parse_rate_limits(v)?;
        }
        if let Some(ms) = optional_u64(obj, "rate_limit_margin_ms", 0, 60_000)? {
            cfg.rate_limit_margin = Duration::from_millis(ms);
        }
        if let Some(n) = optional_u64(obj, "max_attempts", 1, 10)? {
            cfg.max_attempts = n as u32;
        }
        if let Some(ms) = optional_u64(obj, "retry_backoff_ms", 1, 60_000)? {
            cfg.retry_backoff = Duration::from_millis(ms);
        }
        if let Some(ms) = optional_u64(obj, "rate_limit_pause_ms", 1, 3_600_000)? {
            cfg.rate_limit_pause = Duration::from_millis(ms);
        }
        if let Some(ms) = optional_u64(obj, "disable_cooldown_ms", 1, 86_400_000)? {
            cfg.disable_cooldown = Duration::from_millis(ms);
        }
        if let Some(n) = optional_u64(obj, "max_request_bytes", 1024, 64 << 20)? {
            cfg.max_request_bytes = n as usize;
        }
        if let Some(n) = optional_u64(obj, "max_connections", 1, 1024)? {
            cfg.max_connections = n as usize;
        }
        match obj.get("proxy") {
            None | Some(Value::Null) => {}
            Some(Value::String(url)) => cfg.proxy = Some(url.trim().trim_end_matches('/').to_string()),
            Some(_) => return Err(Refusal::field("config.proxy", "expected a proxy URL string, or null for none")),
        }
        if let Some(v) = obj.get("coalesce") {
            let m = v
                .as_object()
                .ok_or_else(|| Refusal::field("config.coalesce", "expected an object of {\"TYPE\": window in ms}"))?;
            for (ty, ms) in m {
                let ms = ms.as_u64().filter(|ms| (1..=10_000).contains(ms)).ok_or_else(|| {
                    Refusal::field(format!("config.coalesce.{}", printable(ty)), "expected a window from 1 to 10000 ms")
                })?;
                cfg.coalesce.insert(ty.clone(), Duration::from_millis(ms));
            }
        }
        cfg.paths = string_map(obj, "paths")?;
        cfg.sections = string_map(obj, "sections")?;
        cfg.validate()?;
        Ok(cfg)
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
            if !policy::may_coalesce(ty) {
                return Err(Refusal::field(
                    format!("config.coalesce.{ty}"),
                    format!(
                        "{ty} cannot be coalesced (its answer does not apply to every element); types that can: {}",
                        policy::COALESCABLE.join(", ")
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

    /// The path a request type is sent to: the `paths` override, else
    /// `/{section}/{lower(type)}` with the section from `sections` or the built-in table.
    pub fn path_for(&self, request_type: &str) -> Result<String, Refusal> {
        if let Some(p) = self.paths.get(request_type) {
            return Ok(p.clone());
        }
        let section = self
            .sections
            .get(request_type)
            .map(String::as_str)
            .or_else(|| wire::builtin_section(request_type))
            .ok_or_else(|| {
                Refusal::new(format!(
                    "type: {request_type} is not a type this library knows; register its section with the \
                     `sections` configuration (e.g. {{\"{request_type}\": \"general\"}}) or its path with `paths`"
                ))
            })?;
        Ok(wire::default_path(section, request_type))
    }
}

/// `{"global": {"per_second": 1, "burst": 5} | null, "TYPE": {"per_second": .., "burst": ..}}`.
/// Keys left out keep their default (the global default, no per-type limit).
fn parse_rate_limits(v: &Value) -> Result<RateLimits, Refusal> {
    let m = v.as_object().ok_or_else(|| {
        Refusal::field("config.rate_limits", "expected an object like {\"global\": {\"per_second\": 1, \"burst\": 5}}")
    })?;
    let mut out = RateLimits::default();
    for (key, spec) in m {
        let field = format!("config.rate_limits.{}", printable(key));
        let rate = match spec {
            Value::Null if key == "global" => None,
            Value::Object(o) => {
                if let Some(k) = o.keys().find(|k| k.as_str() != "per_second" && k.as_str() != "burst") {
                    return Err(Refusal::field(
                        format!("{field}.{}", printable(k)),
                        "unknown key (expected per_second, burst)",
                    ));
                }
                let per_second = o
                    .get("per_second")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| Refusal::field(format!("{field}.per_second"), "expected a number"))?;
                let burst = match o.get("burst") {
                    None => 1,
                    Some(b) => b.as_u64().filter(|b| (1..=100_000).contains(b)).ok_or_else(|| {
                        Refusal::field(format!("{field}.burst"), "expected an integer from 1 to 100000")
                    })? as u32,
                };
                let r = Rate { per_second, burst };
                r.check(&field)?;
                Some(r)
            }
            _ => {
                return Err(Refusal::field(
                    field,
                    "expected {\"per_second\": number, \"burst\": integer} (or null for global: no global limit)",
                ))
            }
        };
        if key == "global" {
            out.global = rate;
        } else {
            check_type_name(&format!("config.rate_limits key '{}'", printable(key)), key)?;
            out.per_type.insert(key.clone(), rate.expect("only global may be null"));
        }
    }
    Ok(out)
}

/// `production` / `development` / any URL (trailing slashes removed).
fn resolve_api_url(url: &str) -> String {
    match url.trim() {
        "production" => wire::PRODUCTION_URL.to_string(),
        "development" => wire::DEVELOPMENT_URL.to_string(),
        other => other.trim_end_matches('/').to_string(),
    }
}

/// A request type name: upper-case letters, digits and `_`.
pub fn check_type_name(field: &str, name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes()[0].is_ascii_uppercase();
    if ok {
        Ok(())
    } else {
        Err(Refusal::field(field, "expected an upper-case API type name like UNIT_STATUS"))
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

fn required_string(obj: &Map<String, Value>, key: &str) -> Result<String, Refusal> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Refusal::field(format!("config.{key}"), "expected a string")),
        None => Err(Refusal::field(format!("config.{key}"), "is required")),
    }
}

fn optional_u64(obj: &Map<String, Value>, key: &str, min: u64, max: u64) -> Result<Option<u64>, Refusal> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Refusal::field(format!("config.{key}"), format!("expected an integer from {min} to {max}"))),
        },
    }
}

fn string_map(obj: &Map<String, Value>, key: &str) -> Result<HashMap<String, String>, Refusal> {
    let Some(v) = obj.get(key) else { return Ok(HashMap::new()) };
    let m = v
        .as_object()
        .ok_or_else(|| Refusal::field(format!("config.{key}"), "expected an object of {\"TYPE\": \"...\"}"))?;
    m.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => Err(Refusal::field(format!("config.{key}.{}", printable(k)), "expected a string")),
        })
        .collect()
}

/// A user-supplied name made safe to quote in a message (control characters escaped, clipped).
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// serde_json's message without a value echo risk: it only reports syntax and position.
fn strip_position(e: &serde_json::Error) -> String {
    format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column())
}
