//! The in-game flows, written against the engine's public surface ([`Client::submit_task`],
//! [`Engine::send`](crate::client::Engine::send)) like any user of the crate: the tablet's login
//! capture ([`session`]), linking a player from it and the API ID checker ([`linking`]), and
//! v2's link codes ([`link_code`]).
//!
//! [`Client::submit_task`]: crate::Client::submit_task

pub(crate) mod link_code;
pub(crate) mod linking;
pub(crate) mod session;
