//! The Garry's Mod build (`scripts/build-lua.sh gmod` -> dist/gmod/gmsv_sonoran_linux64.dll),
//! loaded the way a 64-bit Garry's Mod server loads it, by tests/c/gmod_host.c: the server's
//! LuaJIT as `bin/linux64/lua_shared.so` (Debian's LuaJIT, opened without making its symbols
//! global), the module in `garrysmod/lua/bin/`, `require("sonoran")` calling `gmod13_open`, the
//! script (tests/gmod/server.lua) ticking against the emulators, `gmod13_close` with a request
//! still in flight, then `lua_close`. Also: the Lua symbols the build imports are all in the Lua
//! 5.1 C API that LuaJIT 2.0 exports, and both entry points refuse a Lua 5.1 state cleanly.

mod common;

use common::emulator::{Emulator, Faults, Options};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DLL: &str = "gmsv_sonoran_linux64.dll";
const APIS: [&str; 2] = ["legacy", "v2"];
/// One host run (valgrind included) takes seconds; this only stops a hung one.
const HOST_TIMEOUT: Duration = Duration::from_secs(300);

/// The functions of the Lua 5.1 reference manual (§3.7, §3.8, §4.1, §5: `lua_*`, `luaL_*`, the
/// standard library openers) and LuaJIT 2.0's additions (`luaJIT_setmode`, the openers of its
/// own libraries). LuaJIT 2.1's 5.2-style additions (`luaL_traceback`, `luaL_testudata`,
/// `luaL_setfuncs`, `lua_loadx`, `lua_tonumberx`, `lua_upvalueid`, ...) are left out: Garry's
/// Mod's lua_shared is a LuaJIT 2.0-era build and may not export them.
const LUA_51_AND_LUAJIT_20: &[(&str, &str)] = &[
    (
        "§3.7 functions and types",
        "lua_atpanic lua_call lua_checkstack lua_close lua_concat lua_cpcall lua_createtable
         lua_dump lua_equal lua_error lua_gc lua_getallocf lua_getfenv lua_getfield
         lua_getmetatable lua_gettable lua_gettop lua_insert lua_iscfunction lua_isnumber
         lua_isstring lua_isuserdata lua_lessthan lua_load lua_newstate lua_newthread
         lua_newuserdata lua_next lua_objlen lua_pcall lua_pushboolean lua_pushcclosure
         lua_pushfstring lua_pushinteger lua_pushlightuserdata lua_pushlstring lua_pushnil
         lua_pushnumber lua_pushstring lua_pushthread lua_pushvalue lua_pushvfstring lua_rawequal
         lua_rawget lua_rawgeti lua_rawset lua_rawseti lua_remove lua_replace lua_resume
         lua_setallocf lua_setfenv lua_setfield lua_setmetatable lua_settable lua_settop
         lua_status lua_toboolean lua_tocfunction lua_tointeger lua_tolstring lua_tonumber
         lua_topointer lua_tothread lua_touserdata lua_type lua_typename lua_xmove lua_yield",
    ),
    (
        "§3.8 the debug interface",
        "lua_gethook lua_gethookcount lua_gethookmask lua_getinfo lua_getlocal lua_getstack
         lua_getupvalue lua_sethook lua_setlocal lua_setupvalue",
    ),
    (
        "§4.1 the auxiliary library",
        "luaL_addlstring luaL_addstring luaL_addvalue luaL_argerror luaL_buffinit luaL_callmeta
         luaL_checkany luaL_checkinteger luaL_checklstring luaL_checknumber luaL_checkoption
         luaL_checkstack luaL_checktype luaL_checkudata luaL_error luaL_getmetafield luaL_gsub
         luaL_loadbuffer luaL_loadfile luaL_loadstring luaL_newmetatable luaL_newstate luaL_openlibs
         luaL_optinteger luaL_optlstring luaL_optnumber luaL_prepbuffer luaL_pushresult luaL_ref
         luaL_register luaL_typerror luaL_unref luaL_where",
    ),
    (
        "§5 the standard libraries' openers",
        "luaopen_base luaopen_debug luaopen_io luaopen_math luaopen_os luaopen_package
         luaopen_string luaopen_table",
    ),
    ("LuaJIT 2.0's own", "luaJIT_setmode luaopen_bit luaopen_ffi luaopen_jit"),
];

