//! What the wire looks like: one room per API version. Each turns a typed [`Call`] into the
//! HTTP request to send and an answer into an [`Outcome`], and says what the engine must know
//! of a call without reading its fields: whether it may be repeated, which bucket paces it,
//! which of its values are secrets.
//!
//! The engine (`client/`) holds one `Box<dyn Api>` and knows no path, envelope, header or error
//! string.

pub(crate) mod answer;
pub(crate) mod legacy;
pub(crate) mod v2;

use crate::error::Refusal;
use crate::request::Call;
use crate::response::{ErrorCode, Failure, Outcome, Success};
use std::sync::Arc;

/// HTTP methods the APIs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// One HTTP request, ready to send: method, path under the base URL (query included) and JSON
/// body. It may hold the API key (the legacy envelope carries it): it is handed to the
/// transport and never logged or formatted.
pub(crate) struct Outgoing {
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// What a 404 means for this request: `NOT_LINKED` when it names a player by their link.
    pub not_found: ErrorCode,
}

/// An HTTP answer as the transport saw it.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    /// A 3xx answer's `Location`, as an origin (`scheme://host:port`), never followed.
    pub redirect_to: Option<String>,
    /// `RateLimit-Reset`, else `X-RateLimit-Reset`.
    pub rate_limit_reset: Option<String>,
    /// `x-trace-id`, else `x-kong-request-id`.
    pub trace_id: Option<String>,
    pub body: Vec<u8>,
}

/// Whether a request may be sent again after it may have reached the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Sending it twice has the effect of sending it once.
    Repeatable,
    /// Never sent twice once a byte may have reached the API.
    Once,
}

/// A header every request carries (`Authorization` for an API that authenticates by header).
pub(crate) struct Header {
    pub name: &'static str,
    pub value: String,
    /// Kept out of every debug output (reqwest marks it sensitive).
    pub sensitive: bool,
}

/// One API's wire format.
pub(crate) trait Api: Send + Sync {
    /// Headers every request carries.
    fn headers(&self) -> Vec<Header>;
    /// The HTTP request for `call`, or a refusal when the call cannot be sent to this API (a
    /// type without a known path).
    fn encode(&self, call: &Call) -> Result<Outgoing, Refusal>;
    /// The outcome of an answer to `out`, a call of `request_type`. A failure's message may
    /// quote the server's text whole: the engine redacts it, then clips it.
    fn decode(&self, out: &Outgoing, request_type: &str, raw: RawResponse) -> Outcome;
    /// Whether sending `call` twice has the effect of sending it once.
    fn retry_class(&self, call: &Call) -> RetryClass;
    /// Which client-side bucket paces `call` (its type, or its route).
    fn pacing_key(&self, call: &Call) -> Arc<str>;
    /// Values `call` carries that must never appear in a text the library hands out.
    fn secrets<'c>(&self, call: &'c Call) -> Vec<&'c str>;
    /// A call whose answer `call` needs before it can be encoded (v2 names an identifier's
    /// account by UUID: given a player instead, the UUID comes from `links/check` first).
    fn prerequisite(&self, _call: &Call) -> Option<Call> {
        None
    }
    /// `call` completed with what its prerequisite answered.
    fn after_prerequisite(&self, call: &Call, _answer: &Success) -> Result<Call, Failure> {
        Ok(call.clone())
    }
}
