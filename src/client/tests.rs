//! Unit tests of the engine: what no integration test can stage (a panic inside a request's
//! work) and the re-entrancy rule of `poll`.

use super::*;
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "s3cr3t-key-0123456789";

fn handler_into(got: &Arc<Mutex<Vec<Completion>>>) -> Option<Callback> {
    let g = got.clone();
    Some(Callback::Handler(Box::new(move |c: Completion| g.lock().unwrap().push(c))))
}

#[test]
fn a_request_whose_work_panics_completes_internal_exactly_once() {
    let client = Client::new(Config::new("c", KEY)).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let id = client
        .submit_task(Arc::from("PANICS"), handler_into(&got), |_engine| async move {
            if std::hint::black_box(true) {
                panic!("a bug inside a request's work");
            }
            Ok(crate::response::Success::new(200, Value::Null))
        })
        .unwrap();
    assert_eq!(client.pending(), 1);
    let start = std::time::Instant::now();
    while got.lock().unwrap().is_empty() {
        client.poll(0, |_| {});
        assert!(start.elapsed() < Duration::from_secs(10), "the panicked request never completed");
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].code()), (id, Some(ErrorCode::Internal)));
    assert_eq!(client.pending(), 0);
    assert_eq!(client.stats().completed["INTERNAL"], json!(1));
}

#[test]
fn a_poll_inside_a_callback_runs_nothing() {
    let client = Arc::new(Client::new(Config::new("c", KEY)).unwrap());
    let nested = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..3 {
        let (c, n) = (client.clone(), nested.clone());
        let handler: Handler = Box::new(move |_| n.lock().unwrap().push(c.poll(0, |_| {})));
        client
            .submit_task(Arc::from("NOOP"), Some(Callback::Handler(handler)), |_| async {
                Err(Failure::new(0, ErrorCode::Cancelled, "x"))
            })
            .unwrap();
    }
    let start = std::time::Instant::now();
    let mut ran = 0;
    while ran < 3 {
        ran += client.poll(0, |_| {});
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(*nested.lock().unwrap(), vec![0, 0, 0]);
    assert_eq!(client.pending(), 0);
}

#[test]
fn per_client_state_is_one_instance_per_type() {
    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);
    let client = Client::new(Config::new("c", KEY)).unwrap();
    let engine = Engine { inner: client.inner.clone() };
    engine.state::<Counter>().0.fetch_add(1, Ordering::Relaxed);
    assert_eq!(engine.state::<Counter>().0.load(Ordering::Relaxed), 1);
    let other = Client::new(Config::new("c", KEY)).unwrap();
    assert_eq!(Engine { inner: other.inner.clone() }.state::<Counter>().0.load(Ordering::Relaxed), 0);
}