/// Every name in [`LUA_51_AND_LUAJIT_20`].
fn allowed_lua_symbols() -> Vec<&'static str> {
    LUA_51_AND_LUAJIT_20.iter().flat_map(|(_, names)| names.split_whitespace()).collect()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dist/gmod/gmsv_sonoran_linux64.dll`, or a failure telling how to build it.
fn dll() -> PathBuf {
    let dll = repo().join("dist/gmod").join(DLL);
    assert!(dll.is_file(), "dist/gmod/{DLL} is missing: run `scripts/build-lua.sh gmod` first");
    dll
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

/// What `pkg-config` says about an installed library, or a failure saying what to install.
fn pkg(args: &[&str], module: &str, package: &str) -> String {
    let missing = format!(
        "{package} is not installed (pkg-config knows no `{module}`): run scripts/install-deps.sh, which installs it \
         with the other test dependencies"
    );
    let out = Command::new("pkg-config").args(args).arg(module).output().unwrap_or_else(|e| {
        panic!("cannot run pkg-config ({e}): run scripts/install-deps.sh, which installs it; then: {missing}")
    });
    assert!(out.status.success(), "{missing}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Debian's LuaJIT (libluajit-5.1-dev): the flags to compile the host, and the library file
/// that stands in for the server's lua_shared.so.
fn luajit_dev() -> (Vec<String>, PathBuf) {
    let cflags = pkg(&["--cflags"], "luajit", "libluajit-5.1-dev");
    let lib = PathBuf::from(pkg(&["--variable=libdir"], "luajit", "libluajit-5.1-dev")).join("libluajit-5.1.so");
    assert!(
        lib.exists(),
        "{} is missing: libluajit-5.1-dev is not (fully) installed: run scripts/install-deps.sh",
        lib.display()
    );
    (cflags.split_whitespace().map(String::from).collect(), lib)
}

/// target/debug/gmod-host/, beside the test binaries.
fn work_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let d = exe.parent().and_then(Path::parent).expect("target/debug").join("gmod-host");
    std::fs::create_dir_all(&d).expect("target/debug/gmod-host");
    d
}

/// Compile tests/c/gmod_host.c with warnings as errors (`name` keeps parallel tests apart).
fn build_host(name: &str) -> PathBuf {
    let (cflags, _) = luajit_dev();
    let exe = work_dir().join(name);
    run_ok(
        Command::new("cc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
            .args(&cflags)
            .arg(repo().join("tests/c/gmod_host.c"))
            .arg("-ldl")
            .arg("-o")
            .arg(&exe),
    );
    exe
}

/// A server directory as the 64-bit dedicated server lays it out: `bin/linux64/lua_shared.so`
/// (a link to `lua_lib`) and the module copied into `garrysmod/lua/bin/`.
fn server_root(name: &str, lua_lib: &Path) -> PathBuf {
    let root = work_dir().join(format!("{name}-root"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin/linux64")).expect("bin/linux64");
    std::fs::create_dir_all(root.join("garrysmod/lua/bin")).expect("garrysmod/lua/bin");
    std::os::unix::fs::symlink(lua_lib, root.join("bin/linux64/lua_shared.so")).expect("link lua_shared.so");
    std::fs::copy(dll(), root.join("garrysmod/lua/bin").join(DLL)).expect("copy the module");
    root
}

/// Run `cmd` to its end, or kill it after HOST_TIMEOUT; (exited successfully, stdout + stderr).
fn run_bounded(cmd: &mut Command) -> (bool, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("LD_LIBRARY_PATH");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the host") {
            break Some(status);
        }
        if start.elapsed() > HOST_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !err.is_empty() {
        text.push_str(&format!("--- stderr ---\n{err}"));
    }
    match status {
        Some(s) if s.success() => (true, text),
        Some(s) => (false, format!("{text}--- exit status: {s} ---\n")),
        None => (false, format!("{text}--- killed after {} s ---\n", HOST_TIMEOUT.as_secs())),
    }
}

/// Run the server script in the host (under `wrapper`, e.g. valgrind, when given) on `api`,
/// against a fresh emulator and a slow one; returns the output after checking every line a
/// passing run prints.
fn run_server(host: &Path, root: &Path, api: &str, wrapper: &[&str]) -> String {
    let emu = Emulator::start(Options::default()).expect("start the emulator");
    let slow =
        Emulator::start(Options { faults: Faults { latency_ms: 60_000, ..Faults::default() }, ..Options::default() })
            .expect("start the slow emulator");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(host);
            c
        }
        None => Command::new(host),
    };
    cmd.arg(root)
        .arg(repo().join("tests/gmod/server.lua"))
        .current_dir(root)
        .env("SONORAN_API", api)
        .env("SONORAN_URL", emu.base_url())
        .env("SONORAN_URL_SLOW", slow.base_url())
        .env("SONORAN_KEY", emu.api_key())
        .env("SONORAN_COMMUNITY", emu.community_id());
    let started = Instant::now();
    let (ok, out) = run_bounded(&mut cmd);
    println!(
        "===== gmod host{} on {api} ({:.1} s)\n{out}",
        wrapper.first().map(|w| format!(" under {w}")).unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    assert!(ok, "{api}: the host failed:\n{out}");
    let mut needles = vec![
        format!("api: {api}"),
        "callback get_account: ran once, ok, status 200".to_string(),
        "callback is_linked: ran once, ok, status 200".to_string(),
        "copies of the Lua library mapped: 1".to_string(),
        "library threads after gmod13_close: 0".to_string(),
        "threads in the process after gmod13_close: 1".to_string(),
        "after gmod13_close: the pending request completed SHUTDOWN once; all three clients refuse CLOSED".to_string(),
        "script: ok".to_string(),
        "gmod host: ok".to_string(),
    ];
    if api == "v2" {
        needles.push("callback create_link_code: ran once, ok, status 200".to_string());
    }
    for needle in &needles {
        assert!(out.lines().any(|l| l.trim_end() == needle), "{api}: missing the line {needle:?} in:\n{out}");
    }
    let before = out.lines().find(|l| l.starts_with("library threads before gmod13_close: ")).unwrap_or("");
    assert!(!before.starts_with("library threads before gmod13_close: 0 "), "{api}: no library thread ran: {before}");
    assert_eq!(slow.counts().received, 1, "{api}: the pending request had reached the slow emulator");
    out
}

#[test]
fn the_gmod_build_exports_both_entry_points_and_needs_the_servers_lua_shared() {
    let dll = dll();
    let defined = run_ok(Command::new("nm").args(["-D", "--defined-only"]).arg(&dll));
    for f in ["gmod13_open", "gmod13_close", "luaopen_sonoran"] {
        assert!(defined.lines().any(|l| l.ends_with(&format!(" T {f}"))), "{f} not exported:\n{defined}");
    }
    let dynamic = run_ok(Command::new("readelf").args(["-d"]).arg(&dll));
    assert!(dynamic.contains("Shared library: [lua_shared.so]"), "no dependency on lua_shared.so:\n{dynamic}");
    assert!(
        dynamic.contains("[$ORIGIN/../../../bin/linux64]"),
        "no run path from garrysmod/lua/bin/ to bin/linux64/:\n{dynamic}"
    );
    let header = run_ok(Command::new("readelf").args(["-h"]).arg(&dll));
    assert!(header.contains("DYN (Shared object file)") && header.contains("X86-64"), "{header}");
}

#[test]
fn the_gmod_build_imports_only_the_lua_51_api_of_luajit_20() {
    let out = run_ok(Command::new("nm").args(["-D", "--undefined-only"]).arg(dll()));
    let imported: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("lua"))
        .map(|s| s.split('@').next().unwrap_or(s))
        .collect();
    println!("Lua symbols the module imports ({}): {}", imported.len(), imported.join(" "));
    let allowed = allowed_lua_symbols();
    assert_eq!(allowed.len(), 124, "the list of the Lua 5.1 and LuaJIT 2.0 C API");
    let other: Vec<&&str> = imported.iter().filter(|s| !allowed.contains(s)).collect();
    assert!(other.is_empty(), "imports outside the Lua 5.1 / LuaJIT 2.0 C API: {other:?}");
    for needed in ["lua_pcall", "lua_cpcall", "lua_newuserdata", "luaL_ref"] {
        assert!(imported.contains(&needed), "{needed} not among the imports: is this the LuaJIT build? {imported:?}");
    }
}

#[test]
fn a_garrys_mod_server_runs_the_module_on_both_apis() {
    let (_, luajit) = luajit_dev();
    let host = build_host("gmod-host");
    for api in APIS {
        let root = server_root(&format!("server-{api}"), &luajit);
        run_server(&host, &root, api, &[]);
    }
}

#[test]
fn a_garrys_mod_server_under_valgrind_has_no_definite_leak_or_invalid_access() {
    let (_, luajit) = luajit_dev();
    let host = build_host("gmod-host-valgrind");
    for api in APIS {
        let root = server_root(&format!("valgrind-{api}"), &luajit);
        let valgrind =
            ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=3", "--quiet"];
        run_server(&host, &root, api, &valgrind);
    }
}

/// Lua 5.1 as the server's lua_shared.so: the build loads (5.1 has every symbol it imports),
/// and gmod13_open and luaopen_sonoran both refuse the state with a Lua error naming the two
/// interpreters; gmod13_close then finds nothing to close. Lua 5.4 cannot even load it.
#[test]
fn both_entry_points_refuse_a_state_that_is_not_luajit() {
    let lua51 = PathBuf::from(pkg(&["--variable=libdir"], "lua5.1", "liblua5.1-0-dev")).join("liblua5.1.so");
    assert!(lua51.exists(), "{} is missing: run scripts/install-deps.sh", lua51.display());
    let host = build_host("gmod-host-lua51");
    let root = server_root("lua51", &lua51);
    let mut cmd = Command::new(&host);
    cmd.arg(&root).arg(repo().join("tests/gmod/wrong_interpreter.lua")).current_dir(&root);
    let (ok, out) = run_bounded(&mut cmd);
    println!("===== gmod host with Lua 5.1\n{out}");
    assert!(ok, "the host failed:\n{out}");
    let refusal = "sonoran: this module was built for LuaJIT but was loaded by Lua 5.1; use dist/lua51/sonoran.so";
    for needle in [
        format!("gmod13_open refused: {refusal}"),
        format!("luaopen_sonoran refused: {refusal}"),
        "library threads after gmod13_close: 0".to_string(),
        "gmod host: ok".to_string(),
    ] {
        assert!(out.lines().any(|l| l.ends_with(&needle)), "missing a line ending {needle:?} in:\n{out}");
    }

    let lua54 = PathBuf::from(pkg(&["--variable=libdir"], "lua5.4", "liblua5.4-dev")).join("liblua5.4.so");
    let root = server_root("lua54", &lua54);
    let dll = root.join("garrysmod/lua/bin").join(DLL);
    let script = format!(
        "local f, err = package.loadlib('{}', 'gmod13_open') print(tostring(f) .. '\\t' .. tostring(err))",
        dll.display()
    );
    let (ok, out) = run_bounded(Command::new("lua5.4").args(["-e", &script]));
    println!("===== lua5.4 loading {DLL}\n{out}");
    assert!(ok, "lua5.4 crashed or failed:\n{out}");
    assert!(out.starts_with("nil\t") && out.contains("undefined symbol: lua_"), "{out}");
}
