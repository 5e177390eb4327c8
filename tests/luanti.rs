//! Runs the example Luanti mod (`lua/examples/luanti/`, mod `sonoran_cad`) in a real headless
//! Luanti server (Debian's `minetestserver`, LuaJIT), against an emulator started in this
//! process, once per API.
//!
//! Each run builds a throwaway server in a temporary directory: `HOME/.minetest/mods/` holds
//! the mod as a server owner installs it (the mod's files and `dist/luajit/sonoran.so` beside
//! them) and the test-only mod `tests/luanti/sonoran_sandbox_check/`; the world runs Minetest
//! Game (`gameid = minetest`, the game Debian's `minetest-server` ships and configures by
//! default) with both mods enabled in `world.mt`; `minetest.conf` lists both in
//! `secure.trusted_mods` and points `sonoran_cad` at the emulator. No player joins: the mod's
//! startup check (`sonoran_cad.startup_check`) runs every call the mod makes for one player name,
//! logs each result, and shuts the server down (`sonoran_cad.startup_check_shutdown`). The
//! server listens on loopback only and is killed after [`DEADLINE`] whatever happens.

#[path = "../examples/emulator/mod.rs"]
mod emulator;

use emulator::{Emulator, Fixture, LogEntry, Options};
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The whole server run, from start to exit; killed after it.
const DEADLINE: Duration = Duration::from_secs(120);

/// The player name of the startup check. The example's choice is that a player's API ID is
/// their name, so the fixture's OfficerJones gets the API ID "Jones".
const PLAYER: &str = "Jones";
const ACCOUNT: &str = "OfficerJones";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `minetestserver` on PATH, else where Debian installs it (`/usr/games`, which is not on
/// root's PATH); a failure telling how to install it otherwise.
fn server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("minetestserver")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain([PathBuf::from("/usr/games/minetestserver")]).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "minetestserver (Luanti's headless server) is not installed: run scripts/install-deps.sh (it installs \
                 Debian's minetest-server package)"
        )
    })
}

/// A directory removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("sonoran-luanti-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copy the files of `from` (one level: a mod folder) into `to`.
fn copy_mod(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the mod folder");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).expect("copy a mod file");
        }
    }
}

/// A loopback port nothing listens on once this returns (UDP for the server, TCP for the
/// unreachable URL).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free UDP port").port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free TCP port").port()
}

fn read_all(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Run the server until it exits or [`DEADLINE`] passes; returns its exit status (None: killed),
/// its stdout and its stderr.
fn run_server(mut cmd: Command) -> (Option<ExitStatus>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start minetestserver: {e}"));
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for minetestserver") {
            break Some(status);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, out.join().unwrap_or_default(), err.join().unwrap_or_default())
}

/// One server run, ended.
struct Run {
    api: String,
    emu: Emulator,
    /// None: killed after [`DEADLINE`].
    status: Option<ExitStatus>,
    /// The server's log file (`--logfile`): its log lines, one per line. The console has the
    /// same lines on stderr, but there the start-up banner, written by another thread, can land
    /// in the middle of one.
    log: String,
    /// The console: what Lua's print wrote (stdout), and the log, the banner and anything the
    /// process wrote to stderr itself.
    stdout: String,
    stderr: String,
}

impl Run {
    /// Everything, for failure messages.
    fn all(&self) -> String {
        format!("--- log file ---\n{}--- stdout ---\n{}--- stderr ---\n{}", self.log, self.stdout, self.stderr)
    }

    /// The one line of `text` that contains `needle`; fails when there are none or several.
    fn one_line<'a>(&self, text: &'a str, needle: &str) -> &'a str {
        let found = lines_with(text, needle);
        assert_eq!(
            found.len(),
            1,
            "{}: expected exactly one line with {needle:?}, got {found:?}\n{}",
            self.api,
            self.all()
        );
        found[0]
    }
}

/// The lines of `text` that contain `needle`.
fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

/// The requests the emulator received that name `api_id`: each one's v2 route or legacy type.
fn requests_about(log: &[LogEntry], api_id: &str) -> Vec<String> {
    log.iter()
        .filter(|e| e.raw_body.contains(api_id) || e.query.as_deref().is_some_and(|q| q.contains(api_id)))
        .map(|e| {
            e.route.clone().or_else(|| e.request_type.clone()).unwrap_or_else(|| format!("{} {}", e.method, e.path))
        })
        .collect()
}

