//! # sonoran
//!
//! A non-blocking client for the Sonoran CAD web API, for game servers. Every request is queued
//! onto the library's own tokio runtime; its result is delivered exactly once, either inside
//! [`Client::poll`] on the game thread or on a library delivery thread.
//!
//! The rooms (the README's "Layout" has one line each): the engine (`client/`) knows neither C
//! nor Lua nor a wire format; each API's wire format has its room under `api/`; the in-game
//! flows (`flows/`) are written against the engine's public surface; [`ffi`] is the C ABI and
//! `lua/` (behind the `lua54` / `luajit` / `lua51` features; `gmod` adds Garry's Mod's entry
//! points to the LuaJIT build) the Lua module, both thin faces.

mod api;
mod client;
mod config;
mod error;
pub mod ffi;
mod flows;
#[cfg(any(feature = "lua54", feature = "luajit", feature = "lua51"))]
mod lua;
mod request;
mod response;
mod text;
mod transport;

#[cfg(any(
    all(feature = "lua54", feature = "luajit"),
    all(feature = "lua51", feature = "lua54"),
    all(feature = "luajit", feature = "lua51")
))]
compile_error!(
    "enable exactly one of the features lua54, luajit, lua51 (gmod is the luajit build plus Garry's Mod's entry \
     points): each build of the Lua module targets one Lua ABI"
);

pub use api::RetryClass;
pub use client::{Callback, Client, ClientStats, Engine, Handler, Level, LogHook, Prepare};
pub use config::{
    ApiKey, ApiVersion, Config, Delivery, IdentifierType, Rate, RateLimits, SetApiIdForm, SharedBudget,
    DEFAULT_GLOBAL_RATE, MAX_SERVER_WAIT, MIN_API_KEY_CHARS,
};
pub use error::{Refusal, RefusalKind};
pub use flows::link_code::CREATE_LINK_CODE;
pub use flows::linking::{PlayerIds, IS_LINKED, LINK_FROM_TABLET};
pub use flows::session::{parse_session, parse_session_value, Capture};
pub use request::{Call, Kind, PERMISSIONS};
pub use response::{Completion, ErrorCode, Failure, Outcome, Success};

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
