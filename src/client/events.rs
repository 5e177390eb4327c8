//! The log hook: one line of text for each decision the client takes on its own (a type paused
//! by a 429, a retry, sending stopped after a fatal answer, a coalesced call), with the API key
//! and session ids redacted before the hook sees it.

use std::sync::{Arc, RwLock};

/// How much a log line matters. The number is what the C callback receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i32)]
pub enum Level {
    /// Routine detail (a coalesced call went out).
    Debug = 0,
    /// A decision that needs no action (a retry, a stop that ran out).
    Info = 1,
    /// Something the server owner should look at if it repeats (a 429 pause, a request not
    /// retried because repeating it is not safe).
    Warn = 2,
    /// Sending stopped after a fatal configuration answer.
    Error = 3,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// A log hook. It runs on a library worker thread (`sonoran-worker`), possibly on two at once,
/// and must return quickly; it must not install another hook from inside itself.
pub type LogHook = Box<dyn Fn(Level, &str) + Send + Sync + 'static>;

#[derive(Default)]
pub(crate) struct Events {
    hook: RwLock<Option<Arc<LogHook>>>,
}

impl Events {
    /// Install (or with `None` remove) the hook. Once this returns, the previous hook is no
    /// longer running and will not be called again.
    pub(crate) fn set(&self, hook: Option<LogHook>) {
        *self.hook.write().unwrap_or_else(|p| p.into_inner()) = hook.map(Arc::new);
    }

    pub(crate) fn enabled(&self) -> bool {
        self.hook.read().map(|h| h.is_some()).unwrap_or(false)
    }

    /// Call the hook with an already-redacted message. A panicking hook is contained.
    pub(crate) fn emit(&self, level: Level, message: &str) {
        let guard = self.hook.read().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = guard.as_ref() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(level, message)));
        }
    }
}