/// A throwaway server on `api` ("legacy" or "v2") with `trusted_mods` as `secure.trusted_mods`,
/// run to its end.
fn run_world(api: &str, trusted_mods: &str) -> Run {
    let binary = server_binary();
    let module = repo().join("dist/luajit/sonoran.so");
    assert!(
        module.is_file(),
        "dist/luajit/sonoran.so is missing: run `scripts/build-lua.sh` first (Luanti runs LuaJIT: the luajit build)"
    );

    let mut fixture = Fixture::default_fixture();
    let jones = fixture.accounts.iter_mut().find(|a| a.username == ACCOUNT).expect("the fixture's OfficerJones");
    jones.api_ids.push(PLAYER.to_string());
    let emu = Emulator::start(Options { fixture, ..Options::default() }).expect("start the emulator");

    let tmp = TempDir::new(api);
    let home = tmp.0.join("home");
    let mods = home.join(".minetest").join("mods");
    copy_mod(&repo().join("lua/examples/luanti"), &mods.join("sonoran_cad"));
    std::fs::copy(&module, mods.join("sonoran_cad").join("sonoran.so")).expect("copy sonoran.so into the mod");
    copy_mod(&repo().join("tests/luanti/sonoran_sandbox_check"), &mods.join("sonoran_sandbox_check"));

    let world = tmp.0.join("world");
    std::fs::create_dir_all(&world).expect("create the world directory");
    std::fs::write(
        world.join("world.mt"),
        "gameid = minetest\n\
         backend = sqlite3\nplayer_backend = sqlite3\nauth_backend = sqlite3\nmod_storage_backend = sqlite3\n\
         load_mod_sonoran_cad = true\nload_mod_sonoran_sandbox_check = true\n",
    )
    .expect("write world.mt");

    let mut conf = format!(
        "server_announce = false\n\
         bind_address = 127.0.0.1\n\
         ipv6_server = false\n\
         secure.enable_security = true\n\
         secure.trusted_mods = {trusted_mods}\n\
         sonoran_cad.api_version = {api}\n\
         sonoran_cad.api_url = {url}\n\
         sonoran_cad.api_key = {key}\n\
         sonoran_cad.startup_check = {PLAYER}\n\
         sonoran_cad.startup_check_shutdown = true\n\
         sonoran_sandbox_check.unreachable_url = http://127.0.0.1:{closed_port}\n",
        url = emu.base_url(),
        key = emu.api_key(),
        closed_port = free_tcp_port(),
    );
    if api == "legacy" {
        conf.push_str(&format!("sonoran_cad.community_id = {}\n", emu.community_id()));
    }
    let conf_path = tmp.0.join("minetest.conf");
    std::fs::write(&conf_path, conf).expect("write minetest.conf");

    let log_path = tmp.0.join("debug.txt");
    let mut cmd = Command::new(&binary);
    // Debian's /usr/games/minetestserver wrapper passes its own --config and --logfile first:
    // the later options given here take precedence.
    cmd.arg("--config")
        .arg(&conf_path)
        .arg("--world")
        .arg(&world)
        .arg("--logfile")
        .arg(&log_path)
        .arg("--port")
        .arg(free_udp_port().to_string())
        .arg("--color")
        .arg("never")
        .current_dir(&tmp.0)
        .env("HOME", &home)
        .env_remove("MINETEST_MOD_PATH")
        .env_remove("MINETEST_USER_PATH");
    let started = Instant::now();
    let (status, stdout, stderr) = run_server(cmd);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let run = Run { api: api.to_string(), emu, status, log, stdout, stderr };
    println!(
        "===== minetestserver (api {api}, trusted: {trusted_mods}), {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        run.all()
    );
    run
}

