//! HTTP: one pooled reqwest client (rustls), bodies read under a size cap, failures described
//! with their whole cause chain and with whether anything was sent.
//!
//! The API key travels in every request, so the client goes nowhere but the configured origin:
//! redirects are never followed (a 3xx is an answer, classified as an error), environment
//! proxies (`HTTP_PROXY`, `ALL_PROXY`, ...) are ignored, and only the `proxy` configuration
//! sends requests through a proxy. At most `max_connections` requests are on the wire at once,
//! so a burst waits for a connection instead of opening one socket per request.

use crate::api::{Header, Method, Outgoing, RawResponse};
use crate::config::Config;
use crate::error::{Refusal, RefusalKind};
use crate::response::{ErrorCode, Failure};
use std::time::Duration;

/// rustls with the aws-lc-rs provider (rustls' own default, with post-quantum hybrid key
/// exchange) and the Mozilla root certificates compiled in (webpki-roots): it needs no CA
/// bundle on the host (game servers often run in minimal containers) and installs no
/// process-wide provider (the host may use rustls itself).
fn tls_config() -> Result<rustls::ClientConfig, Refusal> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Refusal::of(RefusalKind::System, format!("could not set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A call that got no answer, and whether any of it can have reached the server: retry
/// decisions rest on this, never on a message's text.
pub(crate) struct SendError {
    pub failure: Failure,
    /// Nothing was sent: the connection could not be made (or timed out while being made).
    pub nothing_sent: bool,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    base_url: String,
    max_response_bytes: usize,
    /// One permit per connection the client may use (`max_connections`).
    connections: tokio::sync::Semaphore,
}

impl Transport {
    /// The HTTP client for `config`, sending `headers` with every request.
    pub(crate) fn new(config: &Config, headers: &[Header]) -> Result<Transport, Refusal> {
        let mut default_headers = reqwest::header::HeaderMap::new();
        for h in headers {
            let mut value = reqwest::header::HeaderValue::from_str(&h.value).map_err(|_| {
                Refusal::of(RefusalKind::InvalidConfig, format!("{}: not usable in an HTTP header", h.name))
            })?;
            value.set_sensitive(h.sensitive);
            default_headers.insert(h.name, value);
        }
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .user_agent(concat!("sonoran/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.max_connections)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(default_headers)
            .no_proxy();
        if let Some(proxy) = &config.proxy {
            let proxy = reqwest::Proxy::all(proxy.as_str())
                .map_err(|e| Refusal::field("config.proxy", format!("not usable as a proxy: {}", describe(&e))))?;
            builder = builder.proxy(proxy);
        }
        let http = builder.build().map_err(|e| {
            Refusal::of(RefusalKind::System, format!("could not set up the HTTP client: {}", describe(&e)))
        })?;
        Ok(Transport {
            http,
            base_url: config.base_url.clone(),
            max_response_bytes: config.max_response_bytes,
            connections: tokio::sync::Semaphore::new(config.max_connections),
        })
    }

    /// Send one request to `{base}{path}` and read the whole answer (up to the size cap).
    pub(crate) async fn send(&self, out: &Outgoing) -> Result<RawResponse, SendError> {
        // Held until the whole answer is read: the connection is in use that long.
        let _connection = self.connections.acquire().await.map_err(|_| SendError {
            failure: Failure::new(0, ErrorCode::Shutdown, "the client was closed before the request was sent"),
            nothing_sent: true,
        })?;
        let method = match out.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut request = self.http.request(method, format!("{}{}", self.base_url, out.path));
        if let Some(body) = &out.body {
            request =
                request.header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8").body(body.clone());
        }
        let mut resp = request.send().await.map_err(|e| transport_failure(&e, 0))?;
        let status = resp.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let named = |a: &'static str, b: &'static str| {
            header(reqwest::header::HeaderName::from_static(a))
                .or_else(|| header(reqwest::header::HeaderName::from_static(b)))
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let rate_limit_reset = named("ratelimit-reset", "x-ratelimit-reset");
        let trace_id = named("x-trace-id", "x-kong-request-id");
        let redirect_to = resp.status().is_redirection().then(|| {
            header(reqwest::header::LOCATION)
                .and_then(|to| resp.url().join(&to).ok())
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_else(|| "an address it did not give (no usable Location)".to_string())
        });
        let too_large = |n: u64| SendError {
            failure: Failure::new(
                status,
                ErrorCode::BadResponse,
                format!(
                    "HTTP {status}: the answer is larger than max_response_bytes ({n} > {} bytes)",
                    self.max_response_bytes
                ),
            ),
            nothing_sent: false,
        };
        if let Some(len) = resp.content_length() {
            if len > self.max_response_bytes as u64 {
                return Err(too_large(len));
            }
        }
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport_failure(&e, status))? {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse { status, content_type, retry_after, redirect_to, rate_limit_reset, trace_id, body })
    }
}

/// A failure of reqwest's, with whether anything was sent: the transport's only timeout is its
/// connect timeout (the request's deadline is the engine's), so a timeout sent nothing either.
fn transport_failure(e: &reqwest::Error, status: u16) -> SendError {
    let nothing_sent = status == 0 && (e.is_connect() || e.is_timeout());
    if e.is_timeout() {
        let failure = Failure::new(status, ErrorCode::Timeout, format!("timed out: {}", describe(e)));
        return SendError { failure, nothing_sent };
    }
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    SendError { failure: Failure::new(status, ErrorCode::Network, format!("{what}: {}", describe(e))), nothing_sent }
}

/// An error and every cause under it, joined with ": ", repeated text left out.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}
