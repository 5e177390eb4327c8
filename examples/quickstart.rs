//! The quickstart: every call in scope through the C ABI, on the v2 API and on the legacy one,
//! each result envelope printed.
//!
//! By default it starts the offline emulator in-process on a free loopback port (it serves both
//! APIs over one state) and runs every call on each API. With `SONORAN_API_KEY` (and, for the
//! legacy API, `SONORAN_COMMUNITY_ID`) set, it talks to that community instead, on the API named
//! by `--api` (default `v2` there), at `SONORAN_API_URL` (default `production`).
//!
//!     cargo run --release --example quickstart                # both APIs, against the emulator
//!     cargo run --release --example quickstart -- --api v2    # one API

#[path = "emulator/mod.rs"]
mod emulator;

use sonoran::ffi::*;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BRIAN: &str = "11000010499F33C";

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

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

/// One step of the quickstart: what it is, and how it submits through the C ABI.
struct Step {
    what: &'static str,
    submit: Box<dyn Fn(*mut sonoran_client) -> u64>,
}

type Submit = unsafe extern "C" fn(*mut sonoran_client, *const c_char, sonoran_callback, *mut c_void) -> u64;

/// A typed call (`sonoran_get_account`, ...) with its `data_json`.
fn typed(what: &'static str, submit: Submit, data: &str) -> Step {
    let data = cstr(data);
    Step {
        what,
        submit: Box::new(move |c| unsafe { submit(c, data.as_ptr(), Some(print_result), std::ptr::null_mut()) }),
    }
}

/// A flow taking a player's identifiers (`sonoran_is_linked`, `sonoran_create_link_code`).
fn player(what: &'static str, submit: Submit, identifiers: &str) -> Step {
    typed(what, submit, identifiers)
}

fn tablet(what: &'static str, capture: String, identifiers: &str) -> Step {
    let (capture, ids) = (cstr(&capture), cstr(identifiers));
    Step {
        what,
        submit: Box::new(move |c| unsafe {
            sonoran_link_from_tablet(c, capture.as_ptr(), ids.as_ptr(), Some(print_result), std::ptr::null_mut())
        }),
    }
}

