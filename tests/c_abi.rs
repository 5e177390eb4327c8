//! The C ABI: the committed header matches the code, compiles as C11 and C++17 with warnings as
//! errors, the exported symbols are all there, and real C and C++ hosts run against the
//! emulator (the C one under valgrind too).

mod common;

use common::*;
use sonoran::ffi::*;
use sonoran::ApiVersion;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::process::Command;

const EXPORTS: &[&str] = &[
    "sonoran_client_new",
    "sonoran_client_free",
    "sonoran_set_api_id",
    "sonoran_link_character",
    "sonoran_modify_identifier",
    "sonoran_set_account_permissions",
    "sonoran_get_account",
    "sonoran_check_api_id",
    "sonoran_request",
    "sonoran_poll",
    "sonoran_pending",
    "sonoran_cancel",
    "sonoran_last_error",
    "sonoran_version",
    "sonoran_parse_session",
    "sonoran_string_free",
    "sonoran_link_from_tablet",
    "sonoran_is_linked",
    "sonoran_stats",
    "sonoran_set_log_callback",
    "sonoran_resume",
    "sonoran_request_v2",
    "sonoran_create_link_code",
    "sonoran_last_error_code",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding the libsonoran.so built alongside this test.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(dir.join("libsonoran.so").exists(), "libsonoran.so not found in {}", dir.display());
    dir
}

fn out_dir() -> PathBuf {
    let d = lib_dir().join("c-hosts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

#[test]
fn committed_header_matches_the_code() {
    let generated = std::fs::read_to_string(env!("SONORAN_GENERATED_HEADER")).unwrap();
    let committed = std::fs::read_to_string(root().join("include/sonoran.h")).unwrap();
    assert!(
        generated == committed,
        "include/sonoran.h is out of date with src/ffi.rs: regenerate it with `SONORAN_WRITE_HEADER=1 cargo build`"
    );
    for f in EXPORTS {
        assert!(
            committed.contains(&format!(" {f}(")) || committed.contains(&format!("*{f}(")),
            "{f} missing from the header"
        );
    }
}

#[test]
fn header_compiles_as_c11_and_cpp17_with_warnings_as_errors() {
    let header = root().join("include/sonoran.h");
    run_ok(
        Command::new("cc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-x", "c"])
            .arg(&header),
    );
    run_ok(
        Command::new("c++")
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-x", "c++"])
            .arg(&header),
    );
}

#[test]
fn the_library_exports_every_function() {
    let out = run_ok(Command::new("nm").args(["-D", "--defined-only"]).arg(lib_dir().join("libsonoran.so")));
    for f in EXPORTS {
        assert!(out.lines().any(|l| l.ends_with(&format!(" {f}"))), "{f} not exported");
    }
    assert!(!out.contains("luaopen_sonoran"), "the default build has no Lua symbols");
}

#[test]
fn the_library_needs_only_the_c_runtime_no_openssl() {
    let out = run_ok(Command::new("ldd").arg(lib_dir().join("libsonoran.so")));
    let libc_family =
        ["linux-vdso", "ld-linux", "libc.so", "libm.so", "libgcc_s.so", "libpthread.so", "libdl.so", "librt.so"];
    let mut seen = 0;
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            libc_family.iter().any(|l| line.starts_with(l) || line.contains(&format!("/{l}"))),
            "unexpected dependency: {line}\n{out}"
        );
        seen += 1;
    }
    assert!(seen >= 2, "ldd listed nothing: {out}");
    assert!(!out.contains("ssl") && !out.contains("crypto"), "{out}");
}

/// Compile an example host into its own binary (`name` keeps parallel tests apart).
fn build_host(source: &str, compiler: &str, std: &str, name: &str) -> PathBuf {
    build_c(&root().join("examples/c").join(source), compiler, std, name, &[])
}

/// Compile a C or C++ source against the header and the library, with warnings as errors.
fn build_c(src: &std::path::Path, compiler: &str, std: &str, name: &str, extra: &[&str]) -> PathBuf {
    let exe = out_dir().join(name);
    run_ok(
        Command::new(compiler)
            .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
            .args(extra)
            .arg("-I")
            .arg(root().join("include"))
            .arg(src)
            .arg("-L")
            .arg(lib_dir())
            .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
            .arg("-lsonoran")
            .arg("-o")
            .arg(&exe),
    );
    exe
}

