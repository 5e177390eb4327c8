//! Packaging, used the way a user would, from a temporary prefix or tree:
//!
//! - cargo-c: `cargo cinstall --release --prefix <p> --libdir lib` installs the shared library
//!   under its soname, the committed header and `sonoran.pc`; `examples/c/host.c`, built with
//!   `cc $(pkg-config --cflags --libs sonoran)` alone, runs against the emulator on both APIs.
//! - LuaRocks: `luarocks make` of the rockspec for Lua 5.4 and for Lua 5.1, then `require` from
//!   that tree in the matching interpreter; the rock packed from it installs into a second tree
//!   and works there too. The rockspec's version must be Cargo.toml's.
//!
//! The nested builds use their own target directories (target/cargo-c; target/lua, shared with
//! scripts/build-lua.sh), so they never wait on the lock of the `cargo test` that runs them.
//! Every command runs under coreutils `timeout`, which ends the command's children as well.

mod common;

use common::*;
use sonoran::ApiVersion;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// The two nested builds share the machine's cores: one at a time keeps their time limits honest.
static BUILDS: Mutex<()> = Mutex::new(());

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty directory under target/tmp.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("packaging").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Run `cmd` under `timeout` (killed with its children after `limit`); returns (success,
/// stdout + stderr). The caller decides what a failure means.
fn run_for(limit: Duration, cmd: &Command) -> (bool, String) {
    let mut bounded = Command::new("timeout");
    bounded.arg("--kill-after=10").arg(limit.as_secs().to_string()).arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => bounded.env(key, v),
            None => bounded.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        bounded.current_dir(dir);
    }
    let out = bounded.output().unwrap_or_else(|e| panic!("running {cmd:?} under `timeout`: {e}"));
    let mut text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(124) || out.status.code() == Some(137) {
        text.push_str(&format!("\n--- killed after {} s ---\n", limit.as_secs()));
    }
    (out.status.success(), text)
}

