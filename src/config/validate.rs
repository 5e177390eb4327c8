//! The checks of every configuration field, made by `Config::from_json` and by the client
//! constructor (a `Config` built in Rust is checked too).

use super::{ApiVersion, Config, MIN_API_KEY_CHARS};
use crate::api::legacy;
use crate::error::Refusal;
use crate::text::{check_type_name, printable};
use std::net::IpAddr;
use std::time::Duration;

impl Config {
    /// Check every field; called by [`Config::from_json`] and by the client constructor.
    pub fn validate(&self) -> Result<(), Refusal> {
        let v2 = self.api_version == ApiVersion::V2;
        if !(v2 && self.community_id.is_empty()) {
            check_header_value("config.community_id", &self.community_id)?;
        }
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
        if let Some(b) = &self.shared_budget {
            check_shared_budget(b)?;
        }
        if let Some(r) = &self.rate_limits.global {
            r.check("config.rate_limits.global")?;
        }
        for (key, r) in &self.rate_limits.per_type {
            let field = format!("config.rate_limits key '{}'", printable(key));
            if v2 {
                crate::api::v2::check_route_key(&field, key)?;
            } else {
                check_type_name(&field, key)?;
            }
            r.check(&format!("config.rate_limits.{}", printable(key)))?;
        }
        if v2 {
            for (key, set) in [
                ("coalesce", !self.coalesce.is_empty()),
                ("paths", !self.paths.is_empty()),
                ("sections", !self.sections.is_empty()),
            ] {
                if set {
                    return Err(Refusal::field(
                        format!("config.{key}"),
                        "is for the legacy API only; v2 routes are fixed (use request_v2 for a route the library has no call for)",
                    ));
                }
            }
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

/// `shared_budget`: a `redis://` URL (checked again, and parsed, when the client starts), a
/// prefix of plain characters, a share of a limit in (0, 1].
fn check_shared_budget(b: &super::SharedBudget) -> Result<(), Refusal> {
    if !b.redis_url.starts_with("redis://") {
        return Err(Refusal::field(
            "config.shared_budget.redis_url",
            "expected redis://[user:password@]host[:port][/db] (Redis or Valkey)",
        ));
    }
    let prefix_ok = !b.prefix.is_empty()
        && b.prefix.len() <= 64
        && b.prefix.bytes().all(|c| c.is_ascii_alphanumeric() || b"_-.:".contains(&c));
    if !prefix_ok {
        return Err(Refusal::field(
            "config.shared_budget.prefix",
            "expected 1 to 64 letters, digits, '_', '-', '.' or ':'",
        ));
    }
    if !(b.fallback_share > 0.0 && b.fallback_share <= 1.0) {
        return Err(Refusal::field("config.shared_budget.fallback_share", "expected a number above 0, at most 1"));
    }
    if b.timeout.is_zero() || b.timeout > std::time::Duration::from_secs(10) {
        return Err(Refusal::field("config.shared_budget.timeout_ms", "expected an integer from 1 to 10000"));
    }
    Ok(())
}