fn host_env(cmd: &mut Command, emu: &Emulator) {
    cmd.env("SONORAN_API_URL", emu.base_url())
        .env("SONORAN_COMMUNITY_ID", emu.community_id())
        .env("SONORAN_API_KEY", emu.api_key());
}

/// `host_env` on one API: the example hosts read `SONORAN_API_VERSION`, and in v2 get no
/// community id at all (v2 never needs it).
fn host_env_for(cmd: &mut Command, emu: &Emulator, api: ApiVersion) {
    host_env(cmd, emu);
    if api == ApiVersion::V2 {
        cmd.env("SONORAN_API_VERSION", "v2").env_remove("SONORAN_COMMUNITY_ID");
    }
}

fn api_name(api: ApiVersion) -> &'static str {
    match api {
        ApiVersion::Legacy => "legacy",
        ApiVersion::V2 => "v2",
    }
}

#[test]
fn c_host_runs_every_call_against_the_emulator() {
    let exe = build_host("host.c", "cc", "-std=c11", "host-c");
    for api in APIS {
        let emu = start();
        let mut cmd = Command::new(&exe);
        host_env_for(&mut cmd, &emu, api);
        let out = run_ok(&mut cmd);
        let mut needles = vec![
            "\"type\":\"CHECK_APIID\",\"ok\":true,\"status\":200",
            "\"type\":\"GET_ACCOUNT\",\"ok\":true",
            "\"type\":\"SET_API_ID\",\"ok\":true,\"status\":200",
            "\"type\":\"LINK_CHARACTER\",\"ok\":true",
            "\"type\":\"MODIFY_IDENTIFIER\",\"ok\":true",
            "\"type\":\"SET_ACCOUNT_PERMISSIONS\",\"ok\":true",
            "\"code\":\"NOT_LINKED\"",
            "refused config: config.api_key: is required",
            "submitted 9, ok ",
        ];
        match api {
            ApiVersion::Legacy => needles.extend([
                "\"type\":\"CHECK_APIID\",\"ok\":true,\"status\":200,\"data\":\"SonoranBrian\"",
                "\"type\":\"SET_API_ID\",\"ok\":true,\"status\":200,\"data\":\"API ID(s) set!\"",
                "\"type\":\"GET_VERSION\",\"ok\":true",
                "refused request: data_json: is NULL",
            ]),
            ApiVersion::V2 => needles.extend([
                "\"type\":\"CHECK_APIID\",\"ok\":true,\"status\":200,\"data\":{\"accountUuid\"",
                "\"type\":\"GET /v2/general/version\",\"ok\":true",
                "\"trace_id\":\"00-",
                "refused request: sonoran_request sends a legacy API type; with \"api_version\": \"v2\" use sonoran_request_v2",
            ]),
        }
        for needle in needles {
            assert!(out.contains(needle), "{api:?}: missing {needle:?} in:\n{out}");
        }
        let log = emu.log();
        assert!(log.iter().all(|e| e.violations.is_empty()), "{api:?}: wire violations");
        assert!(!log.iter().any(|e| e.raw_body.contains("POLICERECEDIT")), "{api:?}: refused input was sent");
        if api == ApiVersion::V2 {
            assert!(log.iter().all(|e| e.path.starts_with("/v2/")), "{api:?}: only v2 routes");
        }
    }
}

