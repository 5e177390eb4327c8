//! # sonoran
//!
//! A non-blocking client for the Sonoran CAD web API, for game servers. Every request is queued
//! onto the library's own tokio runtime; its result is delivered exactly once, either inside
//! [`Client::poll`] on the game thread or on a library delivery thread.
//!
//! Layers: the core (`config`, `request`, `wire`, `transport`, `response`, `client`) knows
//! neither C nor Lua; [`ffi`] is the C ABI and `lua` (behind the `lua54` / `luajit` / `lua51`
//! features) the Lua module, both thin translators over the core.

pub mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod ffi;
pub mod linking;
#[cfg(any(feature = "lua54", feature = "luajit", feature = "lua51"))]
mod lua;
pub mod policy;
pub mod ratelimit;
mod redact;
pub mod request;
pub mod response;
pub mod session;
mod stats;
mod transport;
pub mod wire;

#[cfg(any(
    all(feature = "lua54", feature = "luajit"),
    all(feature = "lua54", feature = "lua51"),
    all(feature = "luajit", feature = "lua51")
))]
compile_error!(
    "enable exactly one of the features lua54, luajit, lua51: each build of the Lua module targets one Lua ABI"
);

pub use client::{Client, ClientStats, Handler, Prepare};
pub use config::{ApiKey, Config, Delivery, IdentifierType, RateLimits, SetApiIdForm};
pub use error::Refusal;
pub use events::{Level, LogHook};
pub use linking::PlayerIds;
pub use policy::RetryClass;
pub use ratelimit::{Rate, DEFAULT_GLOBAL_RATE};
pub use request::{Call, Kind, PERMISSIONS};
pub use response::{Completion, ErrorCode, Failure, Outcome, Success};
pub use session::{parse_session, parse_session_value, Capture};

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
