//! The API budget: an emulator enforcing 60 calls per minute (a bucket of 60, refilled at one a
//! second, as `--rate-limit 60/60`), 10 logical SET_API_ID operations offered per second for a
//! bounded window, through the library (pacing equal to the emulator's limit, coalescing off
//! and on) and through a client that behaves like the official integration (sends at once,
//! and drops the type for 60 s after a 429).

use crate::emulator::{Emulator, Faults, Options, RateLimit};
use sonoran::{Call, Client, Config};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const OPS_PER_SECOND: u32 = 10;
const USERS: [&str; 3] = ["SonoranBrian", "OfficerJones", "MedicSmith"];

#[derive(Debug, Default, Clone)]
pub struct Budget {
    pub label: String,
    pub offered: u64,
    /// Completed OK within the window.
    pub ok_in_window: u64,
    /// Dropped by the client itself (official-style only) or completed with an error.
    pub lost: u64,
    pub api_calls: u64,
    /// 429 answers, as counted by the emulator.
    pub received_429: u64,
}

fn emulator() -> Emulator {
    let faults = Faults { rate_limit: Some(RateLimit::per(60, 60.0)), ..Faults::default() };
    Emulator::start(Options { faults, log: false, ..Options::default() }).expect("emulator starts")
}

fn element(i: u64) -> serde_json::Value {
    serde_json::json!({"username": USERS[i as usize % USERS.len()], "apiIds": [format!("BENCH{i:08}")]})
}

/// The library on a 10 ms game tick: one operation every 100 ms, `poll()` every tick.
pub fn library(coalesce_ms: Option<u64>, window: Duration) -> Budget {
    let emu = emulator();
    let mut config = serde_json::json!({
        "community_id": emu.community_id(),
        "api_key": emu.api_key(),
        "api_url": emu.base_url(),
        "rate_limits": {"global": {"per_second": 1, "burst": 60}},
    });
    if let Some(ms) = coalesce_ms {
        config["coalesce"] = serde_json::json!({"SET_API_ID": ms});
    }
    let client = Client::new(Config::from_value(&config).expect("config")).expect("client");
    let start = Instant::now();
    let end = start + window;
    let ok = Arc::new(Mutex::new((0u64, 0u64)));
    let mut offered = 0u64;
    let every = Duration::from_secs(1) / OPS_PER_SECOND;
    while Instant::now() < end {
        while start + every * offered as u32 <= Instant::now() && Instant::now() < end {
            let ok2 = ok.clone();
            let handler = Box::new(move |c: sonoran::Completion| {
                let mut o = ok2.lock().unwrap();
                if c.is_ok() && Instant::now() <= end {
                    o.0 += 1;
                } else if !c.is_ok() {
                    o.1 += 1;
                }
            });
            let call = Call::set_api_id(element(offered)).expect("valid call");
            client.submit(call, Some(handler)).expect("accepted");
            offered += 1;
        }
        client.poll(0, |_| {});
        std::thread::sleep(Duration::from_millis(10));
    }
    client.poll(0, |_| {});
    let stats = client.stats();
    let (ok_in_window, errors_in_window) = *ok.lock().unwrap();
    let label = match coalesce_ms {
        Some(ms) => format!("library, pacing 1/s burst 60, coalesce SET_API_ID {ms} ms"),
        None => "library, pacing 1/s burst 60, no coalescing".to_string(),
    };
    drop(client); // completes the rest SHUTDOWN and runs their callbacks
    let received_429 = emu.counts().rate_limited;
    Budget { label, offered, ok_in_window, lost: errors_in_window, api_calls: stats.api_calls, received_429 }
}

/// Official-style: every operation sent at once as its own call; after a 429 the type is dropped
/// (operations discarded) for 60 s.
pub fn official_style(window: Duration) -> Budget {
    let emu = emulator();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let (community, key, url) = (emu.community_id(), emu.api_key(), emu.base_url());
    let b = rt.block_on(async move {
        let http = crate::throughput::plain_reqwest();
        let state = Arc::new(Mutex::new((0u64, 0u64, 0u64, None::<Instant>))); // ok, calls, lost, dropped_until
        let start = Instant::now();
        let end = start + window;
        let every = Duration::from_secs(1) / OPS_PER_SECOND;
        let mut offered = 0u64;
        let mut tasks = Vec::new();
        while Instant::now() < end {
            tokio::time::sleep_until((start + every * offered as u32).into()).await;
            if Instant::now() >= end {
                break;
            }
            let i = offered;
            offered += 1;
            {
                let mut s = state.lock().unwrap();
                if s.3.is_some_and(|t| Instant::now() < t) {
                    s.2 += 1;
                    continue;
                }
                s.1 += 1;
            }
            let body = serde_json::json!({"id": community, "key": key, "type": "SET_API_ID", "data": [element(i)]});
            let (http, state, url) = (http.clone(), state.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let r = http
                    .post(format!("{url}/general/set_api_id"))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                let mut s = state.lock().unwrap();
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) if Instant::now() <= end => s.0 += 1,
                    Ok(429) => {
                        s.2 += 1;
                        s.3 = Some(Instant::now() + Duration::from_secs(60));
                    }
                    _ => s.2 += 1,
                }
            }));
        }
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let s = *state.lock().unwrap();
        Budget {
            label: "official-style: send at once, drop the type 60 s after a 429".into(),
            offered,
            ok_in_window: s.0,
            lost: s.2,
            api_calls: s.1,
            received_429: 0,
        }
    });
    Budget { received_429: emu.counts().rate_limited, ..b }
}