/// The calls on the legacy API: the seeds' request objects.
fn legacy_steps(community: &str) -> Vec<Step> {
    let ty = cstr("GET_VERSION");
    let null = cstr("null");
    vec![
        typed("CHECK_APIID", sonoran_check_api_id, &format!(r#"{{"apiId":"{BRIAN}"}}"#)),
        typed("GET_ACCOUNT", sonoran_get_account, r#"{"username":"SonoranBrian"}"#),
        typed(
            "SET_API_ID (apiIds form)",
            sonoran_set_api_id,
            r#"{"username":"CivilianNoIds","sessionId":"2daf5d1-8256-4373-9a","apiIds":["steam:110000100000001"],"pushNew":true}"#,
        ),
        typed("SET_API_ID (id1/id2 form)", sonoran_set_api_id, r#"{"username":"MedicSmith","id1":"110000100000002"}"#),
        typed(
            "LINK_CHARACTER",
            sonoran_link_character,
            &format!(r#"{{"apiId":"{BRIAN}","syncId":"char-42","action":0}}"#),
        ),
        typed(
            "MODIFY_IDENTIFIER (ADD)",
            sonoran_modify_identifier,
            &format!(
                r#"{{"apiId":"{BRIAN}","action":0,"identifier":{{"status":2,"location":"Legion Square","aop":"City","data":{{"unitNum":"1A-12","name":"Brian","department":"LSPD"}}}}}}"#
            ),
        ),
        typed(
            "SET_ACCOUNT_PERMISSIONS",
            sonoran_set_account_permissions,
            r#"{"username":"OfficerJones","add":["POLRECEDIT","LIVEMAP"],"remove":["CIVILIAN"]}"#,
        ),
        typed("CHECK_APIID (not linked)", sonoran_check_api_id, r#"{"apiId":"steam:nobody"}"#),
        typed(
            "SET_ACCOUNT_PERMISSIONS (misspelt, refused)",
            sonoran_set_account_permissions,
            r#"{"username":"OfficerJones","add":["POLICERECEDIT"]}"#,
        ),
        Step {
            what: "GET_VERSION (generic request)",
            submit: Box::new(move |c| unsafe {
                sonoran_request(c, ty.as_ptr(), null.as_ptr(), Some(print_result), std::ptr::null_mut())
            }),
        },
        player("is_linked (a player joins)", sonoran_is_linked, &format!(r#"["license:abc","steam:{BRIAN}"]"#)),
        tablet(
            "link_from_tablet (the tablet's login line)",
            format!("LOGIN COMMUNITY: {{{community}}} USERNAME: {{PendingRecruit}} SESSIONID: {{5c1e-77aa-90b2}}"),
            r#"["steam:110000100000004"]"#,
        ),
    ]
}

/// The same calls on v2: the same functions and fields (`apiId` is an alias of v2's
/// `communityUserId`), the v2-only link code, and the tablet's `scad:account-link` message.
fn v2_steps(tablet_secret: Option<(String, String)>) -> Vec<Step> {
    let (get, path) = (cstr("GET"), cstr("/v2/general/version"));
    let mut steps = vec![
        typed("check_api_id (links/check)", sonoran_check_api_id, &format!(r#"{{"apiId":"{BRIAN}"}}"#)),
        typed("get_account", sonoran_get_account, r#"{"username":"SonoranBrian"}"#),
        typed(
            "set_api_id (PUT api-ids)",
            sonoran_set_api_id,
            r#"{"username":"CivilianNoIds","apiIds":["steam:110000100000001"]}"#,
        ),
        typed(
            "set_api_id with a sessionId (refused: v2 links through the tablet message or a code)",
            sonoran_set_api_id,
            r#"{"username":"CivilianNoIds","sessionId":"2daf5d1-8256-4373-9a","apiIds":["x"]}"#,
        ),
        typed(
            "link_character (PUT character-links/{syncId})",
            sonoran_link_character,
            &format!(r#"{{"apiId":"{BRIAN}","syncId":"char:42","action":"ADD"}}"#),
        ),
        typed(
            "modify_identifier ADD (the account UUID resolved first)",
            sonoran_modify_identifier,
            &format!(
                r#"{{"apiId":"{BRIAN}","action":"ADD","identifier":{{"status":2,"aop":"City","data":{{"unitNum":"1A-12","name":"Brian"}}}}}}"#
            ),
        ),
        typed(
            "set_account_permissions (PATCH)",
            sonoran_set_account_permissions,
            r#"{"username":"OfficerJones","add":["POLRECEDIT","LIVEMAP"],"remove":["CIVILIAN"]}"#,
        ),
        typed("check_api_id (not linked)", sonoran_check_api_id, r#"{"apiId":"steam:nobody"}"#),
        typed(
            "get_account with two selectors (refused)",
            sonoran_get_account,
            r#"{"username":"SonoranBrian","apiId":"11000010499F33C"}"#,
        ),
        Step {
            what: "request_v2 GET /v2/general/version",
            submit: Box::new(move |c| unsafe {
                sonoran_request_v2(
                    c,
                    get.as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    Some(print_result),
                    std::ptr::null_mut(),
                )
            }),
        },
        player("is_linked (a player joins)", sonoran_is_linked, &format!(r#"["license:abc","steam:{BRIAN}"]"#)),
        player("create_link_code (a /link command)", sonoran_create_link_code, r#"["steam:11000010NEWC0DE"]"#),
    ];
    if let Some((uuid, secret)) = tablet_secret {
        steps.push(tablet(
            "link_from_tablet (the tablet's scad:account-link message)",
            format!(r#"{{"type":"scad:account-link","accountUuid":"{uuid}","secretUuid":"{secret}"}}"#),
            r#"["steam:110000100000003"]"#,
        ));
    }
    steps
}

/// Run `steps` on a client made from `config`; true when every accepted request called back.
fn run(api: &str, config: &str, steps: Vec<Step>) -> bool {
    println!("\n== {api} API ==");
    let config = cstr(config);
    let client = unsafe { sonoran_client_new(config.as_ptr()) };
    if client.is_null() {
        eprintln!("the configuration was refused: {}", last_error());
        return false;
    }
    DELIVERED.store(0, Ordering::SeqCst);
    let mut accepted = 0;
    for step in &steps {
        let id = (step.submit)(client);
        if id == 0 {
            println!("-> {}: refused, nothing sent: {}", step.what, last_error());
        } else {
            println!("-> {}: request #{id}", step.what);
            accepted += 1;
        }
    }
    // The game loop: poll once per tick; it never blocks.
    let start = Instant::now();
    while unsafe { sonoran_pending(client) } > 0 && start.elapsed() < Duration::from_secs(60) {
        unsafe { sonoran_poll(client, 0) };
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { sonoran_client_free(client) };
    let delivered = DELIVERED.load(Ordering::SeqCst);
    println!("{api}: {accepted} requests accepted, {delivered} results delivered");
    delivered == accepted
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let api = match args.iter().position(|a| a == "--api").map(|i| args.get(i + 1).map(String::as_str)) {
        None => None,
        Some(Some(v @ ("legacy" | "v2" | "both"))) => Some(v.to_string()),
        Some(_) => {
            eprintln!("usage: quickstart [--api legacy|v2|both]");
            std::process::exit(64);
        }
    };
    let mut ok = true;
    match std::env::var("SONORAN_API_KEY") {
        Ok(key) => {
            let url = std::env::var("SONORAN_API_URL").unwrap_or_else(|_| "production".into());
            let community = std::env::var("SONORAN_COMMUNITY_ID").ok();
            let api = api.unwrap_or_else(|| "v2".into());
            println!("sonoran {}: talking to {url} ({api})", sonoran::VERSION);
            if api == "legacy" || api == "both" {
                let Some(community) = community.as_deref() else {
                    eprintln!("the legacy API needs SONORAN_COMMUNITY_ID");
                    std::process::exit(64);
                };
                let cfg = format!(
                    r#"{{"community_id":{},"api_key":{},"api_url":{}}}"#,
                    json_string(community),
                    json_string(&key),
                    json_string(&url)
                );
                ok &= run("legacy", &cfg, legacy_steps(community));
            }
            if api == "v2" || api == "both" {
                let cfg = format!(
                    r#"{{"api_version":"v2","api_key":{},"api_url":{}}}"#,
                    json_string(&key),
                    json_string(&url)
                );
                ok &= run("v2", &cfg, v2_steps(None));
            }
        }
        Err(_) => {
            let api = api.unwrap_or_else(|| "both".into());
            let emu = emulator::Emulator::start(emulator::Options::default()).expect("start the emulator");
            println!("sonoran {}: started the offline emulator at {}", sonoran::VERSION, emu.base_url());
            if api == "v2" || api == "both" {
                // The emulator knows the account's secret the CAD would hand the tablet.
                let medic = emu.account("MedicSmith").expect("the fixture's MedicSmith");
                let secret =
                    (medic["uuid"].as_str().unwrap().to_string(), medic["secretUuid"].as_str().unwrap().to_string());
                let cfg = format!(
                    r#"{{"api_version":"v2","api_key":{},"api_url":{},"timeout_ms":10000}}"#,
                    json_string(&emu.api_key()),
                    json_string(&emu.base_url())
                );
                ok &= run("v2", &cfg, v2_steps(Some(secret)));
            }
            if api == "legacy" || api == "both" {
                let cfg = format!(
                    r#"{{"community_id":{},"api_key":{},"api_url":{},"timeout_ms":10000}}"#,
                    json_string(&emu.community_id()),
                    json_string(&emu.api_key()),
                    json_string(&emu.base_url())
                );
                ok &= run("legacy", &cfg, legacy_steps(&emu.community_id()));
            }
        }
    }
    if !ok {
        std::process::exit(2);
    }
}
