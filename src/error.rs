//! Refusals: input the library will not send, with a message naming the field, and a stable
//! code saying which kind of refusal it is (for hosts that branch on it).

use std::fmt;

/// Which kind of refusal: what a host can branch on without reading the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// An argument was refused (a field, JSON, a NULL pointer, a size cap); the message names it.
    InvalidArgument,
    /// The configuration was refused; the message names the key.
    InvalidConfig,
    /// The call exists on the other API only (`api_version` decides).
    WrongApi,
    /// `max_pending` requests are pending: poll, then try again.
    QueueFull,
    /// The client is closed.
    Closed,
    /// The system refused a resource the library needs (a thread, the runtime, the HTTP client).
    System,
    /// The library caught a panic (a bug).
    Internal,
}

impl RefusalKind {
    /// Every kind, in the order of their numbers (1, 2, ...).
    pub const ALL: [RefusalKind; 7] = [
        RefusalKind::InvalidArgument,
        RefusalKind::InvalidConfig,
        RefusalKind::WrongApi,
        RefusalKind::QueueFull,
        RefusalKind::Closed,
        RefusalKind::System,
        RefusalKind::Internal,
    ];

    /// The stable name: `"INVALID_ARGUMENT"`, `"QUEUE_FULL"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::InvalidArgument => "INVALID_ARGUMENT",
            RefusalKind::InvalidConfig => "INVALID_CONFIG",
            RefusalKind::WrongApi => "WRONG_API",
            RefusalKind::QueueFull => "QUEUE_FULL",
            RefusalKind::Closed => "CLOSED",
            RefusalKind::System => "SYSTEM",
            RefusalKind::Internal => "INTERNAL",
        }
    }

    /// The stable number (the C ABI's `SONORAN_REFUSED_*`); 0 is "no refusal".
    pub fn number(self) -> i32 {
        RefusalKind::ALL.iter().position(|k| *k == self).map_or(0, |i| i as i32 + 1)
    }
}

/// Why a configuration or a request was refused before anything was sent.
///
/// The message names the offending field (`data[0].apiIds[1]`, `timeout_ms`, ...) and what was
/// expected. It never quotes the API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    kind: RefusalKind,
    message: String,
}

impl Refusal {
    /// A refused argument, with a free-form message.
    pub fn new(message: impl Into<String>) -> Self {
        Refusal { kind: RefusalKind::InvalidArgument, message: message.into() }
    }

    /// A refused argument, for one field: `"{field}: {problem}"`.
    pub fn field(field: impl fmt::Display, problem: impl fmt::Display) -> Self {
        Refusal::new(format!("{field}: {problem}"))
    }

    /// A refusal of another kind.
    pub fn of(kind: RefusalKind, message: impl Into<String>) -> Self {
        Refusal { kind, message: message.into() }
    }

    /// The same refusal as another kind (a configuration's argument refusals are
    /// `InvalidConfig`).
    pub fn as_kind(self, kind: RefusalKind) -> Self {
        Refusal { kind, ..self }
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Which kind of refusal.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}
