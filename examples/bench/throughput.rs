//! Throughput and added latency: the library against a plain reqwest client, closed loops of
//! GET_ACCOUNT at a fixed concurrency, against the same emulator, alternating in one run.

use sonoran::{Call, Client, Config, Delivery, RateLimits};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

pub struct Run {
    pub completed: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Per request, submit to result, in µs.
    pub latencies_us: Vec<f64>,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// A plain reqwest client (its own 2-thread tokio runtime, like the library's default), the
/// same body the library sends, the answer read and parsed as JSON.
pub fn reqwest_run(url: &str, community: &str, key: &str, concurrency: usize, total: usize, limit: Duration) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let body = serde_json::to_vec(&serde_json::json!({
        "id": community, "key": key, "type": "GET_ACCOUNT", "data": [{"username": "SonoranBrian"}]
    }))
    .expect("body");
    let body = bytes::Bytes::from(body);
    let endpoint = format!("{url}/general/get_account");
    rt.block_on(async move {
        let client = plain_reqwest();
        let issued = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + limit;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, issued, body, endpoint) = (client.clone(), issued.clone(), body.clone(), endpoint.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut failed = 0usize;
                while issued.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
                    let t0 = Instant::now();
                    let r = client
                        .post(&endpoint)
                        .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
                        .body(body.clone())
                        .send()
                        .await;
                    let ok = match r {
                        Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                            Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).is_ok(),
                            Err(_) => false,
                        },
                        _ => false,
                    };
                    lat.push(t0.elapsed().as_secs_f64() * 1e6);
                    if !ok {
                        failed += 1;
                    }
                }
                (lat, failed)
            }));
        }
        let mut latencies_us = Vec::new();
        let mut failed = 0;
        for t in tasks {
            let (l, f) = t.await.expect("task");
            latencies_us.extend(l);
            failed += f;
        }
        let elapsed = start.elapsed();
        Run { completed: latencies_us.len() - failed, failed, elapsed, latencies_us }
    })
}

struct Loop {
    total: usize,
    deadline: Instant,
    issued: AtomicUsize,
    started: AtomicUsize,
    done: Mutex<(usize, usize, Vec<f64>)>,
    cv: Condvar,
}

fn issue(client: &Client, weak: &Weak<Client>, state: &Arc<Loop>) {
    if state.issued.fetch_add(1, Ordering::Relaxed) >= state.total || Instant::now() >= state.deadline {
        return;
    }
    let t0 = Instant::now();
    let call = Call::get_account(serde_json::json!({"username": "SonoranBrian"})).expect("valid call");
    let (weak2, st) = (weak.clone(), state.clone());
    // As the C ABI does: the result's JSON is rendered where the request completes, and the
    // callback (here on the delivery thread) receives the text and submits the next request.
    let prepare: sonoran::Prepare = Box::new(move |c: sonoran::Completion| {
        let ok = c.is_ok();
        let json = c.to_json();
        drop(c);
        Box::new(move || {
            let us = t0.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(&json);
            if let Some(client) = weak2.upgrade() {
                issue(&client, &weak2, &st);
            }
            let mut d = st.done.lock().unwrap();
            d.0 += 1;
            if !ok {
                d.1 += 1;
            }
            d.2.push(us);
            // Wake the waiting thread only when the loop may be over, not once per request
            // (a wake-up per request costs the measured side a context switch).
            if d.0 >= st.started.load(Ordering::Acquire) {
                st.cv.notify_all();
            }
        })
    });
    match client.submit_prepared(call, prepare) {
        Ok(_) => {
            state.started.fetch_add(1, Ordering::AcqRel);
        }
        Err(e) => eprintln!("bench: refused: {e}"),
    }
}

/// The library: `delivery: "thread"` so each result is handled as soon as it is ready, and the
/// callback submits the next request (a closed loop); pacing lifted (`rate_limits.global: null`);
/// results rendered to JSON as the C ABI renders them (`submit_prepared`).
pub fn library_run(url: &str, community: &str, key: &str, concurrency: usize, total: usize, limit: Duration) -> Run {
    let mut cfg = Config::new(community, key).with_api_url(url);
    cfg.rate_limits = RateLimits::unlimited();
    cfg.delivery = Delivery::Thread;
    cfg.max_pending = concurrency + 16;
    let client = Arc::new(Client::new(cfg).expect("client"));
    let weak = Arc::downgrade(&client);
    let state = Arc::new(Loop {
        total,
        deadline: Instant::now() + limit,
        issued: AtomicUsize::new(0),
        started: AtomicUsize::new(0),
        done: Mutex::new((0, 0, Vec::with_capacity(total))),
        cv: Condvar::new(),
    });
    let start = Instant::now();
    for _ in 0..concurrency {
        issue(&client, &weak, &state);
    }
    let elapsed;
    {
        let mut d = state.done.lock().unwrap();
        // Every submit happens before the completion that triggered it is counted, so done ==
        // started only once nothing is in flight. Bounded by the deadline plus the timeout.
        let hard = Instant::now() + limit + Duration::from_secs(60);
        while d.0 < state.started.load(Ordering::Acquire) && Instant::now() < hard {
            d = state.cv.wait_timeout(d, Duration::from_millis(100)).unwrap().0;
        }
        elapsed = start.elapsed();
    }
    drop(client);
    let d = std::mem::take(&mut *state.done.lock().unwrap());
    Run { completed: d.0 - d.1, failed: d.1, elapsed, latencies_us: d.2 }
}

/// A plain reqwest client, the baseline the library is measured against. reqwest is built
/// without a default TLS provider (the library configures its own), so the bench, a program
/// of its own, installs the process default once.
pub fn plain_reqwest() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}
