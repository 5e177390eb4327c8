//! HTTP: one pooled reqwest client (rustls), bodies read under a size cap, failures described
//! with their whole cause chain.

use crate::config::Config;
use crate::error::Refusal;
use crate::response::{ErrorCode, Failure};
use crate::wire::RawResponse;
use std::time::Duration;

pub(crate) struct Transport {
    http: reqwest::Client,
    base_url: String,
    max_response_bytes: usize,
}

impl Transport {
    pub(crate) fn new(config: &Config) -> Result<Transport, Refusal> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("sonoran/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Refusal::new(format!("could not set up the HTTP client: {}", describe(&e))))?;
        Ok(Transport { http, base_url: config.base_url.clone(), max_response_bytes: config.max_response_bytes })
    }

    /// POST a JSON body to `{base}{path}` and read the whole answer (up to the size cap).
    pub(crate) async fn post(&self, path: &str, body: Vec<u8>) -> Result<RawResponse, Failure> {
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
        Ok(RawResponse { status, content_type, retry_after, body })
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
