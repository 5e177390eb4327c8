//! Runs the Lua test scripts in `tests/lua/` under the stock `lua5.4`, `luajit` and `lua5.1`
//! interpreters, against emulators started in this process, with `package.cpath` pointed at
//! `dist/<abi>/?.so` (built by `scripts/build-lua.sh`).
//!
//! Each script runs once per API it is about (`SONORAN_API` = `legacy`, then `v2`; see
//! [`apis_of`]), each run against fresh emulators (they serve both APIs on one port over one
//! state). Each script prints `N passed, M failed` and exits non-zero on any failure.

#[path = "../examples/emulator/mod.rs"]
mod emulator;

use emulator::{Emulator, Faults, Fixture, Options, RateLimit, RetryAfter};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// The two APIs a script can run against (`SONORAN_API`).
const APIS: [&str; 2] = ["legacy", "v2"];

/// The scripts about one API only, with why; every other script runs on both APIs.
const ONE_API: &[(&str, &str, &str)] = &[
    (
        "api",
        "legacy",
        "legacy wire answers and codes: CHECK_APIID's username as text, cad:request(type, ...), parse_session of \
         the legacy captures, INVALID_COMMUNITY_ID / INVALID_REQUEST_TYPE / API_NOT_ENABLED; the scenarios that \
         hold on both APIs are in both_apis.lua",
    ),
    (
        "adapters",
        "legacy",
        "about the loader and the host adapters (CreateThread/Wait, timers, shutdown hooks); the example server \
         scripts it runs configure their client from convars that have no API version",
    ),
];

/// The APIs `script` (a file stem) runs against: its [`ONE_API`] entry, else both.
fn apis_of(script: &str) -> Vec<&'static str> {
    match ONE_API.iter().find(|(name, _, _)| *name == script) {
        Some((_, api, _)) => vec![*api],
        None => APIS.to_vec(),
    }
}

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

    fn main(&self) -> &Emulator {
        &self.all[0].1
    }

    /// The environment of a script run on `api`: the addresses, the credentials, and each
    /// fixture account's UUID and secret UUID (v2's tablet message carries both).
    fn apply(&self, cmd: &mut Command, api: &str) {
        let main = self.main();
        cmd.env("SONORAN_API", api).env("SONORAN_COMMUNITY", main.community_id()).env("SONORAN_KEY", main.api_key());
        for (suffix, emu) in &self.all {
            cmd.env(format!("SONORAN_URL{suffix}"), emu.base_url());
        }
        let state = main.state();
        for account in state["accounts"].as_array().expect("the emulator's accounts") {
            let name = account["username"].as_str().expect("username");
            cmd.env(format!("SONORAN_UUID_{name}"), account["uuid"].as_str().expect("uuid"));
            cmd.env(format!("SONORAN_SECRET_{name}"), account["secretUuid"].as_str().expect("secretUuid"));
        }
    }
}

/// A script's request on the harness channel (`H.emulator_post` in harness.lua): the line
/// `@@harness POST /__emulator/... <json>` on its stdout is answered `<status> <body>` on its
/// stdin. Only the main emulator's test-only routes: the library has no call for them (they are
/// not API routes), and a Lua interpreter has no HTTP client of its own.
const HARNESS_PREFIX: &str = "@@harness ";

fn harness_request(base_url: Option<&str>, line: &str) -> String {
    let Some(base) = base_url else { return "0 no emulator in this run".into() };
    let Some(("POST", rest)) = line.split_once(' ') else { return format!("0 not a POST: {line}") };
    let (path, body) = rest.split_once(' ').unwrap_or((rest, ""));
    if !path.starts_with("/__emulator/") {
        return format!("0 only the emulator's test routes (/__emulator/...), not {path}");
    }
    match post(base, path, body) {
        Ok((status, answer)) => format!("{status} {}", answer.replace(['\r', '\n'], " ")),
        Err(e) => format!("0 POST {path} failed: {e}"),
    }
}