/// The mod on `api`: loaded, results of its startup check once each, shutdown, client closed.
fn luanti_server_runs_the_mod(api: &str) {
    let run = run_world(api, "sonoran_cad,sonoran_sandbox_check");
    let (log, all) = (&run.log, run.all());

    // The server ran to its end by itself, cleanly.
    let status = run.status.unwrap_or_else(|| panic!("{api}: minetestserver was killed after {DEADLINE:?}\n{all}"));
    assert!(status.success(), "{api}: minetestserver exited with {status}\n{all}");

    // The mod loaded the module through the insecure environment, on this API.
    run.one_line(log, &format!("[sonoran_cad] sonoran {} (luajit) loaded, api {api}", env!("CARGO_PKG_VERSION")));

    // Every result of the startup check arrived, once each, through the mod's globalstep poll.
    let get_account = run.one_line(log, &format!("[sonoran_cad] startup check: get_account {PLAYER}: "));
    assert!(get_account.ends_with(&format!(": ok, account {ACCOUNT}")), "{api}: {get_account}");
    let is_linked = run.one_line(log, &format!("[sonoran_cad] startup check: is_linked {PLAYER}: "));
    assert!(is_linked.ends_with(": linked"), "{api}: {is_linked}");
    let codes = lines_with(log, "[sonoran_cad] startup check: create_link_code ");
    let results = if api == "v2" {
        assert_eq!(codes.len(), 1, "{api}: one link code result: {codes:?}\n{all}");
        let prefix = format!("create_link_code {PLAYER}: ok, code ");
        assert!(
            codes[0].contains(&prefix) && codes[0].contains(" at https://sonorancad.com/id?code="),
            "{api}: {}",
            codes[0]
        );
        3
    } else {
        assert!(codes.is_empty(), "{api}: no link code on the legacy API: {codes:?}");
        2
    };
    let done = run.one_line(log, "[sonoran_cad] startup check: done");
    assert!(done.ends_with(&format!("done ({results} results)")), "{api}: {done}");

    // The shutdown hook closed the client, after the results.
    let closed = run.one_line(log, "[sonoran_cad] sonoran client closed");
    let position = |line: &str| log.find(line).unwrap();
    assert!(position(done) < position(closed), "{api}: the client was closed before the check was done\n{all}");

    // The requests reached the emulator, once each, and nothing else did.
    let mut seen = requests_about(&run.emu.log(), PLAYER);
    seen.sort();
    let expected: Vec<&str> = if api == "v2" {
        vec!["GET /v2/general/accounts/account", "POST /v2/general/links", "POST /v2/general/links/check"]
    } else {
        vec!["CHECK_APIID", "GET_ACCOUNT"]
    };
    assert_eq!(seen, expected, "{api}: the emulator's requests about {PLAYER}");
    assert_eq!(run.emu.log().len(), expected.len(), "{api}: the emulator received other requests too");

    // In the mod sandbox (io without io.stderr), a callback error with no handler reached the
    // console through print, once, and nothing else failed.
    run.one_line(log, "[sonoran_sandbox_check] io is table, io.stderr is missing");
    // NETWORK when the connection was refused (after the library's retries) before the
    // server stopped, SHUTDOWN when the shutdown hook's close() came first: once either way.
    let ran = run.one_line(log, "[sonoran_sandbox_check] callback ran (");
    assert!(ran.ends_with("(NETWORK), raising") || ran.ends_with("(SHUTDOWN), raising"), "{api}: {ran}");
    let report = run.one_line(&run.stdout, "sonoran_sandbox_check: deliberate callback error");
    assert!(report.starts_with("sonoran: callback of request "), "{api}: the default report: {report}");
    run.one_line(log, "[sonoran_sandbox_check] closed, 0 pending");
    let dropped = lines_with(&run.stderr, "garbage-collected");
    assert!(dropped.is_empty(), "{api}: a client was left with callbacks not run: {dropped:?}");
    for text in [log, &run.stderr] {
        let errors = lines_with(text, "ERROR[");
        assert!(errors.is_empty(), "{api}: error lines: {errors:?}");
    }
    let about_stderr: Vec<&str> = lines_with(&all, "stderr")
        .into_iter()
        .filter(|l| !l.contains("io.stderr is missing") && !l.starts_with("--- "))
        .collect();
    assert!(about_stderr.is_empty(), "{api}: lines about stderr: {about_stderr:?}");
    let lua_errors = lines_with(&all, "attempt to ");
    assert!(lua_errors.is_empty(), "{api}: Lua errors: {lua_errors:?}");
}

#[test]
fn luanti_server_v2() {
    luanti_server_runs_the_mod("v2");
}

#[test]
fn luanti_server_legacy() {
    luanti_server_runs_the_mod("legacy");
}

/// Without `sonoran_cad` in `secure.trusted_mods` the mod gets no insecure environment: the
/// server stops at load with the mod's message naming the setting, and nothing is sent.
#[test]
fn luanti_untrusted_mod_stops_the_server_naming_the_setting() {
    let run = run_world("v2", "sonoran_sandbox_check");
    let all = run.all();
    let status = run.status.unwrap_or_else(|| panic!("minetestserver was killed after {DEADLINE:?}\n{all}"));
    assert!(!status.success(), "the server must not start without the trusted mod: {status}\n{all}");
    run.one_line(
        &run.log,
        "ERROR[Main]: [sonoran_cad] needs the real require to load sonoran.so: add sonoran_cad to secure.trusted_mods",
    );
    assert!(lines_with(&run.log, "[sonoran_cad] sonoran ").is_empty(), "the module must not have loaded\n{all}");
    assert!(run.emu.log().is_empty(), "nothing may reach the API: {} requests", run.emu.log().len());
}
