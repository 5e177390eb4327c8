//! Results: the one shape every accepted request completes with.

use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// Defines [`ErrorCode`] from one list: each variant with its code text. The C header's block
/// and the README's table are checked against this list by `tests/docs.rs`.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $text:literal,)*) => {
        /// Stable, machine-readable error codes. Each is documented in the README and the C header.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in documentation order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in result JSON, e.g. `"NOT_LINKED"`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

error_codes! {
    /// 400 `INVALID REQUEST TYPE`.
    InvalidRequestType => "INVALID_REQUEST_TYPE",
    /// 400 `INVALID COMMUNITY ID`.
    InvalidCommunityId => "INVALID_COMMUNITY_ID",
    /// 400 `API IS NOT ENABLED FOR THIS COMMUNITY` / `API ENDPOINT IS NOT ENABLED ...`.
    ApiNotEnabled => "API_NOT_ENABLED",
    /// 400 `INVALID API KEY`.
    InvalidApiKey => "INVALID_API_KEY",
    /// 404 `API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY`.
    NotLinked => "NOT_LINKED",
    /// HTTP 200 `Backend Service Reached`: nothing answers at this path.
    InvalidEndpoint => "INVALID_ENDPOINT",
    /// v2, 404: the account, identifier or route named does not exist (a player's link that
    /// does not exist is `NOT_LINKED`).
    NotFound => "NOT_FOUND",
    /// v2, 400: the server refused the request as invalid; the message carries its `detail`.
    InvalidRequest => "INVALID_REQUEST",
    /// v2, 403: refused; for the tablet link, the account and secret UUIDs do not match an
    /// account in the community.
    Forbidden => "FORBIDDEN",
    /// v2, 409: the change conflicts with the community's data.
    Conflict => "CONFLICT",
    /// HTTP 429; `retry_after_ms` carries the server's `Retry-After` when it sent one.
    RateLimited => "RATE_LIMITED",
    /// HTTP 5xx.
    ServerError => "SERVER_ERROR",
    /// Any other HTTP status that is not a success, a 3xx (never followed) included.
    HttpError => "HTTP_ERROR",
    /// An answer the library could not read (not UTF-8, invalid JSON, too large).
    BadResponse => "BAD_RESPONSE",
    /// No complete answer within the request's timeout.
    Timeout => "TIMEOUT",
    /// Connecting, sending or receiving failed; the message carries the cause chain.
    Network => "NETWORK",
    /// Cancelled by the caller before it completed.
    Cancelled => "CANCELLED",
    /// The client was closed or freed before the request completed.
    Shutdown => "SHUTDOWN",
    /// Tablet / checker flows: the player has no identifier of the configured type.
    NoIdentifier => "NO_IDENTIFIER",
    /// Not sent: sending is stopped after a fatal configuration answer (`INVALID_API_KEY`,
    /// `INVALID_COMMUNITY_ID` stop every type, `API_NOT_ENABLED` its type) until the client is
    /// resumed or `disable_cooldown_ms` passes. `disabled_by` names the original error.
    ApiDisabled => "API_DISABLED",
    /// The library caught a panic (a bug) while running the request; Rust's panic hook wrote
    /// its message to stderr. The request may or may not have reached the API.
    Internal => "INTERNAL",
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A successful answer: the HTTP status and the body (parsed JSON, or the text).
#[derive(Clone, Debug, PartialEq)]
pub struct Success {
    pub status: u16,
    pub data: Value,
    /// The server's trace id for this answer (v2: the problem's `traceId`, or the `x-trace-id` /
    /// `x-kong-request-id` header), what the vendor's support asks for.
    pub trace_id: Option<String>,
}

impl Success {
    pub fn new(status: u16, data: Value) -> Self {
        Success { status, data, trace_id: None }
    }
}

/// A failed request: the HTTP status (0 when no answer came), a code and a message a server
/// owner can act on.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: Option<u64>,
    /// `API_DISABLED`: the fatal answer that stopped sending (`INVALID_API_KEY`, ...).
    pub disabled_by: Option<ErrorCode>,
    /// The server's trace id, when it sent one (see [`Success::trace_id`]).
    pub trace_id: Option<String>,
}

impl Failure {
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { status, code, message: message.into(), retry_after_ms: None, disabled_by: None, trace_id: None }
    }
}

/// What a request completed with.
pub type Outcome = Result<Success, Failure>;

/// One completed request: delivered exactly once to its callback.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub id: u64,
    pub request_type: Arc<str>,
    pub outcome: Outcome,
}

impl Completion {
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The error code, when it failed.
    pub fn code(&self) -> Option<ErrorCode> {
        self.outcome.as_ref().err().map(|f| f.code)
    }

    /// The result envelope as JSON text:
    /// `{"id":7,"type":"GET_ACCOUNT","ok":true,"status":200,"data":...}` or
    /// `{"id":9,"type":"GET_ACCOUNT","ok":false,"status":404,"error":{"code":"NOT_LINKED","message":"..."}}`
    /// (`retry_after_ms` follows `error` when the server sent one; `API_DISABLED` results carry
    /// `disabled_by`, the code of the answer that stopped sending).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.envelope()).expect("serializing a result cannot fail")
    }

    /// The result envelope as a JSON value (same shape as [`Completion::to_json`]).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self.envelope()).expect("serializing a result cannot fail")
    }

    fn envelope(&self) -> Envelope<'_> {
        match &self.outcome {
            Ok(s) => Envelope {
                id: self.id,
                request_type: &self.request_type,
                ok: true,
                status: s.status,
                data: Some(&s.data),
                error: None,
                retry_after_ms: None,
                disabled_by: None,
                trace_id: s.trace_id.as_deref(),
            },
            Err(f) => Envelope {
                id: self.id,
                request_type: &self.request_type,
                ok: false,
                status: f.status,
                data: None,
                error: Some(ErrorBody { code: f.code, message: &f.message }),
                retry_after_ms: f.retry_after_ms,
                disabled_by: f.disabled_by,
                trace_id: f.trace_id.as_deref(),
            },
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    id: u64,
    #[serde(rename = "type")]
    request_type: &'a str,
    ok: bool,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_by: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: ErrorCode,
    message: &'a str,
}
