//! One rate budget for three game servers in three processes that share one API key
//! (`shared_budget`), against the emulator enforcing v2's per-route limits in short windows and
//! a real redis-server: each server is `tests/c/budget_host.c`, a C host of the library that
//! offers one route's whole limit on its own (together 3x the limit) and prints one JSON line.

mod common;

use common::redis::Redis;
use common::*;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The route the hosts call (`sonoran_check_api_id` on v2) and its published limit per window.
const ROUTE: &str = "POST /v2/general/links/check";
const ROUTE_LIMIT: u32 = 30;
/// The clients' `rate_limit_margin_ms` (the default): the arrival jitter the pacing leaves room for.
const MARGIN: Duration = Duration::from_millis(250);
const SERVERS: usize = 3;

/// The route's bucket for a limit of [`ROUTE_LIMIT`] per `window`, on the principle of
/// `Rate::per_minute` (no `window` + slack ever holds more than the limit) scaled to a short
/// window. `per_minute(30)` keeps 3 for a burst and spreads 27 over 61 s (the window plus 1 s
/// of slack); at a window of a few seconds that burst would be held back by the margin anyway
/// (a 5/s bucket refills 2 tokens in 250 ms: usable burst 1), so here the burst is 1 and the
/// other 29 are spread over the window plus the margin as slack. Any span of `window + MARGIN`
/// then admits at most 1 + 29 = 30, so an arrival jitter of up to 250 ms never puts a 31st
/// request in one of the emulator's fixed windows; in steady state a window gets 29 x window /
/// (window + 250 ms) of its 30 (93% at 6 s).
fn route_rate(window: Duration) -> f64 {
    f64::from(ROUTE_LIMIT - 1) / (window + MARGIN).as_secs_f64()
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(dir.join("libsonoran.so").exists(), "libsonoran.so not found in {}", dir.display());
    dir
}

/// `tests/c/budget_host.c` compiled as C11 with warnings as errors against the header and
/// the library built with this test (`name` keeps parallel tests apart).
fn build_host(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = lib_dir().join("c-hosts");
    std::fs::create_dir_all(&out).unwrap();
    let exe = out.join(name);
    let mut cmd = Command::new("cc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/c/budget_host.c"))
        .arg("-L")
        .arg(lib_dir())
        .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
        .args(["-lsonoran", "-o"])
        .arg(&exe);
    let done = cmd.output().unwrap_or_else(|e| panic!("running cc: {e}"));
    assert!(done.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&done.stderr));
    exe
}

/// What each host is told: the client's configuration (v2, the route's bucket, the shared
/// budget) and the call to offer at `per_second` for `duration`, starting at `start_unix_ms`.
fn host_input(emu: &Emulator, redis_url: &str, window: Duration, label: &str, start: u64, duration: Duration) -> Value {
    json!({
        "label": label,
        "config": {
            "api_version": "v2",
            "api_key": emu.api_key(),
            "api_url": emu.base_url(),
            "timeout_ms": 120000,
            "rate_limit_margin_ms": MARGIN.as_millis() as u64,
            "rate_limits": {"global": null, ROUTE: {"per_second": route_rate(window), "burst": 1}},
            "shared_budget": {"redis_url": redis_url, "servers": SERVERS, "retry_ms": 500, "timeout_ms": 250},
        },
        "call": "check_api_id",
        "data": {"apiId": "11000010499F33C"},
        // Each server alone offers the route's whole limit: together three times it.
        "per_second": f64::from(ROUTE_LIMIT) / window.as_secs_f64(),
        "duration_ms": duration.as_millis() as u64,
        "start_unix_ms": start,
        "poll_ms": 5,
    })
}

/// Three hosts running at once; each one's JSON line, and its stderr (its log lines).
struct Hosts {
    children: Vec<(Child, std::thread::JoinHandle<String>, std::thread::JoinHandle<String>)>,
}

