//! The benchmark harness: host-thread cost, throughput and API budget, against the emulator on
//! loopback, side by side with what a server owner would use instead.
//!
//! ```sh
//! cargo run --release --example bench                 # every scenario
//! cargo run --release --example bench -- c budget     # only the ones named
//! ```
//!
//! Scenarios: `c` (submit / poll / stall from a C program), `lua` (the same from lua5.4 and
//! luajit), `luasocket` (a blocking LuaSocket POST from lua5.4), `throughput` (against a plain
//! reqwest client), `memory` (resident growth per 10,000 pending requests), `budget` (60 calls
//! per minute, coalescing off and on, and an official-style client), `shared` (the added
//! latency of the shared budget's Redis check, next to the local bucket alone; skipped when
//! redis-server is not installed). Each prints a Markdown table; a summary of the targets
//! follows. `BENCH_BUDGET_SECS` shortens the budget window (default 60 s). See BENCHMARKS.md.

#[path = "../emulator/mod.rs"]
mod emulator;

mod budget;
mod external;
mod report;
mod shared;
mod throughput;

use emulator::{Emulator, Faults, Options};
use report::{num, Check, Metric, Table};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const SCENARIOS: [&str; 7] = ["c", "lua", "luasocket", "throughput", "memory", "budget", "shared"];

struct Bench {
    emu: Emulator,
    metrics: HashMap<String, Metric>,
    checks: Vec<Check>,
}

impl Bench {
    fn child_env(&self, cmd: &mut Command, url: &str) {
        cmd.env("SONORAN_BENCH_URL", url)
            .env("SONORAN_BENCH_COMMUNITY", self.emu.community_id())
            .env("SONORAN_BENCH_KEY", self.emu.api_key());
    }

    fn keep(&mut self, ms: Vec<Metric>) {
        for m in ms {
            self.metrics.insert(m.name.clone(), m);
        }
    }

    fn m(&self, name: &str) -> Metric {
        self.metrics.get(name).cloned().unwrap_or_else(|| Metric::from_samples(name, "?", &[]))
    }

