//! Runs the Lua test scripts in `tests/lua/` under the stock `lua5.4`, `luajit` and `lua5.1`
//! interpreters, against emulators started in this process, with `package.cpath` pointed at
//! `dist/<abi>/?.so` (built by `scripts/build-lua.sh`).
//!
//! Each script prints `N passed, M failed` and exits non-zero on any failure.

#[path = "../examples/emulator/mod.rs"]
mod emulator;

use emulator::{Emulator, Faults, Fixture, Options, RateLimit, RetryAfter};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// The emulators a script can reach, by environment variable suffix.
struct Emulators {
    all: Vec<(&'static str, Emulator)>,
}

impl Emulators {
    fn start() -> Emulators {
        let with_faults = |faults: Faults| Options { faults, ..Options::default() };
        let mut disabled = Fixture::default_fixture();
        disabled.disabled_types = vec!["GET_VERSION".into()];
        let mut limit = RateLimit::new(1, 0.001);
        limit.retry_after = RetryAfter::Fixed(30);
        let specs: Vec<(&'static str, Options)> = vec![
            ("", Options::default()),
            ("_SLOW", with_faults(Faults { latency_ms: 400, ..Faults::default() })),
            ("_LIMITED", with_faults(Faults { rate_limit: Some(limit), ..Faults::default() })),
            ("_5XX", with_faults(Faults { error_rate: 1.0, ..Faults::default() })),
            ("_DROP", with_faults(Faults { drop_rate: 1.0, ..Faults::default() })),
            ("_DISABLED", Options { fixture: disabled, ..Options::default() }),
        ];
        let all = specs
            .into_iter()
            .map(|(suffix, opts)| (suffix, Emulator::start(opts).expect("start the emulator")))
            .collect();
        Emulators { all }
    }

    fn apply(&self, cmd: &mut Command) {
        let main = &self.all[0].1;
        cmd.env("SONORAN_COMMUNITY", main.community_id()).env("SONORAN_KEY", main.api_key());
        for (suffix, emu) in &self.all {
            cmd.env(format!("SONORAN_URL{suffix}"), emu.base_url());
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dist/<abi>/sonoran.so`, or a failure telling how to build it.
fn module_for(abi: &str) -> PathBuf {
    let so = repo().join("dist").join(abi).join("sonoran.so");
    assert!(
        so.is_file(),
        "dist/{abi}/sonoran.so is missing: run `scripts/build-lua.sh` first (it builds the Lua module for \
         lua54, luajit and lua51)"
    );
    so
}

/// Run `interpreter args...` from the repository root with the module path for `abi`;
/// returns (exit success, combined output). Killed after SCRIPT_TIMEOUT.
fn run_lua(interpreter: &str, abi: &str, args: &[&str], emulators: Option<&Emulators>) -> (bool, String) {
    let cpath = format!("dist/{abi}/?.so");
    let mut cmd = Command::new(interpreter);
    cmd.args(args)
        .current_dir(repo())
        .env("LUA_CPATH", &cpath)
        .env("LUA_CPATH_5_4", &cpath)
        .env("LUA_PATH", "tests/lua/?.lua;lua/?.lua")
        .env("LUA_PATH_5_4", "tests/lua/?.lua;lua/?.lua")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(e) = emulators {
        e.apply(&mut cmd);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("could not run `{interpreter}` ({e}); install the lua5.4, luajit and lua5.1 packages")
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the interpreter") {
            break Some(status);
        }
        if start.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let mut text = format!("{out}{}", if err.is_empty() { String::new() } else { format!("--- stderr ---\n{err}") });
    let ok = match status {
        Some(s) => {
            if !s.success() {
                text.push_str(&format!("--- exit status: {s} ---\n"));
            }
            s.success()
        }
        None => {
            text.push_str(&format!("--- killed after {} s ---\n", SCRIPT_TIMEOUT.as_secs()));
            false
        }
    };
    (ok, text)
}

/// Run every test script under one interpreter; fail with all the output on any failure.
fn run_scripts(interpreter: &str, abi: &str) {
    module_for(abi);
    let emulators = Emulators::start();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/lua"))
        .expect("tests/lua")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .filter(|p| p.file_stem().is_some_and(|s| s != "harness"))
        // `luajit_*.lua` scripts need LuaJIT's FFI (two Lua states in one process).
        .filter(|p| abi == "luajit" || !p.file_stem().is_some_and(|s| s.to_string_lossy().starts_with("luajit_")))
        .collect();
    scripts.sort();
    let mut failures = Vec::new();
    for script in &scripts {
        let rel = script.strip_prefix(repo()).unwrap_or(script).to_string_lossy().into_owned();
        let (ok, text) = run_lua(interpreter, abi, &[&rel], Some(&emulators));
        println!("===== {interpreter} {rel}\n{text}");
        let summary_ok = text.lines().any(|l| l.ends_with(" passed, 0 failed"));
        if !ok || !summary_ok {
            failures.push(rel);
        }
    }
    assert!(!scripts.is_empty(), "no test scripts found in tests/lua");
    assert!(failures.is_empty(), "{interpreter}: failing scripts: {failures:?} (output above)");
}

#[test]
fn lua54_scripts() {
    run_scripts("lua5.4", "lua54");
}

#[test]
fn luajit_scripts() {
    run_scripts("luajit", "luajit");
}

#[test]
fn lua51_scripts() {
    run_scripts("lua5.1", "lua51");
}

/// Each build loaded by the two other interpreters fails at `require` with a message (a missing
/// symbol from the dynamic loader, or the module's own ABI check), never a crash.
#[test]
fn wrong_interpreter_fails_cleanly_at_require() {
    let interpreters = [("lua5.4", "lua54"), ("luajit", "luajit"), ("lua5.1", "lua51")];
    let mut report = String::new();
    for (_, build) in interpreters {
        module_for(build);
        for (interpreter, abi) in interpreters {
            let script = format!(
                "package.cpath = 'dist/{build}/?.so'\n\
                 local ok, err = pcall(require, 'sonoran')\n\
                 io.write(tostring(ok), '\\t', tostring(type(err) == 'table' and 'module' or err):gsub('\\n%s*', ' '), '\\n')\n\
                 os.exit(0)"
            );
            let (ran, text) = run_lua(interpreter, abi, &["-e", &script], None);
            report.push_str(&format!("{build} build in {interpreter}: {}", text));
            assert!(ran, "{build} build in {interpreter} crashed or failed: {text}");
            let loaded = text.starts_with("true");
            if build == abi {
                assert!(loaded, "{build} build must load in {interpreter}: {text}");
            } else {
                assert!(!loaded, "{build} build must not load in {interpreter}: {text}");
                let clear = text.contains("undefined symbol") || text.contains("sonoran: this module was built for");
                assert!(clear, "{build} build in {interpreter}: unclear message: {text}");
            }
        }
    }
    println!("{report}");
}

/// The default build (what C hosts link) has no Lua symbols.
#[test]
fn default_build_has_no_lua_entry_point() {
    let so = repo().join("target").join("release").join("libsonoran.so");
    let debug = repo().join("target").join("debug").join("libsonoran.so");
    for lib in [so, debug] {
        if let Ok(bytes) = std::fs::read(&lib) {
            let found = bytes.windows(b"luaopen_sonoran".len()).any(|w| w == b"luaopen_sonoran");
            assert!(
                !found,
                "{} contains luaopen_sonoran: the Lua features must not leak into the default build",
                lib.display()
            );
        }
    }
    assert!(Path::new(&repo().join("scripts/build-lua.sh")).is_file());
}
