//! The cost of the shared budget's check (`shared_budget`): sequential GET_ACCOUNT through a
//! client whose budget is kept in Redis (a redis-server on loopback, started here on a free
//! port and stopped at the end) and through one with the local bucket alone, alternating in
//! one run against the same emulator, with rates far above what the run reaches so that only
//! the check's cost shows.

use sonoran::{Call, Client, Config, Delivery, Rate, RateLimits, SharedBudget};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const ROUNDS: usize = 4;
pub const PER_ROUND: usize = 500;
const WARM_UP: usize = 50;

/// A redis-server for the run; killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Ok(None)` when redis-server is not installed.
fn start_redis() -> Result<Option<RedisServer>, String> {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let child = match Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("running redis-server: {e}")),
    };
    let server = RedisServer { child, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not start listening within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Some(server))
}

/// Per-request latencies (µs, submit to result on this thread) of both clients, and the shared
/// client's `stats.shared_budget` at the end.
pub struct Measured {
    pub local_us: Vec<f64>,
    pub shared_us: Vec<f64>,
    pub failed: usize,
    pub shared_stats: serde_json::Value,
}

fn client(url: &str, community: &str, key: &str, redis: Option<u16>) -> Result<Client, String> {
    let mut cfg = Config::new(community, key).with_api_url(url);
    // Far above the run's ~1,000-2,000 requests a second: the bucket never makes one wait.
    let rate = Rate { per_second: 100_000.0, burst: 100_000 };
    cfg.rate_limits = RateLimits { global: Some(rate), per_type: Default::default() };
    cfg.delivery = Delivery::Thread;
    cfg.shared_budget = redis.map(|port| SharedBudget::new(format!("redis://127.0.0.1:{port}/0")));
    Client::new(cfg).map_err(|e| e.to_string())
}

/// `n` requests one after the other; each one's latency in µs.
fn sequential(client: &Client, n: usize, failed: &mut usize) -> Result<Vec<f64>, String> {
    let (tx, rx) = mpsc::channel::<bool>();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let call = Call::get_account(serde_json::json!({"username": "SonoranBrian"})).map_err(|e| e.to_string())?;
        let tx = tx.clone();
        let t0 = Instant::now();
        client
            .submit(
                call,
                Some(Box::new(move |c: sonoran::Completion| {
                    let _ = tx.send(c.is_ok());
                })),
            )
            .map_err(|e| e.to_string())?;
        let ok = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| "no result within 30 s".to_string())?;
        out.push(t0.elapsed().as_secs_f64() * 1e6);
        if !ok {
            *failed += 1;
        }
    }
    Ok(out)
}

/// `Ok(None)`: skipped, redis-server is not installed.
pub fn run(url: &str, community: &str, key: &str) -> Result<Option<Measured>, String> {
    let Some(redis) = start_redis()? else { return Ok(None) };
    let local = client(url, community, key, None)?;
    let shared = client(url, community, key, Some(redis.port))?;
    let mut m = Measured { local_us: Vec::new(), shared_us: Vec::new(), failed: 0, shared_stats: Default::default() };
    let mut ignored = 0;
    sequential(&local, WARM_UP, &mut ignored)?;
    sequential(&shared, WARM_UP, &mut ignored)?;
    for _ in 0..ROUNDS {
        m.local_us.extend(sequential(&local, PER_ROUND, &mut m.failed)?);
        m.shared_us.extend(sequential(&shared, PER_ROUND, &mut m.failed)?);
    }
    m.shared_stats = shared.stats().shared_budget;
    if m.shared_stats["mode"] != "shared" {
        return Err(format!("the shared client did not share: {}", m.shared_stats));
    }
    drop(shared);
    drop(redis);
    Ok(Some(m))
}
