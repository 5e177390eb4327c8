//! Freeing a client with requests in flight: every callback exactly once, no thread left.
//! (Its own test binary, so that no other test's client threads are counted.)

mod common;

use common::*;
use serde_json::json;
use sonoran::{Call, Client, Delivery, ErrorCode};

use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn close_with_in_flight(delivery: Delivery) {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let emu = start_with(Faults { latency_ms: 5_000, ..Faults::default() });
    let before = library_threads();
    let mut cfg = config_for(&emu);
    cfg.delivery = delivery;
    let c = Client::new(cfg).unwrap();
    // Threads name themselves as they start: wait (bounded) to see them.
    let seen = std::time::Instant::now();
    while library_threads() <= before && seen.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(library_threads() > before, "the client runs its own threads: {:?}", thread_names());
    let col = Collector::default();
    let ids: Vec<u64> = (0..1000)
        .map(|i| {
            let call = if i % 2 == 0 {
                Call::check_api_id(json!({"apiId": "11000010499F33C"})).unwrap()
            } else {
                Call::get_account(json!({"username": "SonoranBrian"})).unwrap()
            };
            c.submit(call, col.handler()).unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.pending(), 1000);
    drop(c);
    col.assert_each_once(&ids);
    for (completion, _) in col.results.lock().unwrap().iter() {
        assert_eq!(completion.code(), Some(ErrorCode::Shutdown), "{:?}", completion.outcome);
    }
    assert_eq!(library_threads_settled(before), before, "threads left running: {:?}", thread_names());
}

#[test]
fn free_with_1000_in_flight_poll_delivery() {
    close_with_in_flight(Delivery::Poll);
}

#[test]
fn free_with_1000_in_flight_thread_delivery() {
    close_with_in_flight(Delivery::Thread);
}

#[test]
fn close_then_poll_delivers_shutdown_results() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let emu = start_with(Faults { hang_rate: 1.0, ..Faults::default() });
    let before = library_threads();
    let c = client_for(&emu);
    let col = Collector::default();
    let ids: Vec<u64> =
        (0..10).map(|_| c.submit(Call::check_api_id(json!({"apiId": "x"})).unwrap(), col.handler()).unwrap()).collect();
    c.close();
    assert_eq!(library_threads_settled(before), before, "close() joined the runtime");
    assert!(c.submit(Call::check_api_id(json!({"apiId": "x"})).unwrap(), None).is_err(), "closed clients refuse");
    assert_eq!(col.len(), 0, "poll delivery: callbacks wait for poll()");
    assert_eq!(c.poll(0, |_| {}), 10);
    col.assert_each_once(&ids);
    assert_eq!(c.pending(), 0);
}
