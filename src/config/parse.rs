//! The JSON configuration of the C and Lua surfaces, parsed by serde's derive: unknown keys are
//! refused, and every refusal names the key (`config.timeout_ms: expected an integer from 1 to
//! 600000`) without quoting the value given.

use super::{
    resolve_api_url, ApiVersion, Config, Delivery, IdentifierType, Rate, RateLimits, SetApiIdForm, SharedBudget,
};
use crate::error::{Refusal, RefusalKind};
use crate::text::{json_error, printable};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

pub(super) fn from_json(text: &str) -> Result<Config, Refusal> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Refusal::of(RefusalKind::InvalidConfig, format!("config: not valid JSON ({})", json_error(&e))))?;
    from_value(&value)
}

/// Every refusal of a configuration is `InvalidConfig`.
pub(super) fn from_value(value: &Value) -> Result<Config, Refusal> {
    parse(value).map_err(|r| r.as_kind(RefusalKind::InvalidConfig))
}

fn parse(value: &Value) -> Result<Config, Refusal> {
    if !value.is_object() {
        return Err(Refusal::new("config: expected a JSON object"));
    }
    let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(refusal)?;
    let cfg = raw.into_config()?;
    cfg.validate()?;
    Ok(cfg)
}

/// The keys as they come; ranges are checked while parsing, everything else by
/// [`Config::validate`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    api_version: Option<ApiVersion>,
    community_id: Option<String>,
    api_key: Key,
    api_url: Option<String>,
    timeout_ms: Option<Int<1, 600_000>>,
    delivery: Option<Delivery>,
    max_pending: Option<Int<1, 1_000_000>>,
    paths: Option<HashMap<String, String>>,
    sections: Option<HashMap<String, String>>,
    allow_insecure_http: Option<bool>,
    worker_threads: Option<Int<1, 16>>,
    max_response_bytes: Option<Int<1024, { 1 << 30 }>>,
    primary_identifier: Option<IdentifierType>,
    identifier_prefix: Option<bool>,
    link_check_ttl_ms: Option<Int<0, 86_400_000>>,
    set_api_id_form: Option<SetApiIdForm>,
    rate_limits: Option<HashMap<String, Option<RawRate>>>,
    rate_limit_margin_ms: Option<Int<0, 60_000>>,
    max_attempts: Option<Int<1, 10>>,
    retry_backoff_ms: Option<Int<1, 60_000>>,
    rate_limit_pause_ms: Option<Int<1, 3_600_000>>,
    disable_cooldown_ms: Option<Int<1, 86_400_000>>,
    coalesce: Option<HashMap<String, Int<1, 10_000>>>,
    max_request_bytes: Option<Int<1024, { 64 << 20 }>>,
    max_connections: Option<Int<1, 1024>>,
    proxy: Option<String>,
    shared_budget: Option<RawShared>,
}

/// `{"redis_url": ..., "prefix": ..., "timeout_ms": ..., "servers" or "fallback_share": ...,
/// "retry_ms": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShared {
    redis_url: String,
    prefix: Option<String>,
    timeout_ms: Option<Int<1, 10_000>>,
    servers: Option<Int<1, 1000>>,
    fallback_share: Option<Number>,
    retry_ms: Option<Int<100, 600_000>>,
}

impl RawShared {
    fn into_budget(self) -> Result<SharedBudget, Refusal> {
        let mut b = SharedBudget::new(self.redis_url.trim());
        if let Some(p) = self.prefix {
            b.prefix = p;
        }
        if let Some(v) = self.timeout_ms {
            b.timeout = Duration::from_millis(v.0);
        }
        b.fallback_share = match (self.servers, self.fallback_share) {
            (Some(_), Some(_)) => {
                return Err(Refusal::field(
                    "config.shared_budget",
                    "give servers (each server then uses 1/servers of a limit alone) or fallback_share, not both",
                ))
            }
            (Some(n), None) => 1.0 / n.0 as f64,
            (None, Some(Number(f))) => f,
            (None, None) => b.fallback_share,
        };
        if let Some(v) = self.retry_ms {
            b.retry = Duration::from_millis(v.0);
        }
        Ok(b)
    }
}

/// `{"per_second": number, "burst": integer}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    per_second: Number,
    burst: Option<Int<1, 100_000>>,
}