    fn check(&mut self, what: &str, target: &str, measured: String, pass: bool) {
        self.checks.push(Check { what: what.into(), target: target.into(), measured, pass });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for a in &args {
        if !SCENARIOS.contains(&a.as_str()) {
            eprintln!("bench: unknown scenario '{a}'; scenarios: {}", SCENARIOS.join(" "));
            std::process::exit(2);
        }
    }
    let run = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    print_machine();
    let emu = Emulator::start(Options { log: false, ..Options::default() }).expect("emulator starts");
    let mut b = Bench { emu, metrics: HashMap::new(), checks: Vec::new() };
    let mut failed = Vec::new();
    let mut step = |name: &str, f: &dyn Fn(&mut Bench) -> Result<(), String>, b: &mut Bench| {
        if run(name) {
            eprintln!("bench: running {name}");
            if let Err(e) = f(b) {
                eprintln!("bench: {name} failed: {e}");
                failed.push(name.to_string());
            }
        }
    };
    step("c", &scenario_c, &mut b);
    step("lua", &scenario_lua, &mut b);
    step("luasocket", &scenario_luasocket, &mut b);
    step("throughput", &scenario_throughput, &mut b);
    step("memory", &scenario_memory, &mut b);
    step("budget", &scenario_budget, &mut b);
    step("shared", &scenario_shared, &mut b);
    targets(&mut b);
    report::print_summary(&b.checks);
    if !failed.is_empty() {
        eprintln!("bench: scenarios that failed to run: {}", failed.join(" "));
        std::process::exit(1);
    }
}

/// The host-thread targets, each as a ratio to a baseline measured in the same run (this machine
/// is shared and noisy: the same code measured twice as slow under load, so absolute targets
/// cannot hold; ratios to a baseline run beside it do). Absolute figures stay as information.
fn targets(b: &mut Bench) {
    let have = |b: &Bench, name: &str| b.metrics.contains_key(name);
    // A submit against the blocking call it replaces (a LuaSocket POST holding the thread).
    for (who, prefix, scale) in [("C", "c", 1e3), ("Lua 5.4", "lua54", 1.0), ("LuaJIT", "luajit", 1.0)] {
        for (ty, label) in [("get_account", "GET_ACCOUNT"), ("set_api_id", "SET_API_ID")] {
            let (m, base) = (format!("{prefix}_submit_{ty}"), format!("luasocket_{ty}"));
            if !have(b, &m) || !have(b, &base) {
                continue;
            }
            let (us, blocking) = (b.m(&m).median / scale, b.m(&base).median);
            let ratio = us / blocking;
            b.check(
                &format!("submit from {who}, {label}, vs a blocking LuaSocket POST (medians)"),
                "≤ 0.05",
                format!("{} ({} µs vs {} µs)", num(ratio), num(us), num(blocking)),
                ratio <= 0.05,
            );
        }
    }
    // An idle poll against reading the clock (C) or one plain C function call (Lua).
    if have(b, "c_poll_idle") && have(b, "c_clock_overhead") {
        let (idle, clock) = (b.m("c_poll_idle").median, b.m("c_clock_overhead").median);
        b.check(
            "idle poll() from C vs a clock_gettime pair (medians)",
            "≤ 1",
            format!("{} ({} ns vs {} ns)", num(idle / clock), num(idle), num(clock)),
            idle <= clock,
        );
    }
    for (abi, name) in [("lua54", "Lua 5.4"), ("luajit", "LuaJIT")] {
        let (m, base) = (format!("{abi}_poll_idle"), format!("{abi}_bare_c_call"));
        if !have(b, &m) || !have(b, &base) {
            continue;
        }
        let (idle, call) = (b.m(&m).median, b.m(&base).median);
        b.check(
            &format!("idle poll() from {name} vs one plain C function call (medians)"),
            "≤ 2",
            format!("{} ({} ns vs {} ns)", num(idle / call), num(idle), num(call)),
            idle <= 2.0 * call,
        );
    }
}

fn print_machine() {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let mem = read("/proc/meminfo").lines().next().unwrap_or("").split_whitespace().nth(1).unwrap_or("0").to_string();
    let mem_gib = mem.parse::<f64>().unwrap_or(0.0) / 1024.0 / 1024.0;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("## Machine\n");
    println!("- CPU: {cpu}, {cores} cores available");
    println!("- memory: {mem_gib:.1} GiB; kernel {kernel}; {rustc}");
    println!("- library {} (release build), emulator in-process on 127.0.0.1", sonoran::VERSION);
}

fn scenario_c(b: &mut Bench) -> Result<(), String> {
    let exe = external::build_c()?;
    let url = b.emu.base_url();
    for mode in ["submit", "stall"] {
        let mut cmd = Command::new(&exe);
        cmd.args([mode, &url]);
        b.child_env(&mut cmd, &url);
        let ms = external::run_metrics(&mut cmd, Duration::from_secs(180))?;
        b.keep(ms);
    }
    let mut t = Table::new(
        "C ABI: host-thread cost (examples/bench/bench.c)",
        "Each submit timed alone with clock_gettime (20 rounds of 1,000, drained between rounds; the \
         clock pair itself costs the `clock` row). Idle poll: batches of 100. Per callback: one poll(0) \
         over 10,000 ready GET_ACCOUNT results, 5 repetitions. Stall: the longest single poll() while \
         10,000 results are ready.",
    );
    t.add("clock_gettime pair (overhead)", &b.m("c_clock_overhead"));
    t.add("submit GET_ACCOUNT", &b.m("c_submit_get_account"));
    t.add("submit SET_API_ID", &b.m("c_submit_set_api_id"));
    t.add("poll(), nothing ready", &b.m("c_poll_idle"));
    t.add("poll(), per delivered callback", &b.m("c_poll_per_callback"));
    t.add("poll(), per delivered callback (thread CPU time)", &b.m("c_poll_per_callback_cpu"));
    t.add("stall: poll(0) with 10,000 ready", &b.m("c_stall_poll_all_10000"));
    t.add("stall: longest poll(100) draining 10,000", &b.m("c_stall_poll_max100_longest"));
    t.add("stall: longest poll(100) (thread CPU time)", &b.m("c_stall_poll_max100_longest_cpu"));
    t.add("each full poll(100) draining 10,000", &b.m("c_stall_poll_max100_each"));
    t.add("each full poll(100) (thread CPU time)", &b.m("c_stall_poll_max100_each_cpu"));
    t.print();
    let per = b.m("c_poll_per_callback").median;
    let worst = b.m("c_stall_poll_max100_longest");
    let each = b.m("c_stall_poll_max100_each");
    let bound = 100.0 * per / 1e3;
    b.check(
        "longest poll(100) from C vs 100 × per-callback cost",
        &format!("≤ {} µs", num(bound)),
        format!(
            "{} µs (max of 5 runs; thread CPU {} µs; median poll(100) {} µs)",
            num(worst.max),
            num(b.m("c_stall_poll_max100_longest_cpu").max),
            num(each.median)
        ),
        worst.max <= bound,
    );
    Ok(())
}

fn scenario_lua(b: &mut Bench) -> Result<(), String> {
    for (program, module) in [("lua5.4", "socket"), ("luajit", "socket")] {
        if !external::lua_has(program, module) {
            return Err(format!("{program} with LuaSocket is needed: run scripts/install-deps.sh"));
        }
    }
    external::build_lua(&["lua54", "luajit"])?;
    let url = b.emu.base_url();
    let script = external::repo().join("examples/bench/bench.lua");
    for (abi, program) in [("lua54", "lua5.4"), ("luajit", "luajit")] {
        let mut cmd = Command::new(program);
        cmd.arg(&script).env("BENCH_DIST", external::repo().join("dist").join(abi)).env("BENCH_PREFIX", abi);
        b.child_env(&mut cmd, &url);
        let ms = external::run_metrics(&mut cmd, Duration::from_secs(300))?;
        b.keep(ms);
    }
    let mut t = Table::new(
        "Lua: host-thread cost (examples/bench/bench.lua, real interpreters)",
        "socket.gettime() has µs resolution, so calls are timed in batches of 10 and each sample is a \
         batch's per-call average; the Lua table conversion of the request (submit) and of the result \
         (per callback) is included. Per callback: one poll() over 10,000 ready GET_ACCOUNT results \
         (an account of about 50 values each), 3 repetitions.",
    );
    for (abi, name) in [("lua54", "Lua 5.4"), ("luajit", "LuaJIT")] {
        t.add(&format!("{name}: submit GET_ACCOUNT"), &b.m(&format!("{abi}_submit_get_account")));
        t.add(&format!("{name}: submit SET_API_ID"), &b.m(&format!("{abi}_submit_set_api_id")));
        t.add(&format!("{name}: a plain C function call (baseline)"), &b.m(&format!("{abi}_bare_c_call")));
        t.add(&format!("{name}: poll(), nothing ready"), &b.m(&format!("{abi}_poll_idle")));
        t.add(&format!("{name}: poll(), per delivered callback"), &b.m(&format!("{abi}_poll_per_callback")));
        t.add(&format!("{name}: stall: poll() with 10,000 ready"), &b.m(&format!("{abi}_stall_poll_all_10000")));
        t.add(&format!("{name}: stall: longest poll(100)"), &b.m(&format!("{abi}_stall_poll_max100_longest")));
        t.add(&format!("{name}: each full poll(100)"), &b.m(&format!("{abi}_stall_poll_max100_each")));
    }
    t.print();
    for (abi, name) in [("lua54", "Lua 5.4"), ("luajit", "LuaJIT")] {
        let per = b.m(&format!("{abi}_poll_per_callback")).median;
        let worst = b.m(&format!("{abi}_stall_poll_max100_longest"));
        let each = b.m(&format!("{abi}_stall_poll_max100_each"));
        b.check(
            &format!("longest poll(100) from {name} vs 100 × per-callback cost"),
            &format!("≤ {} µs", num(100.0 * per)),
            format!("{} µs (max of 3 runs; median poll(100) {} µs)", num(worst.max), num(each.median)),
            worst.max <= 100.0 * per,
        );
    }
    Ok(())
}

fn scenario_luasocket(b: &mut Bench) -> Result<(), String> {
    if !external::lua_has("lua5.4", "socket.http") {
        return Err("lua5.4 with LuaSocket is needed: run scripts/install-deps.sh".into());
    }
    let url = b.emu.base_url();
    let mut cmd = Command::new("lua5.4");
    cmd.arg(external::repo().join("examples/bench/luasocket.lua"));
    b.child_env(&mut cmd, &url);
    let ms = external::run_metrics(&mut cmd, Duration::from_secs(180))?;
    b.keep(ms);
    let mut t = Table::new(
        "Without the library: a blocking LuaSocket POST from lua5.4",
        "socket.http.request with ltn12, one new connection per call (LuaSocket sends \
         `Connection: close`), 1,000 calls each; each figure is how long the call holds the calling \
         (game) thread. Compare with the submit rows above.",
    );
    t.add("GET_ACCOUNT, thread held per call", &b.m("luasocket_get_account"));
    t.add("SET_API_ID, thread held per call", &b.m("luasocket_set_api_id"));
    t.add("failed calls (GET_ACCOUNT)", &b.m("luasocket_get_account_failed"));
    t.add("failed calls (SET_API_ID)", &b.m("luasocket_set_api_id_failed"));
    t.print();
    Ok(())
}

fn scenario_throughput(b: &mut Bench) -> Result<(), String> {
    let (url, community, key) = (b.emu.base_url(), b.emu.community_id(), b.emu.api_key());
    let limit = Duration::from_secs(20);
    let mut t = Table::new(
        "Throughput and latency: the library vs a plain reqwest client",
        "Closed loops of GET_ACCOUNT at a fixed concurrency against the same emulator, alternating \
         reqwest / library, 3 rounds each (throughput: the 3 rounds' req/s; latency: every request \
         of the 3 rounds, submit to result). The library runs with `rate_limits.global: null` and \
         `delivery: \"thread\"`; each result is rendered to JSON where the request completes, as \
         the C ABI does, and the callback submits the next request. reqwest runs on a 2-thread \
         tokio runtime (the library's default) and parses each answer as JSON.",
    );
    for (conc, total) in [(1usize, 3000usize), (16, 10000), (256, 20000)] {
        let (mut rq_rate, mut lib_rate, mut rq_lat, mut lib_lat) = (vec![], vec![], vec![], vec![]);
        let mut failures = 0;
        for _ in 0..3 {
            let r = throughput::reqwest_run(&url, &community, &key, conc, total, limit);
            rq_rate.push(r.per_second());
            rq_lat.extend(r.latencies_us);
            failures += r.failed;
            let l = throughput::library_run(&url, &community, &key, conc, total, limit);
            lib_rate.push(l.per_second());
            lib_lat.extend(l.latencies_us);
            failures += l.failed;
        }
        if failures > 0 {
            eprintln!("bench: {failures} failed requests at concurrency {conc}");
        }
        let rq = Metric::from_samples("", "req/s", &rq_rate);
        let lib = Metric::from_samples("", "req/s", &lib_rate);
        let rql = Metric::from_samples("", "µs", &rq_lat);
        let libl = Metric::from_samples("", "µs", &lib_lat);
        t.add(&format!("c={conc}: reqwest throughput"), &rq);
        t.add(&format!("c={conc}: library throughput"), &lib);
        t.add(&format!("c={conc}: reqwest latency"), &rql);
        t.add(&format!("c={conc}: library latency"), &libl);
        let ratio = lib.median / rq.median;
        let added = libl.median - rql.median;
        t.add(&format!("c={conc}: ratio library / reqwest (medians)"), &Metric::single("", "×", ratio));
        t.add(&format!("c={conc}: added latency p50"), &Metric::single("", "µs", added));
        t.add(&format!("c={conc}: added latency p99"), &Metric::single("", "µs", libl.p99 - rql.p99));
        if conc == 256 {
            b.check("throughput at c=256, library / reqwest", "≥ 0.9", num(ratio), ratio >= 0.9);
        }
        let lat = libl.median / rql.median;
        b.check(
            &format!("latency at c={conc}, library / reqwest (p50)"),
            "≤ 1.5",
            format!("{} ({} µs vs {} µs)", num(lat), num(libl.median), num(rql.median)),
            lat <= 1.5,
        );
    }
    t.print();
    Ok(())
}

fn scenario_memory(b: &mut Bench) -> Result<(), String> {
    let exe = external::build_c()?;
    let url = b.emu.base_url();
    let mut queued = Vec::new();
    for _ in 0..3 {
        let mut cmd = Command::new(&exe);
        cmd.args(["memory", &url]);
        b.child_env(&mut cmd, &url);
        let ms = external::run_metrics(&mut cmd, Duration::from_secs(120))?;
        if let Some(m) = ms.iter().find(|m| m.name == "c_memory_queued_per_request") {
            queued.push(m.median);
        }
    }
    let hang = Emulator::start(Options {
        log: false,
        faults: Faults { hang_rate: 1.0, ..Faults::default() },
        ..Options::default()
    })
    .expect("emulator starts");
    let hang_url = hang.base_url();
    let mut cmd = Command::new(&exe);
    cmd.args(["inflight", &hang_url]);
    b.child_env(&mut cmd, &hang_url);
    let inflight = external::run_metrics(&mut cmd, Duration::from_secs(120));
    drop(hang);
    let q = Metric::from_samples("memory_queued", "bytes", &queued);
    let mut t = Table::new(
        "Memory: resident growth per pending request (C host process, /proc/self/statm)",
        "10,000 GET_ACCOUNT requests submitted from the C program; RSS read before and once they \
         wait where they wait. Queued: behind the default pacing (1/s, burst 5), 3 fresh processes. \
         In flight: pacing lifted, every request on its own connection to an emulator that never \
         answers, 1 process. Every request then completes SHUTDOWN when the client is freed.",
    );
    t.add("queued behind the limiter, per request", &q);
    match inflight {
        Ok(ms) => {
            if let Some(m) = ms.iter().find(|m| m.name == "c_memory_inflight_per_request") {
                t.add("on the wire (10,000 connections), per request", m);
            }
        }
        Err(e) => eprintln!("bench: in-flight memory run failed: {e}"),
    }
    t.print();
    b.check("memory per pending request (queued)", "≤ 2048 bytes", format!("{} bytes", num(q.median)), q.max <= 2048.0);
    Ok(())
}

fn scenario_budget(b: &mut Bench) -> Result<(), String> {
    let secs: u64 = std::env::var("BENCH_BUDGET_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60).clamp(5, 120);
    let window = Duration::from_secs(secs);
    // The three are independent (each its own emulator) and mostly idle: run them side by side.
    let off = std::thread::spawn(move || budget::library(None, window));
    let on = std::thread::spawn(move || budget::library(Some(1000), window));
    let official = std::thread::spawn(move || budget::official_style(window));
    let results: Vec<budget::Budget> = [off, on, official]
        .into_iter()
        .map(|h| h.join().map_err(|_| "budget run panicked".to_string()))
        .collect::<Result<_, _>>()?;
    let scale = 60.0 / secs as f64;
    println!("\n### API budget: 60 calls per minute\n");
    println!(
        "The emulator allows 60 calls per minute (bucket of 60, refilled at 1/s; `--rate-limit 60/60`), \
         starting full. {} SET_API_ID operations are offered per second for a {secs} s window{}; \
         the library polls on a 10 ms tick. \"OK in window\" counts operations completed OK within \
         the window{}.\n",
        budget::OPS_PER_SECOND,
        if secs == 60 { "" } else { " (per-minute figures extrapolated ×60/window)" },
        if secs == 60 { "" } else { ", per minute = OK × 60 / window" },
    );
    println!(
        "| client | offered | OK in window | OK per minute | failed (an error code) or dropped (no callback) | API calls | 429s received |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.offered,
            r.ok_in_window,
            num(r.ok_in_window as f64 * scale),
            r.lost,
            r.api_calls,
            r.received_429
        );
    }
    for r in &results[..2] {
        b.check(
            &format!("429s with the limiter at the emulator's limit ({})", r.label),
            "0",
            r.received_429.to_string(),
            r.received_429 == 0,
        );
    }
    Ok(())
}

fn scenario_shared(b: &mut Bench) -> Result<(), String> {
    let title = "Shared budget: the added latency of the Redis check";
    let Some(m) = shared::run(&b.emu.base_url(), &b.emu.community_id(), &b.emu.api_key())? else {
        let why = "skipped: redis-server is not installed (Debian: apt-get install redis-server, or \
                   scripts/install-deps.sh)";
        eprintln!("bench: shared: {why}");
        println!("\n### {title}\n\n{why}");
        return Ok(());
    };
    let mut t = Table::new(
        title,
        &format!(
            "{} sequential GET_ACCOUNT per client ({} alternating rounds of {}, after a warm-up), submit to \
             result (`delivery: \"thread\"`, the result handed to the submitting thread), against the same \
             emulator: one client with the local bucket alone, one with `shared_budget` too (one EVALSHA round \
             trip per request to a redis-server on loopback started for the run). Both with a global bucket of \
             100,000/s, so that no request ever waits for a token: what differs is the check itself. {} failed.",
            shared::ROUNDS * shared::PER_ROUND,
            shared::ROUNDS,
            shared::PER_ROUND,
            m.failed
        ),
    );
    let local = Metric::from_samples("", "µs", &m.local_us);
    let with = Metric::from_samples("", "µs", &m.shared_us);
    t.add("local bucket alone: request latency", &local);
    t.add("local bucket + shared check: request latency", &with);
    t.add("added by the shared check, p50", &Metric::single("", "µs", with.median - local.median));
    t.add("added by the shared check, p99", &Metric::single("", "µs", with.p99 - local.p99));
    t.add("ratio shared / local (medians)", &Metric::single("", "×", with.median / local.median));
    t.add("ratio shared / local (p99)", &Metric::single("", "×", with.p99 / local.p99));
    t.print();
    let ratio = with.median / local.median;
    b.check(
        "request latency with the shared check vs the local bucket alone (medians)",
        "≤ 2",
        format!("{} ({} µs vs {} µs)", num(ratio), num(with.median), num(local.median)),
        ratio <= 2.0,
    );
    println!("\nThe shared client's `stats.shared_budget`: `{}`", m.shared_stats);
    Ok(())
}