#[test]
fn c_tablet_host_links_a_player_and_checks_joins() {
    let exe = build_host("tablet_host.c", "cc", "-std=c11", "tablet-host-c");
    for api in APIS {
        let emu = start();
        let civilian = emu.account("CivilianNoIds").unwrap();
        let secret = civilian["secretUuid"].as_str().unwrap().to_string();
        let mut cmd = Command::new(&exe);
        host_env_for(&mut cmd, &emu, api);
        cmd.env("SONORAN_TABLET_ACCOUNT_UUID", civilian["uuid"].as_str().unwrap())
            .env("SONORAN_TABLET_SECRET_UUID", &secret);
        let out = run_ok(&mut cmd);
        let mut needles = vec!["Newcomer joined: not linked", "\"code\":\"NO_IDENTIFIER\"", "tablet host: ok"];
        match api {
            ApiVersion::Legacy => needles.extend([
                "captured: {\"community\":\"TESTCOMM\",\"sessionId\":\"75afeea-a869-4dea-b2\",\"username\":\"CivilianNoIds\"}",
                "\"data\":{\"apiId\":\"11000010CCCC777\",\"outcome\":\"LINKED\"}",
                "refused capture: capture.community:",
            ]),
            ApiVersion::V2 => needles.extend([
                "captured: an account-link message for account e5d8c1b0-9a7f-4e6d-b5c4-a3b2c1d0e9f8",
                "\"apiId\":\"11000010CCCC777\",\"outcome\":\"LINKED\"",
                "refused capture: capture.accountUuid:",
            ]),
        }
        for needle in needles {
            assert!(out.contains(needle), "{api:?}: missing {needle:?} in:\n{out}");
        }
        assert!(!out.contains(&secret), "{api:?}: the secret was printed:\n{out}");
        if api == ApiVersion::V2 {
            let linked = emu.account("CivilianNoIds").unwrap();
            assert_eq!(linked["communityUserId"], "11000010CCCC777", "{linked}");
            assert!(emu.log().iter().any(|e| e.route.as_deref() == Some("POST /v2/general/links/set")));
        }
    }
}

#[test]
fn parse_session_over_the_c_abi() {
    unsafe {
        let text = CString::new(r#"{"username": "SonoranBrian", "session": "75afeea-a869"}"#).unwrap();
        let out = sonoran_parse_session(text.as_ptr());
        assert!(!out.is_null());
        let v: serde_json::Value = serde_json::from_str(CStr::from_ptr(out).to_str().unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"community": null, "username": "SonoranBrian", "sessionId": "75afeea-a869"}));
        sonoran_string_free(out);
        sonoran_string_free(std::ptr::null_mut());
        for hostile in [
            r#"{"username": "a", "session": "b", "apiIds": ["x"]}"#.to_string(),
            "LOGIN COMMUNITY: {T} USERNAME: {a\"} SESSIONID: {b}".to_string(),
            "x".repeat(10_000),
        ] {
            let t = CString::new(hostile).unwrap();
            assert!(sonoran_parse_session(t.as_ptr()).is_null());
            assert!(last_error().starts_with("capture"), "{}", last_error());
        }
        assert!(sonoran_parse_session(std::ptr::null()).is_null());
    }
}

#[test]
fn cpp_host_runs_against_the_emulator() {
    let exe = build_host("host.cpp", "c++", "-std=c++17", "host-cpp");
    for api in APIS {
        let emu = start();
        let mut cmd = Command::new(&exe);
        host_env_for(&mut cmd, &emu, api);
        let out = run_ok(&mut cmd);
        assert!(out.contains("cpp host: ok"), "{api:?}: {out}");
        assert_eq!(emu.counts().received, 2, "{api:?}: two calls, the refused one unsent");
    }
}

#[test]
fn c_host_under_valgrind_has_no_definite_leak_or_invalid_access() {
    let exe = build_host("host.c", "cc", "-std=c11", "host-c-valgrind");
    for api in APIS {
        let emu = start();
        let mut cmd = Command::new("valgrind");
        cmd.args(["--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=3", "--quiet"]).arg(&exe);
        host_env_for(&mut cmd, &emu, api);
        let out = run_ok(&mut cmd);
        assert!(out.contains("submitted 9"), "{} API: {out}", api_name(api));
    }
}

const MISUSE_CASES: [&str; 4] = ["free-in-callback-poll", "free-in-callback-thread", "poll-in-callback", "threads"];

/// The careless host (tests/c/misuse.c) built with AddressSanitizer and UndefinedBehavior-
/// Sanitizer: freeing the client inside its own callback (both deliveries), a poll inside every
/// one of 20,000 ready callbacks, and four submitting threads; each case reports ok and the
/// sanitizers find nothing.
#[test]
fn misuse_cases_run_clean_under_address_and_undefined_behaviour_sanitizers() {
    let src = root().join("tests/c/misuse.c");
    let exe = build_c(
        &src,
        "cc",
        "-std=c11",
        "misuse-asan",
        &["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-pthread"],
    );
    let emu = start();
    for case in MISUSE_CASES {
        let mut cmd = Command::new(&exe);
        cmd.arg(case)
            .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0:exitcode=3")
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:exitcode=3");
        host_env(&mut cmd, &emu);
        let out = run_ok(&mut cmd);
        assert!(out.contains(&format!("misuse {case}: ok")), "{case}: {out}");
        assert!(!out.contains("Sanitizer"), "{case}: {out}");
    }
}

