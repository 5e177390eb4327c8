//! Refusals: input the library will not send, with a message naming the field.

use std::fmt;

/// Why a configuration or a request was refused before anything was sent.
///
/// The message names the offending field (`data[0].apiIds[1]`, `timeout_ms`, ...) and what was
/// expected. It never quotes the API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    message: String,
}

impl Refusal {
    /// A refusal with a free-form message.
    pub fn new(message: impl Into<String>) -> Self {
        Refusal { message: message.into() }
    }

    /// A refusal for one field: `"{field}: {problem}"`.
    pub fn field(field: impl fmt::Display, problem: impl fmt::Display) -> Self {
        Refusal { message: format!("{field}: {problem}") }
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}