/// A plain HTTP/1.1 POST on loopback: (status, body).
fn post(base_url: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let host = base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Read the script's stdout line by line, answering its harness requests on its stdin; returns
/// the output (a harness exchange shows as one `harness: ...` line).
fn read_output(stdout: impl Read, mut stdin: ChildStdin, base_url: Option<String>) -> String {
    let mut reader = BufReader::new(stdout);
    let mut out = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        match text.trim_end_matches(['\r', '\n']).strip_prefix(HARNESS_PREFIX) {
            Some(request) => {
                let answer = harness_request(base_url.as_deref(), request);
                out.push_str(&format!("harness: {request} -> {answer}\n"));
                let _ = stdin.write_all(format!("{answer}\n").as_bytes()).and_then(|_| stdin.flush());
            }
            None => out.push_str(&text),
        }
    }
    out
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

/// Run `interpreter args...` from the repository root with the module path for `abi`, against
/// `emulators` on `api` when given; returns (exit success, combined output). Killed after
/// SCRIPT_TIMEOUT.
fn run_lua(interpreter: &str, abi: &str, args: &[&str], emulators: Option<(&Emulators, &str)>) -> (bool, String) {
    let cpath = format!("dist/{abi}/?.so");
    let mut cmd = Command::new(interpreter);
    cmd.args(args)
        .current_dir(repo())
        .env("LUA_CPATH", &cpath)
        .env("LUA_CPATH_5_4", &cpath)
        .env("LUA_PATH", "tests/lua/?.lua;lua/?.lua")
        .env("LUA_PATH_5_4", "tests/lua/?.lua;lua/?.lua")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((e, api)) = emulators {
        e.apply(&mut cmd, api);
    }
    let base_url = emulators.map(|(e, _)| e.main().base_url());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("could not run `{interpreter}` ({e}); install the lua5.4, luajit and lua5.1 packages")
    });
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || read_output(stdout, stdin, base_url));
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

/// Run every test script under one interpreter, once per API it is about, each run against
/// fresh emulators; fail with all the output on any failure.
fn run_scripts(interpreter: &str, abi: &str) {
    module_for(abi);
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/lua"))
        .expect("tests/lua")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .filter(|p| p.file_stem().is_some_and(|s| s != "harness"))
        // `luajit_*.lua` scripts need LuaJIT's FFI (two Lua states in one process).
        .filter(|p| abi == "luajit" || !p.file_stem().is_some_and(|s| s.to_string_lossy().starts_with("luajit_")))
        .collect();
    scripts.sort();
    for (name, api, _) in ONE_API {
        assert!(APIS.contains(api), "ONE_API: {name}: unknown API {api}");
        assert!(scripts.iter().any(|p| p.file_stem().is_some_and(|s| s == *name)), "ONE_API: no tests/lua/{name}.lua");
    }
    let mut failures = Vec::new();
    let mut runs = Vec::new();
    for script in &scripts {
        let rel = script.strip_prefix(repo()).unwrap_or(script).to_string_lossy().into_owned();
        let stem = script.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        for api in apis_of(&stem) {
            let emulators = Emulators::start();
            let (ok, text) = run_lua(interpreter, abi, &[&rel], Some((&emulators, api)));
            println!("===== {interpreter} {rel} (api {api})\n{text}");
            let summary_ok = text.lines().any(|l| l.ends_with(" passed, 0 failed"));
            // harness.lua prints the API it configured clients for: the run was on `api`.
            let api_ok = text.lines().any(|l| l == format!("api: {api}"));
            if !ok || !summary_ok || !api_ok {
                failures.push(format!("{rel} (api {api})"));
            }
            runs.push((stem.clone(), api));
        }
    }
    assert!(!scripts.is_empty(), "no test scripts found in tests/lua");
    for api in APIS {
        let on_api: Vec<&str> = runs.iter().filter(|(_, a)| *a == api).map(|(s, _)| s.as_str()).collect();
        for needed in ["both_apis", "server_flows", "link_command"] {
            assert!(on_api.contains(&needed), "{interpreter}: {needed}.lua did not run on {api}: {on_api:?}");
        }
    }
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
