//! Building and running the C program and the Lua scripts, and reading their JSON lines.

use crate::report::Metric;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// The C program, compiled against include/sonoran.h and target/release/libsonoran.so. Cargo
/// decides whether the library needs building (a no-op when nothing changed; a rebuild when
/// the last build had other features, e.g. a Lua one, which would leave C symbols unlinked).
pub fn build_c() -> Result<PathBuf, String> {
    let lib_dir = release_dir();
    eprintln!("bench: cargo build --release (the shared library)");
    run_checked(Command::new(env!("CARGO")).args(["build", "--release"]).current_dir(repo()))?;
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

/// dist/<abi>/sonoran.so for each ABI, through scripts/build-lua.sh: cargo decides what needs
/// building (nothing, when nothing changed).
pub fn build_lua(abis: &[&str]) -> Result<(), String> {
    eprintln!("bench: scripts/build-lua.sh {}", abis.join(" "));
    run_checked(Command::new(repo().join("scripts/build-lua.sh")).args(abis).current_dir(repo()))
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
