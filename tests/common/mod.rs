//! Shared by the integration tests: the emulator (the real one from examples/) and a result
//! collector.
#![allow(dead_code)]

#[path = "../../examples/emulator/mod.rs"]
pub mod emulator;
pub mod hostile;
pub mod redis;

#[allow(unused_imports)]
pub use emulator::{Emulator, Faults, LogEntry, Options, RateLimit, RetryAfter};
use sonoran::{ApiVersion, Client, Completion, Config, Handler};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn start() -> Emulator {
    Emulator::start(Options::default()).expect("emulator starts")
}

pub fn start_with(faults: Faults) -> Emulator {
    Emulator::start(Options { faults, ..Options::default() }).expect("emulator starts")
}

/// A configuration for the emulator. Client-side pacing is off: these tests are about other
/// things, and the emulator is local (tests/faults.rs covers the limiter and its defaults).
pub fn config_for(emu: &Emulator) -> Config {
    let mut cfg = Config::new(emu.community_id(), emu.api_key()).with_api_url(&emu.base_url());
    cfg.rate_limits = sonoran::RateLimits::unlimited();
    cfg
}

pub fn client_for(emu: &Emulator) -> Client {
    Client::new(config_for(emu)).expect("client starts")
}

/// The two APIs the scenarios run against (the emulator serves both on one port).
pub const APIS: [ApiVersion; 2] = [ApiVersion::Legacy, ApiVersion::V2];

/// `config_for` on one API: in v2 without a community id (the key selects it), and still
/// without client-side pacing.
pub fn config_for_api(emu: &Emulator, api: ApiVersion) -> Config {
    let mut cfg = match api {
        ApiVersion::Legacy => Config::new(emu.community_id(), emu.api_key()),
        ApiVersion::V2 => Config::v2(emu.api_key()),
    }
    .with_api_url(&emu.base_url());
    cfg.rate_limits = sonoran::RateLimits::unlimited();
    cfg
}

/// Submit one call and wait for its result.
pub fn run_one(client: &Client, call: sonoran::Call) -> Completion {
    let col = Collector::default();
    let id = client.submit(call, col.handler()).expect("accepted");
    poll_until(client, &col, 1, Duration::from_secs(30));
    col.get(id)
}

/// Collects results by request id, counting how often each id was delivered.
#[derive(Clone, Default)]
pub struct Collector {
    pub results: Arc<Mutex<Vec<(Completion, String)>>>,
}

impl Collector {
    pub fn handler(&self) -> Option<Handler> {
        let results = self.results.clone();
        Some(Box::new(move |c: Completion| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            results.lock().unwrap().push((c, thread));
        }))
    }

    pub fn len(&self) -> usize {
        self.results.lock().unwrap().len()
    }

    pub fn get(&self, id: u64) -> Completion {
        let r = self.results.lock().unwrap();
        let found: Vec<&Completion> = r.iter().map(|(c, _)| c).filter(|c| c.id == id).collect();
        assert_eq!(found.len(), 1, "request {id} delivered {} times", found.len());
        found[0].clone()
    }

    /// Every id delivered exactly once; returns the count per id.
    pub fn assert_each_once(&self, ids: &[u64]) {
        let r = self.results.lock().unwrap();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (c, _) in r.iter() {
            *seen.entry(c.id).or_default() += 1;
        }
        for id in ids {
            assert_eq!(seen.get(id).copied().unwrap_or(0), 1, "request {id} not delivered exactly once");
        }
        assert_eq!(seen.len(), ids.len(), "results for ids that were never submitted");
    }
}

/// Poll until `n` results have been collected (bounded: panics after `limit`).
pub fn poll_until(client: &Client, collector: &Collector, n: usize, limit: Duration) {
    let start = Instant::now();
    while collector.len() < n {
        client.poll(0, |_| {});
        assert!(start.elapsed() < limit, "only {} of {n} results after {limit:?}", collector.len());
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Names of this process's threads (Linux).
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|s| s.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The library's threads once any that were just joined are gone (a joined thread can still be
/// listed for a moment while the kernel finishes its exit): waits up to 100 ms for the count to
/// come down to `expected`, so a thread that really keeps running is still caught.
pub fn library_threads_settled(expected: usize) -> usize {
    let mut n = library_threads();
    for _ in 0..20 {
        if n <= expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        n = library_threads();
    }
    n
}

pub fn library_threads() -> usize {
    // /proc truncates names to 15 bytes: "sonoran-worker", "sonoran-deliver(y)".
    thread_names().iter().filter(|n| n.as_str() == "sonoran-worker" || n.starts_with("sonoran-deliver")).count()
}