/// `run_for`, failing the test unless the command succeeded.
fn run_ok(limit: Duration, cmd: &Command) -> String {
    let (ok, text) = run_for(limit, cmd);
    assert!(ok, "{cmd:?} failed:\n{text}");
    text
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

const MISSING_TOOLS: &str =
    "run scripts/install-deps.sh (it installs cargo-c, luarocks, the Lua headers and pkg-config)";

// ---------------------------------------------------------------- cargo-c

/// The soname's version as cargo-c derives it from Cargo.toml's (semver: 0.0.z -> 0.0.z,
/// 0.y.z -> 0.y, x.y.z -> x).
fn soname_version() -> String {
    let (major, minor, patch) =
        (env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"), env!("CARGO_PKG_VERSION_PATCH"));
    match (major, minor) {
        ("0", "0") => format!("0.0.{patch}"),
        ("0", _) => format!("0.{minor}"),
        _ => major.to_string(),
    }
}

#[test]
fn cargo_cinstall_installs_the_library_the_header_and_a_pkg_config_file() {
    let _one_build = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let mut probe = cargo();
    probe.args(["cinstall", "--version"]);
    let (ok, text) = run_for(Duration::from_secs(60), &probe);
    assert!(ok, "`cargo cinstall` (cargo-c) is missing: {MISSING_TOOLS}\n{text}");

    let prefix = fresh_dir("cinstall-prefix");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/").join("cargo-c");
    let mut install = cargo();
    install
        .args(["cinstall", "--release", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .arg("--prefix")
        .arg(&prefix)
        .args(["--libdir", "lib", "--target-dir"])
        .arg(&target_dir)
        .current_dir(root());
    let out = run_ok(Duration::from_secs(1800), &install);
    println!("cargo cinstall: {}", out.lines().filter(|l| l.contains("Installing")).collect::<Vec<_>>().join(" | "));

    // The library under its full version, with the soname link and the development link.
    let lib = prefix.join("lib");
    let soname = format!("libsonoran.so.{}", soname_version());
    let real = lib.join(format!("libsonoran.so.{VERSION}"));
    assert!(real.is_file() && !real.is_symlink(), "{} missing; installed:\n{out}", real.display());
    for link in [soname.clone(), "libsonoran.so".to_string()] {
        let path = lib.join(&link);
        assert!(path.is_symlink(), "{} is not a symlink", path.display());
        assert_eq!(std::fs::canonicalize(&path).unwrap(), std::fs::canonicalize(&real).unwrap(), "{link}");
    }
    let dynamic = run_ok(Duration::from_secs(60), Command::new("readelf").arg("-d").arg(&real));
    let soname_line = format!("Library soname: [{soname}]");
    assert!(dynamic.lines().any(|l| l.contains("(SONAME)") && l.contains(&soname_line)), "{dynamic}");
    println!("soname: {soname}");

    // The committed header, byte for byte, and no other.
    let include = prefix.join("include");
    let headers: Vec<String> = std::fs::read_dir(&include)
        .unwrap_or_else(|e| panic!("{}: {e}", include.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(headers, ["sonoran.h"], "the include directory holds exactly the committed header");
    let installed = std::fs::read(include.join("sonoran.h")).unwrap();
    let committed = std::fs::read(root().join("include/sonoran.h")).unwrap();
    assert!(installed == committed, "the installed sonoran.h differs from include/sonoran.h");

    // pkg-config finds it in the prefix, at Cargo.toml's version.
    let pc_dir = lib.join("pkgconfig");
    assert!(pc_dir.join("sonoran.pc").is_file(), "no lib/pkgconfig/sonoran.pc");
    let pkg_config = |args: &[&str]| {
        let mut cmd = Command::new("pkg-config");
        cmd.args(args).env("PKG_CONFIG_PATH", &pc_dir).env_remove("PKG_CONFIG_LIBDIR");
        run_ok(Duration::from_secs(60), &cmd).trim().to_string()
    };
    assert_eq!(pkg_config(&["--modversion", "sonoran"]), VERSION);
    let flags = pkg_config(&["--cflags", "--libs", "sonoran"]);
    println!("pkg-config --cflags --libs sonoran: {flags}");
    assert!(flags.contains(&format!("-I{}", include.display())), "{flags}");
    assert!(flags.contains(&format!("-L{}", lib.display())) && flags.contains("-lsonoran"), "{flags}");

    // A host built with those flags alone: no -I or -L into the source tree.
    let build = fresh_dir("cinstall-host");
    let exe = build.join("host");
    let mut cc = Command::new("sh");
    cc.arg("-c")
        .arg(r#"cc -std=c11 -Wall -Wextra -Werror -pedantic "$1" -o "$2" $(pkg-config --cflags --libs sonoran)"#)
        .arg("sh")
        .arg(root().join("examples/c/host.c"))
        .arg(&exe)
        .current_dir(&build)
        .env("PKG_CONFIG_PATH", &pc_dir)
        .env_remove("PKG_CONFIG_LIBDIR")
        .env_remove("CPATH")
        .env_remove("C_INCLUDE_PATH")
        .env_remove("LIBRARY_PATH");
    run_ok(Duration::from_secs(120), &cc);
    let needed = run_ok(Duration::from_secs(60), Command::new("readelf").arg("-d").arg(&exe));
    assert!(needed.lines().any(|l| l.contains("(NEEDED)") && l.contains(&format!("[{soname}]"))), "{needed}");
    let mut ldd = Command::new("ldd");
    ldd.arg(&exe).env("LD_LIBRARY_PATH", &lib);
    let resolved = run_ok(Duration::from_secs(60), &ldd);
    let expected = format!("{soname} => {}", lib.join(&soname).display());
    assert!(resolved.contains(&expected), "want {expected:?}:\n{resolved}");

    for api in APIS {
        let emu = start();
        let mut host = Command::new(&exe);
        host.env("LD_LIBRARY_PATH", &lib)
            .env("SONORAN_API_URL", emu.base_url())
            .env("SONORAN_COMMUNITY_ID", emu.community_id())
            .env("SONORAN_API_KEY", emu.api_key());
        if api == ApiVersion::V2 {
            host.env("SONORAN_API_VERSION", "v2").env_remove("SONORAN_COMMUNITY_ID");
        }
        let out = run_ok(Duration::from_secs(120), &host);
        for needle in [
            "\"type\":\"GET_ACCOUNT\",\"ok\":true",
            "\"type\":\"SET_API_ID\",\"ok\":true,\"status\":200",
            "\"code\":\"NOT_LINKED\"",
            "submitted 9, ok ",
        ] {
            assert!(out.contains(needle), "{api:?}: missing {needle:?} in:\n{out}");
        }
        assert!(emu.counts().received > 0, "{api:?}: the emulator saw no request");
        println!("installed host on {api:?}: {}", out.lines().last().unwrap_or(""));
    }
}

// ---------------------------------------------------------------- LuaRocks

/// The rockspec in the repository root: (file name, contents).
fn rockspec() -> (String, String) {
    let mut found: Vec<String> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rockspec"))
        .collect();
    assert_eq!(found.len(), 1, "exactly one rockspec in the repository root: {found:?}");
    let name = found.remove(0);
    let text = std::fs::read_to_string(root().join(&name)).unwrap();
    (name, text)
}

#[test]
fn the_rockspec_version_is_cargo_tomls() {
    let (name, text) = rockspec();
    let revision = name
        .strip_prefix(&format!("sonoran-{VERSION}-"))
        .and_then(|rest| rest.strip_suffix(".rockspec"))
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| {
            panic!("{name}: want sonoran-{VERSION}-<revision>.rockspec (Cargo.toml's version is {VERSION})")
        });
    assert!(text.lines().any(|l| l.trim() == "package = \"sonoran\""), "{name}: package = \"sonoran\"");
    let want = format!("version = \"{VERSION}-{revision}\"");
    assert!(text.lines().any(|l| l.trim() == want), "{name}: want the line {want} (Cargo.toml's version)");
    for helper in helpers() {
        let source =
            if helper == "link_command" { "lua/examples/link_command.lua".into() } else { format!("lua/{helper}.lua") };
        let entry = format!("{helper} = \"{source}\",");
        assert!(text.lines().any(|l| l.trim() == entry), "{name}: build.install.lua lacks the line {entry}");
    }
}

/// What `luarocks path --tree <tree>` exports: LUA_PATH and LUA_CPATH.
fn tree_paths(lua_version: &str, tree: &Path) -> (String, String) {
    let mut cmd = Command::new("luarocks");
    cmd.arg(format!("--lua-version={lua_version}")).arg("path").arg("--tree").arg(tree);
    let out = run_ok(Duration::from_secs(60), &cmd);
    let var = |name: &str| {
        let prefix = format!("export {name}='");
        out.lines()
            .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.strip_suffix('\'')))
            .unwrap_or_else(|| panic!("no {name} in `luarocks path`:\n{out}"))
            .to_string()
    };
    (var("LUA_PATH"), var("LUA_CPATH"))
}

/// The pure-Lua modules the rock installs: every lua/*.lua, and the /link command of
/// lua/examples (a module too); nothing of tests/.
fn helpers() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("lua"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension() == Some(OsStr::new("lua")))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.push("link_command".to_string());
    names.sort();
    names
}

/// Loads everything from `tree` in `interpreter`, in an empty directory with no other Lua paths;
/// returns the script's output.
const CHECK: &str = r#"
local function find(name, path)
  for template in path:gmatch("[^;]+") do
    local file = template:gsub("%?", name)
    local f = io.open(file, "rb")
    if f then f:close() return file end
  end
  return "(not found)"
end
local loaded = require("sonoran_loader").load()
local sonoran = require("sonoran")
assert(loaded == sonoran, "the loader and require return one module")
print("module " .. find("sonoran", package.cpath))
print("version " .. sonoran.version())
print("abi " .. sonoran.ABI)
for name in ("@HELPERS@"):gmatch("[^,]+") do
  local m = require(name)
  print("helper " .. name .. " " .. type(m) .. " " .. find(name, package.path))
end
"#;

fn check_tree(lua_version: &str, interpreter: &str, abi: &str, tree: &Path) {
    let share = tree.join("share/lua").join(lua_version);
    let mut installed: Vec<String> = std::fs::read_dir(&share)
        .unwrap_or_else(|e| panic!("{}: {e}", share.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort();
    let helpers = helpers();
    let mut want: Vec<String> = helpers.iter().map(|h| format!("{h}.lua")).collect();
    want.sort();
    assert_eq!(installed, want, "the Lua modules of the rock in {}", share.display());
    let module = tree.join("lib/lua").join(lua_version).join("sonoran.so");
    assert!(module.is_file(), "{} missing", module.display());

    let (lua_path, lua_cpath) = tree_paths(lua_version, tree);
    let workdir = fresh_dir(&format!("run-{abi}"));
    let mut cmd = Command::new(interpreter);
    cmd.arg("-e")
        .arg(CHECK.replace("@HELPERS@", &helpers.join(",")))
        .current_dir(&workdir)
        .env("LUA_PATH", &lua_path)
        .env("LUA_CPATH", &lua_cpath);
    for var in ["LUA_PATH_5_4", "LUA_CPATH_5_4", "LUA_INIT", "LUA_INIT_5_4", "SONORAN_DIST"] {
        cmd.env_remove(var);
    }
    cmd.stdin(std::process::Stdio::null());
    let out = run_ok(Duration::from_secs(60), &cmd);
    let tree_text = tree.display().to_string();
    let expect = |line: String| assert!(out.lines().any(|l| l == line), "{interpreter}: want {line:?} in:\n{out}");
    expect(format!("module {}", module.display()));
    expect(format!("version {VERSION}"));
    expect(format!("abi {abi}"));
    for helper in &helpers {
        expect(format!("helper {helper} table {}", share.join(format!("{helper}.lua")).display()));
    }
    assert!(out.lines().all(|l| !l.starts_with("helper") || l.contains(&tree_text)), "{out}");
}

#[test]
fn luarocks_make_builds_and_installs_the_module_for_lua_5_4_and_5_1() {
    let _one_build = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let probe = {
        let mut cmd = Command::new("luarocks");
        cmd.arg("--version");
        cmd
    };
    let (ok, text) = run_for(Duration::from_secs(60), &probe);
    assert!(ok, "`luarocks` is missing: {MISSING_TOOLS}\n{text}");
    let (spec, _) = rockspec();
    for (lua_version, interpreter, abi) in [("5.4", "lua5.4", "lua54"), ("5.1", "lua5.1", "lua51")] {
        let tree = fresh_dir(&format!("rocks-{abi}"));
        let lv = format!("--lua-version={lua_version}");
        let mut make = Command::new("luarocks");
        make.arg(&lv).arg("make").arg("--tree").arg(&tree).arg(&spec).current_dir(root());
        let out = run_ok(Duration::from_secs(1800), &make);
        assert!(out.contains(&format!("building the Lua module for {abi}")), "{out}");
        check_tree(lua_version, interpreter, abi, &tree);
        println!(
            "luarocks {lv} make: {}",
            out.lines().filter(|l| l.contains("installed")).collect::<Vec<_>>().join(" | ")
        );

        // The binary rock packed from that tree installs on a machine without Rust.
        let packdir = fresh_dir(&format!("pack-{abi}"));
        let mut pack = Command::new("luarocks");
        pack.arg(&lv).arg("pack").arg("sonoran").arg("--tree").arg(&tree).current_dir(&packdir);
        run_ok(Duration::from_secs(120), &pack);
        let rock = std::fs::read_dir(&packdir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension() == Some(OsStr::new("rock")))
            .unwrap_or_else(|| panic!("`luarocks pack` made no .rock in {}", packdir.display()));
        let tree2 = fresh_dir(&format!("rocks-{abi}-from-rock"));
        let mut install = Command::new("luarocks");
        install.arg(&lv).arg("install").arg("--tree").arg(&tree2).arg(&rock).current_dir(&packdir);
        let out = run_ok(Duration::from_secs(120), &install);
        check_tree(lua_version, interpreter, abi, &tree2);
        println!(
            "luarocks {lv} install {}: {}",
            rock.file_name().unwrap().to_string_lossy(),
            out.lines().filter(|l| l.contains("installed")).collect::<Vec<_>>().join(" | ")
        );
    }
}