/// The same cases under valgrind, which also sees the library's own accesses (the sanitizers
/// only instrument the host): no invalid read or write, no definite leak.
#[test]
fn misuse_cases_run_clean_under_valgrind() {
    let src = root().join("tests/c/misuse.c");
    let exe = build_c(&src, "cc", "-std=c11", "misuse-valgrind", &["-pthread"]);
    let emu = start();
    for case in MISUSE_CASES {
        let mut cmd = Command::new("valgrind");
        cmd.args(["--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=3", "--quiet"])
            .arg(&exe)
            .arg(case);
        host_env(&mut cmd, &emu);
        let out = run_ok(&mut cmd);
        assert!(out.contains(&format!("misuse {case}: ok")), "{case}: {out}");
    }
}

unsafe extern "C" fn count(user_data: *mut c_void, _id: u64, _json: *const c_char) {
    *(user_data as *mut u32) += 1;
}

fn last_error() -> String {
    let p = sonoran_last_error();
    assert!(!p.is_null(), "a refusal leaves a reason");
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn null_and_invalid_arguments_are_refused_with_a_reason() {
    unsafe {
        assert!(sonoran_client_new(std::ptr::null()).is_null());
        assert_eq!(last_error(), "config_json: is NULL");
        let bad_utf8 = [0xffu8, 0xfe, 0];
        assert!(sonoran_client_new(bad_utf8.as_ptr() as *const c_char).is_null());
        assert_eq!(last_error(), "config_json: is not valid UTF-8");
        let secret =
            CString::new(r#"{"community_id":"c","api_key":"sekrit-key-42-0123456789","api_url":"ftp://x"}"#).unwrap();
        assert!(sonoran_client_new(secret.as_ptr()).is_null());
        assert!(last_error().contains("config.api_url"));
        assert!(!last_error().contains("sekrit-key-42-0123456789"));

        let emu = start();
        let cfg = CString::new(format!(
            r#"{{"community_id":"{}","api_key":"{}","api_url":"{}"}}"#,
            emu.community_id(),
            emu.api_key(),
            emu.base_url()
        ))
        .unwrap();
        let c = sonoran_client_new(cfg.as_ptr());
        assert!(!c.is_null());
        assert!(sonoran_last_error().is_null(), "success clears the last error");
        let mut n: u32 = 0;
        let ud = &mut n as *mut u32 as *mut c_void;
        let ty = CString::new("lower").unwrap();
        let data = CString::new("{}").unwrap();
        assert_eq!(sonoran_request(c, ty.as_ptr(), data.as_ptr(), Some(count), ud), 0);
        assert!(last_error().starts_with("type:"));
        assert_eq!(sonoran_request(c, std::ptr::null(), data.as_ptr(), Some(count), ud), 0);
        assert_eq!(sonoran_poll(std::ptr::null_mut(), 0), 0);
        assert_eq!(sonoran_pending(std::ptr::null()), 0);
        assert_eq!(sonoran_cancel(std::ptr::null_mut(), 1), 0);
        assert_eq!(sonoran_cancel(c, 12345), 0);
        let ok = CString::new(r#"{"apiId":"11000010499F33C"}"#).unwrap();
        let id = sonoran_check_api_id(c, ok.as_ptr(), Some(count), ud);
        assert!(id > 0);
        // A NULL callback is accepted: the result is discarded.
        assert!(sonoran_check_api_id(c, ok.as_ptr(), None, std::ptr::null_mut()) > 0);
        let start = std::time::Instant::now();
        while sonoran_pending(c) > 0 {
            sonoran_poll(c, 0);
            assert!(start.elapsed().as_secs() < 20);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(n, 1);
        sonoran_client_free(c);
        sonoran_client_free(std::ptr::null_mut());
        assert_eq!(CStr::from_ptr(sonoran_version()).to_str().unwrap(), sonoran::VERSION);
    }
}

/// The header's `SONORAN_REFUSED_*` numbers are `RefusalKind`'s, and each is what a host reads
/// from `sonoran_last_error_code()` for that kind of refusal.
#[test]
fn refusals_carry_a_code_a_host_can_branch_on() {
    let header = std::fs::read_to_string(root().join("include/sonoran.h")).unwrap();
    assert!(header.contains("#define SONORAN_REFUSED_NONE 0"));
    for kind in sonoran::RefusalKind::ALL {
        let line = format!("#define SONORAN_REFUSED_{} {}", kind.as_str(), kind.number());
        assert!(header.contains(&line), "{line} missing from the header");
    }
    let code = || sonoran_last_error_code();
    unsafe {
        let bad = CString::new(r#"{"community_id":"c","api_key":"k"}"#).unwrap();
        assert!(sonoran_client_new(bad.as_ptr()).is_null());
        assert_eq!(code(), SONORAN_REFUSED_INVALID_CONFIG, "{}", last_error());
        assert!(sonoran_client_new(std::ptr::null()).is_null());
        assert_eq!(code(), SONORAN_REFUSED_INVALID_ARGUMENT);

        // A slow emulator and max_pending 1: the second request finds the queue full.
        let emu = start_with(Faults { latency_ms: 300, ..Faults::default() });
        let cfg = CString::new(format!(
            r#"{{"api_version":"v2","api_key":"{}","api_url":"{}","max_pending":1}}"#,
            emu.api_key(),
            emu.base_url()
        ))
        .unwrap();
        let c = sonoran_client_new(cfg.as_ptr());
        assert!(!c.is_null());
        assert_eq!(code(), SONORAN_REFUSED_NONE);
        let data = CString::new(r#"{"username":"SonoranBrian"}"#).unwrap();
        assert!(sonoran_get_account(c, data.as_ptr(), None, std::ptr::null_mut()) > 0);
        assert_eq!(code(), SONORAN_REFUSED_NONE);
        assert_eq!(sonoran_get_account(c, data.as_ptr(), None, std::ptr::null_mut()), 0);
        assert_eq!(code(), SONORAN_REFUSED_QUEUE_FULL, "{}", last_error());
        let ty = CString::new("GET_VERSION").unwrap();
        let null = CString::new("null").unwrap();
        assert_eq!(sonoran_request(c, ty.as_ptr(), null.as_ptr(), None, std::ptr::null_mut()), 0);
        assert_eq!(code(), SONORAN_REFUSED_WRONG_API, "{}", last_error());
        assert_eq!(sonoran_get_account(c, std::ptr::null(), None, std::ptr::null_mut()), 0);
        assert_eq!(code(), SONORAN_REFUSED_INVALID_ARGUMENT);
        // Freeing NULL, and freeing a NULL string, are successful calls: they clear it.
        sonoran_client_free(std::ptr::null_mut());
        assert_eq!((code(), sonoran_last_error().is_null()), (SONORAN_REFUSED_NONE, true));
        assert_eq!(sonoran_get_account(c, std::ptr::null(), None, std::ptr::null_mut()), 0);
        sonoran_string_free(std::ptr::null_mut());
        assert_eq!((code(), sonoran_last_error().is_null()), (SONORAN_REFUSED_NONE, true));

        // Freed from inside its own callback, the client is closed at once: a request made
        // later in that callback is refused CLOSED.
        unsafe extern "C" fn free_then_submit(user_data: *mut c_void, _id: u64, _json: *const c_char) {
            let c = *(user_data as *mut *mut sonoran_client);
            sonoran_client_free(c);
            let data = CString::new(r#"{"username":"SonoranBrian"}"#).unwrap();
            let id = sonoran_get_account(c, data.as_ptr(), None, std::ptr::null_mut());
            *(user_data as *mut *mut sonoran_client) = std::ptr::null_mut();
            CLOSED_SEEN
                .store(if id == 0 { sonoran_last_error_code() } else { -1 }, std::sync::atomic::Ordering::SeqCst);
        }
        static CLOSED_SEEN: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-2);
        let start = std::time::Instant::now();
        while sonoran_pending(c) > 0 {
            sonoran_poll(c, 0);
            assert!(start.elapsed().as_secs() < 20);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let mut slot: *mut sonoran_client = c;
        assert!(sonoran_get_account(c, data.as_ptr(), Some(free_then_submit), &mut slot as *mut _ as *mut c_void) > 0);
        while !slot.is_null() {
            sonoran_poll(slot, 0);
            assert!(start.elapsed().as_secs() < 20);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(CLOSED_SEEN.load(std::sync::atomic::Ordering::SeqCst), SONORAN_REFUSED_CLOSED);
    }
}
