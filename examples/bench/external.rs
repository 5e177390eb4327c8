//! Building and running the C program and the Lua scripts, and reading their JSON lines.

use crate::report::Metric;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/release (this binary is target/release/examples/bench).
pub fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| repo().join("target/release"))
}

fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

fn newest_source() -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, newest);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(t);
            }
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    walk(&repo().join("src"), &mut newest);
    newest
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The C program, compiled against include/sonoran.h and target/release/libsonoran.so
/// (built first with `cargo build --release` when it is missing or older than src/).
pub fn build_c() -> Result<PathBuf, String> {
    let lib_dir = release_dir();
    let so = lib_dir.join("libsonoran.so");
    if modified(&so).map_or(true, |t| t < newest_source()) {
        eprintln!("bench: building the shared library (cargo build --release)");
        run_checked(Command::new(env!("CARGO")).args(["build", "--release"]).current_dir(repo()))?;
    }
    let out_dir = lib_dir.join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let exe = out_dir.join("bench_c");
    let rpath = format!("-Wl,-rpath,{}", lib_dir.display());
    run_checked(
        Command::new("cc")
            .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg(format!("-I{}", repo().join("include").display()))
            .arg(repo().join("examples/bench/bench.c"))
            .arg(format!("-L{}", lib_dir.display()))
            .arg("-lsonoran")
            .arg(rpath)
            .arg("-o")
            .arg(&exe),
    )?;
    Ok(exe)
}

/// dist/<abi>/sonoran.so for each ABI, built with scripts/build-lua.sh when missing or older
/// than src/.
pub fn build_lua(abis: &[&str]) -> Result<(), String> {
    let newest = newest_source();
    let stale: Vec<&str> = abis
        .iter()
        .copied()
        .filter(|abi| modified(&repo().join("dist").join(abi).join("sonoran.so")).map_or(true, |t| t < newest))
        .collect();
    if !stale.is_empty() {
        eprintln!("bench: building the Lua modules (scripts/build-lua.sh {})", stale.join(" "));
        run_checked(Command::new(repo().join("scripts/build-lua.sh")).args(&stale).current_dir(repo()))?;
    }
    Ok(())
}

/// Is `program` on PATH and can it load `module`?
pub fn lua_has(program: &str, module: &str) -> bool {
    Command::new(program)
        .args(["-e", &format!("require('{module}')")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Run a child with a time limit; its stdout's JSON lines become metrics. Stderr is passed on.
pub fn run_metrics(cmd: &mut Command, limit: Duration) -> Result<Vec<Metric>, String> {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().map_err(|e| format!("starting {cmd:?}: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} did not finish within {limit:?}; killed"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{cmd:?} failed ({status})"));
    }
    Ok(text.lines().filter_map(Metric::from_json_line).collect())
}
