//! The quickstart: every call in scope through the C ABI, each result envelope printed.
//!
//! By default it starts the offline emulator in-process on a free loopback port. With
//! `SONORAN_COMMUNITY_ID` and `SONORAN_API_KEY` (and optionally `SONORAN_API_URL`, default
//! `production`) set, it talks to that API instead.
//!
//!     cargo run --release --example quickstart

#[path = "emulator/mod.rs"]
mod emulator;

use sonoran::ffi::*;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static DELIVERED: AtomicUsize = AtomicUsize::new(0);

/// The callback a C host would write: print the envelope.
unsafe extern "C" fn print_result(_user_data: *mut c_void, request_id: u64, result_json: *const c_char) {
    let json = CStr::from_ptr(result_json).to_string_lossy();
    println!("  <- #{request_id} {json}");
    DELIVERED.fetch_add(1, Ordering::SeqCst);
}

fn last_error() -> String {
    let p = sonoran_last_error();
    if p.is_null() {
        return "(no reason)".into();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn main() {
    let (config, _emulator) = match (std::env::var("SONORAN_COMMUNITY_ID"), std::env::var("SONORAN_API_KEY")) {
        (Ok(community), Ok(key)) => {
            let url = std::env::var("SONORAN_API_URL").unwrap_or_else(|_| "production".into());
            println!("sonoran {}: talking to {url} as community {community}", sonoran::VERSION);
            let cfg = format!(
                r#"{{"community_id":{},"api_key":{},"api_url":{}}}"#,
                json_string(&community),
                json_string(&key),
                json_string(&url)
            );
            (cfg, None)
        }
        _ => {
            let emu = emulator::Emulator::start(emulator::Options::default()).expect("start the emulator");
            println!("sonoran {}: started the offline emulator at {}", sonoran::VERSION, emu.base_url());
            let cfg = format!(
                r#"{{"community_id":{},"api_key":{},"api_url":{},"timeout_ms":10000}}"#,
                json_string(&emu.community_id()),
                json_string(&emu.api_key()),
                json_string(&emu.base_url())
            );
            (cfg, Some(emu))
        }
    };

    let config = CString::new(config).expect("no NUL in the config");
    let client = unsafe { sonoran_client_new(config.as_ptr()) };
    if client.is_null() {
        eprintln!("the configuration was refused: {}", last_error());
        std::process::exit(1);
    }

    type Submit = unsafe extern "C" fn(*mut sonoran_client, *const c_char, sonoran_callback, *mut c_void) -> u64;
    let calls: [(&str, Submit, &str); 9] = [
        ("CHECK_APIID", sonoran_check_api_id, r#"{"apiId":"11000010499F33C"}"#),
        ("GET_ACCOUNT", sonoran_get_account, r#"{"username":"SonoranBrian"}"#),
        (
            "SET_API_ID (apiIds form)",
            sonoran_set_api_id,
            r#"{"username":"CivilianNoIds","sessionId":"2daf5d1-8256-4373-9a","apiIds":["steam:110000100000001"],"pushNew":true}"#,
        ),
        ("SET_API_ID (id1/id2 form)", sonoran_set_api_id, r#"{"username":"MedicSmith","id1":"110000100000002"}"#),
        ("LINK_CHARACTER", sonoran_link_character, r#"{"apiId":"11000010499F33C","syncId":"char-42","action":0}"#),
        (
            "MODIFY_IDENTIFIER (ADD)",
            sonoran_modify_identifier,
            r#"{"apiId":"11000010499F33C","action":0,"identifier":{"status":2,"location":"Legion Square","aop":"City","data":{"unitNum":"1A-12","name":"Brian","department":"LSPD"}}}"#,
        ),
        (
            "SET_ACCOUNT_PERMISSIONS",
            sonoran_set_account_permissions,
            r#"{"username":"OfficerJones","add":["POLRECEDIT","LIVEMAP"],"remove":["CIVILIAN"]}"#,
        ),
        ("CHECK_APIID (not linked)", sonoran_check_api_id, r#"{"apiId":"steam:nobody"}"#),
        (
            "SET_ACCOUNT_PERMISSIONS (misspelt, refused)",
            sonoran_set_account_permissions,
            r#"{"username":"OfficerJones","add":["POLICERECEDIT"]}"#,
        ),
    ];
    let mut accepted = 0;
    for (what, submit, data) in calls {
        let data = CString::new(data).expect("no NUL");
        let id = unsafe { submit(client, data.as_ptr(), Some(print_result), std::ptr::null_mut()) };
        if id == 0 {
            println!("-> {what}: refused, nothing sent: {}", last_error());
        } else {
            println!("-> {what}: request #{id}");
            accepted += 1;
        }
    }
    let ty = CString::new("GET_VERSION").unwrap();
    let null = CString::new("null").unwrap();
    let id = unsafe { sonoran_request(client, ty.as_ptr(), null.as_ptr(), Some(print_result), std::ptr::null_mut()) };
    println!("-> GET_VERSION (generic request): request #{id}");
    accepted += usize::from(id != 0);

    // The game loop: poll once per tick; it never blocks.
    let start = Instant::now();
    while unsafe { sonoran_pending(client) } > 0 && start.elapsed() < Duration::from_secs(60) {
        unsafe { sonoran_poll(client, 0) };
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { sonoran_client_free(client) };
    let delivered = DELIVERED.load(Ordering::SeqCst);
    println!("{accepted} requests accepted, {delivered} results delivered");
    if delivered != accepted {
        std::process::exit(2);
    }
}