impl Hosts {
    fn spawn(exe: &PathBuf, inputs: &[Value]) -> Hosts {
        let children = inputs
            .iter()
            .map(|input| {
                let mut child = Command::new(exe)
                    .env("SONORAN_BUDGET_HOST", input.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("the host starts");
                let mut out = child.stdout.take().unwrap();
                let mut err = child.stderr.take().unwrap();
                let read_out = std::thread::spawn(move || {
                    let mut s = String::new();
                    let _ = out.read_to_string(&mut s);
                    s
                });
                let read_err = std::thread::spawn(move || {
                    let mut s = String::new();
                    let _ = err.read_to_string(&mut s);
                    s
                });
                (child, read_out, read_err)
            })
            .collect();
        Hosts { children }
    }

    /// Wait for every host (killing them all and failing past `limit`).
    fn finish(self, limit: Duration) -> Vec<(Value, String)> {
        let started = Instant::now();
        let mut results = Vec::new();
        let mut children = self.children;
        for (child, _, _) in children.iter_mut() {
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "a host failed: {status}");
                    break;
                }
                if started.elapsed() > limit {
                    for (c, _, _) in children.iter_mut() {
                        let _ = c.kill();
                    }
                    panic!("the hosts did not finish within {limit:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for (_, out, err) in children {
            let (out, err) = (out.join().unwrap(), err.join().unwrap());
            let line = out.lines().last().unwrap_or_else(|| panic!("a host printed nothing; stderr:\n{err}"));
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            results.push((v, err));
        }
        results
    }
}

/// Every host's own promises: each submitted request called back exactly once, its codes
/// adding up; returns the OK results in the window and in all.
fn check_each_once(results: &[(Value, String)]) -> (u64, u64) {
    let (mut in_window, mut ok) = (0, 0);
    for (r, err) in results {
        let submitted = r["submitted"].as_u64().unwrap();
        assert_eq!(r["refused"], 0, "{r}");
        assert!(submitted > 0, "{r}");
        assert_eq!(r["each_once"], true, "a callback ran twice or never: {r}\n{err}");
        assert_eq!(r["callbacks"].as_u64(), Some(submitted), "{r}");
        let codes = r["codes"].as_object().unwrap();
        assert_eq!(codes.values().map(|n| n.as_u64().unwrap()).sum::<u64>(), submitted, "{r}");
        in_window += r["ok_in_window"].as_u64().unwrap();
        ok += codes.get("OK").and_then(Value::as_u64).unwrap_or(0);
    }
    (in_window, ok)
}

fn sum(results: &[(Value, String)], f: impl Fn(&Value) -> u64) -> u64 {
    results.iter().map(|(r, _)| f(r)).sum()
}

/// Three processes, one key, each offering the route's whole limit for four windows: zero 429s
/// at the emulator, every callback exactly once, and together they complete at least 90% of
/// what the emulator's windows allowed.
#[test]
fn three_processes_of_one_key_stay_within_the_route_limit_and_use_it() {
    let exe = build_host("budget-host-shared");
    let redis = Redis::start();
    let window = Duration::from_secs(6);
    let windows = 4;
    let duration = window * windows;
    let emu = Emulator::start(Options { v2_limits: true, v2_window: window, log: false, ..Options::default() })
        .expect("emulator starts");
    let start = unix_ms() + 1500;
    let inputs: Vec<Value> =
        ["A", "B", "C"].iter().map(|l| host_input(&emu, &redis.url(), window, l, start, duration)).collect();
    let hosts = Hosts::spawn(&exe, &inputs);
    let results = hosts.finish(duration + Duration::from_secs(60));
    let counts = emu.counts();
    for (r, _) in &results {
        eprintln!("{r}");
    }

    let (completed, ok) = check_each_once(&results);
    let offered = sum(&results, |r| r["submitted"].as_u64().unwrap());
    let allowed = u64::from(ROUTE_LIMIT) * u64::from(windows);
    let ratio = completed as f64 / allowed as f64;
    eprintln!(
        "3 processes, one key, {windows} windows of {window:?} at {ROUTE_LIMIT} per window: offered {offered}, \
         completed OK {completed} of the {allowed} the emulator's windows allowed in {duration:?} (ratio {ratio:.3}); \
         429s at the emulator {}; emulator answered {} (200: {})",
        counts.rate_limited,
        counts.answered,
        counts.status(200)
    );
    assert_eq!(counts.rate_limited, 0, "429s at the emulator: the three servers exceeded the shared limit");
    assert_eq!(sum(&results, |r| r["stats"]["rate_limited_429"].as_u64().unwrap()), 0);
    assert!(offered >= 3 * allowed - 3, "each server offered the whole limit: {offered}");
    assert!(ratio >= 0.9, "together they completed {completed} of {allowed} ({ratio:.3})");
    // Nothing completed twice, nothing unaccounted for: the emulator's 200s are the hosts' OKs,
    // plus at most one request per host still on the wire when it freed its client (SHUTDOWN).
    let answered_ok = counts.status(200);
    assert!(answered_ok >= ok && answered_ok <= ok + SERVERS as u64, "emulator 200s {answered_ok}, OK {ok}");
    for (r, _) in &results {
        let shared = &r["stats"]["shared_budget"];
        assert_eq!(shared["mode"], "shared", "{r}");
        assert_eq!(shared["fallbacks"], 0, "{r}");
        assert!(shared["redis_round_trip_ms"]["count"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["log"]["redis_unreachable"], 0, "{r}");
    }
}

/// Redis killed in the middle of such a run, then restarted: no request lost or doubled, the
/// servers go on at their local share (1/3 each) meanwhile, and share one budget again after.
#[test]
fn redis_killed_mid_run_falls_back_to_the_local_share_and_sharing_resumes() {
    let exe = build_host("budget-host-outage");
    let mut redis = Redis::start();
    let window = Duration::from_secs(3);
    let duration = window * 8;
    let emu = Emulator::start(Options { v2_limits: true, v2_window: window, log: false, ..Options::default() })
        .expect("emulator starts");
    let start_unix = unix_ms() + 1500;
    let start = Instant::now() + Duration::from_millis(start_unix.saturating_sub(unix_ms()));
    let inputs: Vec<Value> =
        ["A", "B", "C"].iter().map(|l| host_input(&emu, &redis.url(), window, l, start_unix, duration)).collect();
    let hosts = Hosts::spawn(&exe, &inputs);
    let at = |t: Duration| std::thread::sleep((start + t).saturating_duration_since(Instant::now()));

    // Shared for two windows, Redis away for two, back for four.
    at(window * 2);
    let before_kill = emu.counts();
    redis.kill();
    at(window * 4);
    let before_restart = emu.counts();
    redis.restart();
    // Each server finds Redis again within retry_ms (500 ms); a window the emulator opened before
    // then has ended two windows later.
    at(window * 6);
    let settled = emu.counts();
    std::thread::sleep(Duration::from_millis(500));
    let cells = redis.cli(&["--scan", "--pattern", "*:rate:*"]);
    let results = hosts.finish(duration + Duration::from_secs(60));
    let end = emu.counts();
    for (r, _) in &results {
        eprintln!("{r}");
    }

    let rate = route_rate(window);
    let outage = window * 2;
    let sent_in_outage = before_restart.status(200) - before_kill.status(200);
    let share_allows = SERVERS as f64 + rate * outage.as_secs_f64();
    let shared_429 = before_kill.rate_limited;
    let transition_429 = settled.rate_limited - before_kill.rate_limited;
    let after_429 = end.rate_limited - settled.rate_limited;
    eprintln!(
        "outage of {outage:?}: {sent_in_outage} answered 200 (the local shares allow {share_allows:.1}, the shared \
         budget {:.1}); 429s: {shared_429} while shared, {transition_429} from the kill to two windows after the \
         restart, {after_429} after; emulator total: {} answered, {} 429",
        rate * outage.as_secs_f64(),
        end.answered,
        end.rate_limited
    );

    check_each_once(&results);
    let ok = sum(&results, |r| r["codes"]["OK"].as_u64().unwrap_or(0));
    let answered_ok = end.status(200);
    assert!(answered_ok >= ok && answered_ok <= ok + SERVERS as u64, "emulator 200s {answered_ok}, OK {ok}");
    // Sent as often as the emulator says, never more: no request sent twice unseen.
    let api_calls = sum(&results, |r| r["stats"]["api_calls"].as_u64().unwrap());
    assert!(end.received.abs_diff(api_calls) <= SERVERS as u64, "{end:?} vs {api_calls}");

    assert_eq!(shared_429, 0, "429s while the budget was shared");
    // The servers went on, at their local share: neither stalled nor at three times the limit.
    assert!(sent_in_outage as f64 >= 0.6 * rate * outage.as_secs_f64(), "only {sent_in_outage} during the outage");
    assert!(sent_in_outage as f64 <= share_allows + 1.0, "{sent_in_outage} during the outage, over the shares");
    // Each switch (to the local shares, and back) lets each server spend its local share's
    // one-request burst on top of what the window already holds: at most one 429 per server and
    // switch. Three times the limit would have been refused by the dozen per window.
    assert!(transition_429 <= 2 * SERVERS as u64, "{transition_429} 429s around the outage");
    assert_eq!(after_429, 0, "429s once sharing resumed: the budget is not respected again");
    assert!(!cells.trim().is_empty(), "no rate cell in the restarted Redis: the servers did not share again");
    for (r, err) in &results {
        let shared = &r["stats"]["shared_budget"];
        assert_eq!(shared["mode"], "shared", "{r}");
        assert!(shared["fallbacks"].as_u64().unwrap() >= 1, "{r}");
        assert_eq!(r["log"]["redis_unreachable"], 1, "the fallback is logged once: {r}\n{err}");
        assert_eq!(r["log"]["redis_back"], 1, "the return is logged once: {r}\n{err}");
    }
}
