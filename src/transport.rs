//! HTTP: one pooled reqwest client (rustls), bodies read under a size cap, failures described
//! with their whole cause chain.
//!
//! The API key travels in every request, so the client goes nowhere but the configured origin:
//! redirects are never followed (a 3xx is an answer, classified as an error), environment
//! proxies (`HTTP_PROXY`, `ALL_PROXY`, ...) are ignored, and only the `proxy` configuration
//! sends requests through a proxy. At most `max_connections` requests are on the wire at once,
//! so a burst waits for a connection instead of opening one socket per request.

use crate::config::Config;
use crate::error::Refusal;
use crate::response::{ErrorCode, Failure};
use crate::wire::RawResponse;
use std::time::Duration;

pub(crate) struct Transport {
    http: reqwest::Client,
    base_url: String,
    max_response_bytes: usize,
    /// One permit per connection the client may use (`max_connections`).
    connections: tokio::sync::Semaphore,
}

impl Transport {
    pub(crate) fn new(config: &Config) -> Result<Transport, Refusal> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sonoran/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.max_connections)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(proxy) = &config.proxy {
            let proxy = reqwest::Proxy::all(proxy.as_str())
                .map_err(|e| Refusal::field("config.proxy", format!("not usable as a proxy: {}", describe(&e))))?;
            builder = builder.proxy(proxy);
        }
        let http =
            builder.build().map_err(|e| Refusal::new(format!("could not set up the HTTP client: {}", describe(&e))))?;
        Ok(Transport {
            http,
            base_url: config.base_url.clone(),
            max_response_bytes: config.max_response_bytes,
            connections: tokio::sync::Semaphore::new(config.max_connections),
        })
    }

    /// POST a JSON body to `{base}{path}` and read the whole answer (up to the size cap).
    pub(crate) async fn post(&self, path: &str, body: Vec<u8>) -> Result<RawResponse, Failure> {
        // Held until the whole answer is read: the connection is in use that long.
        let _connection =
            self.connections.acquire().await.map_err(|_| {
                Failure::new(0, ErrorCode::Shutdown, "the client was closed before the request was sent")
            })?;
        let url = format!("{}{}", self.base_url, path);
        let mut resp = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_failure(&e, 0))?;
        let status = resp.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let redirect_to = resp.status().is_redirection().then(|| {
            header(reqwest::header::LOCATION)
                .and_then(|to| resp.url().join(&to).ok())
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_else(|| "an address it did not give (no usable Location)".to_string())
        });
        let too_large = |n: u64| {
            Failure::new(
                status,
                ErrorCode::BadResponse,
                format!(
                    "HTTP {status}: the answer is larger than max_response_bytes ({n} > {} bytes)",
                    self.max_response_bytes
                ),
            )
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
        Ok(RawResponse { status, content_type, retry_after, redirect_to, body })
    }
}

fn transport_failure(e: &reqwest::Error, status: u16) -> Failure {
    if e.is_timeout() {
        return Failure::new(status, ErrorCode::Timeout, format!("timed out: {}", describe(e)));
    }
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    Failure::new(status, ErrorCode::Network, format!("{what}: {}", describe(e)))
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