impl RawConfig {
    fn into_config(self) -> Result<Config, Refusal> {
        let version = self.api_version.unwrap_or(ApiVersion::Legacy);
        let community_id =
            match (self.community_id, version) {
                (Some(id), _) => id,
                (None, ApiVersion::V2) => String::new(),
                (None, ApiVersion::Legacy) => return Err(Refusal::field(
                    "config.community_id",
                    "is required by the legacy API (with \"api_version\": \"v2\" the key alone selects the community)",
                )),
            };
        let mut cfg = Config::new(community_id, self.api_key.0).with_api_version(version);
        let ms = |v: Int<0, { u64::MAX }>| Duration::from_millis(v.0);
        if let Some(url) = self.api_url {
            cfg.base_url = resolve_api_url(&url);
        }
        if let Some(v) = self.timeout_ms {
            cfg.timeout = ms(v.widen());
        }
        if let Some(v) = self.delivery {
            cfg.delivery = v;
        }
        if let Some(v) = self.max_pending {
            cfg.max_pending = v.0 as usize;
        }
        cfg.paths = self.paths.unwrap_or_default();
        cfg.sections = self.sections.unwrap_or_default();
        if let Some(v) = self.allow_insecure_http {
            cfg.allow_insecure_http = v;
        }
        if let Some(v) = self.worker_threads {
            cfg.worker_threads = v.0 as usize;
        }
        if let Some(v) = self.max_response_bytes {
            cfg.max_response_bytes = v.0 as usize;
        }
        if let Some(v) = self.primary_identifier {
            cfg.primary_identifier = v;
        }
        if let Some(v) = self.identifier_prefix {
            cfg.identifier_prefix = v;
        }
        if let Some(v) = self.link_check_ttl_ms {
            cfg.link_check_ttl = ms(v.widen());
        }
        if let Some(v) = self.set_api_id_form {
            cfg.set_api_id_form = v;
        }
        if let Some(spec) = self.rate_limits {
            cfg.rate_limits = rate_limits(spec, RateLimits::defaults_for(version))?;
        }
        if let Some(v) = self.rate_limit_margin_ms {
            cfg.rate_limit_margin = ms(v.widen());
        }
        if let Some(v) = self.max_attempts {
            cfg.max_attempts = v.0 as u32;
        }
        if let Some(v) = self.retry_backoff_ms {
            cfg.retry_backoff = ms(v.widen());
        }
        if let Some(v) = self.rate_limit_pause_ms {
            cfg.rate_limit_pause = ms(v.widen());
        }
        if let Some(v) = self.disable_cooldown_ms {
            cfg.disable_cooldown = ms(v.widen());
        }
        cfg.coalesce = self.coalesce.unwrap_or_default().into_iter().map(|(t, v)| (t, ms(v.widen()))).collect();
        if let Some(v) = self.max_request_bytes {
            cfg.max_request_bytes = v.0 as usize;
        }
        if let Some(v) = self.max_connections {
            cfg.max_connections = v.0 as usize;
        }
        cfg.proxy = self.proxy.map(|p| p.trim().trim_end_matches('/').to_string());
        cfg.shared_budget = self.shared_budget.map(RawShared::into_budget).transpose()?;
        Ok(cfg)
    }
}

/// `{"global": {...} | null, "TYPE" or "METHOD /v2/route": {...}}`; keys left out keep their
/// default (the API's defaults).
fn rate_limits(spec: HashMap<String, Option<RawRate>>, defaults: RateLimits) -> Result<RateLimits, Refusal> {
    let mut out = defaults;
    for (key, rate) in spec {
        let field = format!("config.rate_limits.{}", printable(&key));
        let rate = rate.map(|r| Rate { per_second: r.per_second.0, burst: r.burst.map_or(1, |b| b.0 as u32) });
        match (key.as_str(), rate) {
            ("global", rate) => out.global = rate,
            (_, None) => {
                return Err(Refusal::field(
                    field,
                    "expected {\"per_second\": number, \"burst\": integer} (only global may be null)",
                ))
            }
            (_, Some(rate)) => {
                out.per_type.insert(key, rate);
            }
        }
    }
    Ok(out)
}

/// A serde error as a refusal naming the key: `config.<path>: <what was expected>`. The value
/// given is never quoted (it may be the key).
fn refusal(e: serde_path_to_error::Error<serde_json::Error>) -> Refusal {
    let path = e.path().to_string();
    let inner = e.into_inner().to_string();
    let at = |p: &str| if p.is_empty() || p == "." { "config".to_string() } else { format!("config.{p}") };
    let quoted = |s: &str| s.split('`').nth(1).map(printable).unwrap_or_default();
    if let Some(rest) = inner.strip_prefix("missing field ") {
        let field = quoted(rest);
        let parent = at(&path);
        return Refusal::field(format!("{parent}.{field}"), "is required");
    }
    if let Some(rest) = inner.strip_prefix("unknown field ") {
        let key = quoted(rest);
        let known: Vec<String> =
            rest.split(", expected ").nth(1).unwrap_or("").split('`').skip(1).step_by(2).map(str::to_string).collect();
        let where_ = at(path.rsplit_once('.').map_or("", |(parent, _)| parent));
        if where_ == "config" {
            return Refusal::new(format!("config: unknown key '{key}' (known keys: {})", known.join(", ")));
        }
        return Refusal::field(format!("{where_}.{key}"), format!("unknown key (expected {})", known.join(", ")));
    }
    let expected = inner.split(", expected ").nth(1).map(|x| x.split(" at line ").next().unwrap_or(x).to_string());
    let expected = expected.unwrap_or_else(|| "a value of another kind".to_string()).replace('`', "\"");
    Refusal::field(at(&path), format!("expected {expected}"))
}

/// The API key: a string, never quoted in a refusal.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// An integer from `MIN` to `MAX`.
#[derive(Clone, Copy)]
struct Int<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Int<MIN, MAX> {
    fn widen(self) -> Int<0, { u64::MAX }> {
        Int(self.0)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: u64, const MAX: u64>;
        impl<const MIN: u64, const MAX: u64> Visitor<'_> for V<MIN, MAX> {
            type Value = Int<MIN, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an integer from {MIN} to {MAX}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                if (MIN..=MAX).contains(&v) {
                    Ok(Int(v))
                } else {
                    Err(E::invalid_value(de::Unexpected::Unsigned(v), &self))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        d.deserialize_u64(V::<MIN, MAX>)
    }
}

/// Any JSON number.
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Number, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
        }
        d.deserialize_f64(V)
    }
}
