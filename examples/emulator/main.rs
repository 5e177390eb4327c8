//! Command-line front end of the Sonoran CAD API emulator (legacy and v2 on one port).
//!
//! cargo run --release --example emulator -- --addr 127.0.0.1:0
//!
//! Prints exactly one line on stdout, `sonoran emulator listening on http://127.0.0.1:PORT`,
//! then serves until Ctrl-C or SIGTERM. With logging on, one line per request goes to stderr.

#[path = "mod.rs"]
mod emulator;

use emulator::{Emulator, Faults, Fixture, LogEntry, Options, RateLimit, RetryAfter};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

const USAGE: &str = "\
Offline emulator of the Sonoran CAD web API, legacy and v2 on one port over one state
(loopback only).

USAGE:
    emulator [OPTIONS]

OPTIONS:
    --addr ADDR             Loopback address to listen on [default: 127.0.0.1:0]; port 0 picks
                            a free port. The chosen URL is printed as the only stdout line:
                            `sonoran emulator listening on http://127.0.0.1:PORT`.
    --fixture FILE          JSON seed data (community_id, api_key, version, disabled_types,
                            accounts, identifiers, servers) [default: the embedded
                            fixture.json].
    --latency-ms N          Delay added to every answer, in milliseconds [default: 0].
    --rate-limit N/SECONDS  Token bucket: N requests at once, refilled at N per SECONDS;
                            requests over it get 429 {\"message\":\"API rate limit exceeded\"}.
    --retry-after MODE      Retry-After header on 429 answers: `seconds` (time until a token is
                            free, rounded up, at least 1) [default], a fixed number of seconds
                            (e.g. `30`), `date` (an HTTP date) or `none` (no header).
    --error-rate F          Share (0.0-1.0) of requests answered 500/502/503, no state change.
    --hang-rate F           Share (0.0-1.0) of requests never answered (held open).
    --drop-rate F           Share (0.0-1.0) of requests whose connection is closed unanswered.
    --seed N                Seed of the fault PRNG [default: 0]; same seed, same faults.
    --strict-envelope       Refuse envelope keys beyond id, key, type and data (400 malformed);
                            by default they are ignored, as the real API does.
    --v2-limits             v2: enforce the published per-route limits (10 or 30 a minute per
                            key) in fixed windows, answering the gateway's 429.
    --v2-window-ms N        v2: the length of those windows [default: 60000].
    --v2-unlinked-success-false
                            v2: answer an unlinked links/check with the observed
                            {\"success\": false} body instead of {\"linked\": false}.
    --no-log                Do not print one line per request on stderr.
    -h, --help              Print this help.
";

fn fail(msg: &str) -> ! {
    eprintln!("emulator: {msg}");
    eprintln!("try `--help`");
    std::process::exit(2);
}

fn rate(flag: &str, v: &str) -> f64 {
    match v.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => f,
        _ => fail(&format!("{flag}: expected a number between 0.0 and 1.0, got `{v}`")),
    }
}

fn parse_args(args: Vec<String>) -> (Options, bool) {
    let mut opts = Options::default();
    let mut faults = Faults::default();
    let mut rate_limit: Option<RateLimit> = None;
    let mut retry_after: Option<RetryAfter> = None;
    let mut print_log = true;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (flag, None),
        };
        let mut value = |name: &str| -> String {
            inline.clone().or_else(|| it.next()).unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                let _ = std::io::stdout().flush();
                std::process::exit(0);
            }
            "--addr" => {
                let v = value("--addr");
                opts.addr = v.parse::<SocketAddr>().unwrap_or_else(|_| fail(&format!("--addr: bad address `{v}`")));
                if !opts.addr.ip().is_loopback() {
                    fail("--addr: only loopback addresses (127.0.0.0/8, ::1) are allowed");
                }
            }
            "--fixture" => {
                let v = value("--fixture");
                let text = std::fs::read_to_string(&v).unwrap_or_else(|e| fail(&format!("--fixture {v}: {e}")));
                opts.fixture = Fixture::from_json(&text).unwrap_or_else(|e| fail(&e));
            }
            "--latency-ms" => {
                let v = value("--latency-ms");
                faults.latency_ms = v.parse().unwrap_or_else(|_| fail(&format!("--latency-ms: bad number `{v}`")));
            }
            "--rate-limit" => {
                let v = value("--rate-limit");
                let parsed = v
                    .split_once('/')
                    .and_then(|(n, s)| Some((n.trim().parse::<u32>().ok()?, s.trim().parse::<f64>().ok()?)));
                match parsed {
                    Some((n, s)) if n > 0 && s > 0.0 => rate_limit = Some(RateLimit::per(n, s)),
                    _ => fail(&format!("--rate-limit: expected N/SECONDS (e.g. 10/60), got `{v}`")),
                }
            }
            "--retry-after" => {
                let v = value("--retry-after");
                retry_after = Some(match v.to_ascii_lowercase().as_str() {
                    "seconds" => RetryAfter::Seconds,
                    "date" => RetryAfter::HttpDate,
                    "none" => RetryAfter::None,
                    n => RetryAfter::Fixed(n.parse().unwrap_or_else(|_| {
                        fail(&format!("--retry-after: expected seconds, a number, date or none, got `{v}`"))
                    })),
                });
            }
            "--error-rate" => faults.error_rate = rate("--error-rate", &value("--error-rate")),
            "--hang-rate" => faults.hang_rate = rate("--hang-rate", &value("--hang-rate")),
            "--drop-rate" => faults.drop_rate = rate("--drop-rate", &value("--drop-rate")),
            "--seed" => {
                let v = value("--seed");
                faults.seed = v.parse().unwrap_or_else(|_| fail(&format!("--seed: bad number `{v}`")));
            }
            "--no-log" => print_log = false,
            "--strict-envelope" => opts.strict_envelope = true,
            "--v2-limits" => opts.v2_limits = true,
            "--v2-window-ms" => {
                let v = value("--v2-window-ms");
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| fail(&format!("--v2-window-ms: bad number `{v}`")));
                opts.v2_window = Duration::from_millis(ms);
            }
            "--v2-unlinked-success-false" => opts.v2_unlinked_success_false = true,
            other => fail(&format!("unknown argument `{other}`")),
        }
    }
    if let Some(ra) = retry_after {
        match rate_limit.as_mut() {
            Some(rl) => rl.retry_after = ra,
            None => fail("--retry-after needs --rate-limit"),
        }
    }
    faults.rate_limit = rate_limit;
    opts.faults = faults;
    opts.log = print_log;
    (opts, print_log)
}

fn print_entry(e: &LogEntry) {
    let ty = e.request_type.as_deref().unwrap_or("-");
    let mut line = format!("#{} {} {} type={} -> {} {:?}", e.seq, e.method, e.path, ty, e.status, e.outcome);
    if let Some(v) = e.violations.first() {
        line.push_str(&format!(" violation: {v}"));
        if e.violations.len() > 1 {
            line.push_str(&format!(" (+{} more)", e.violations.len() - 1));
        }
    }
    eprintln!("{line}");
}

fn main() {
    let (opts, print_log) = parse_args(std::env::args().skip(1).collect());
    let emu = Emulator::start(opts).unwrap_or_else(|e| fail(&format!("cannot start: {e}")));
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "sonoran emulator listening on {}", emu.base_url());
        let _ = out.flush();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    rt.block_on(async {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        #[cfg(unix)]
        let terminated = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminated = std::future::pending::<()>();
        tokio::pin!(terminated);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                _ = &mut terminated => break,
                _ = tick.tick() => {
                    if print_log {
                        for e in emu.take_log() {
                            print_entry(&e);
                        }
                    }
                }
            }
        }
    });
    if print_log {
        for e in emu.take_log() {
            print_entry(&e);
        }
    }
    let c = emu.counts();
    eprintln!(
        "emulator: stopping; received {} answered {} rate_limited {} faulted {} hung {} dropped {} applied {}",
        c.received, c.answered, c.rate_limited, c.faulted, c.hung, c.dropped, c.applied
    );
    emu.stop();
}
