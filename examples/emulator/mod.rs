//! Offline emulator of the Sonoran CAD legacy web API, for tests and local development.
//!
//! It answers the seven request types the client covers (SET_API_ID, CHECK_APIID,
//! GET_VERSION, GET_ACCOUNT, SET_ACCOUNT_PERMISSIONS, LINK_CHARACTER, MODIFY_IDENTIFIER) with
//! the documented texts and status codes, checks every request's wire format strictly, and can
//! inject faults (rate limit, 5xx, dropped connections, hung requests, latency).
//!
//! The server runs on its own thread with its own small tokio runtime, so it can be used from
//! synchronous code as well as from async tests that have a runtime of their own. It binds
//! loopback addresses only.
#![allow(dead_code, unused_imports)]

mod faults;
mod fixture;
mod state;
mod v2;
mod wire;

pub use faults::{Faults, RateLimit, RetryAfter};
pub use fixture::{Fixture, FixtureAccount, FixtureIdentifier, DEFAULT_FIXTURE_JSON};
pub use v2::ROUTE_LIMITS;
pub use wire::PERMISSION_NAMES;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use faults::{Decision, FaultEngine};
use state::{Answer, State};
use wire::{ApiType, Route};

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json; charset=utf-8";
/// Answer of any unknown path or non-POST method (HTTP 200: an error the client must detect).
pub const BACKEND_REACHED: &str = "Sonoran CAD: Backend Service Reached";
/// Prefix of the 400 answer to a request with wire-format violations.
pub const MALFORMED_PREFIX: &str = "EMULATOR: MALFORMED REQUEST: ";

/// How the emulator is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// Loopback address to bind; port 0 picks a free port. Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    pub fixture: Fixture,
    pub faults: Faults,
    /// Keep a log of every request (`Emulator::log`). With `false` only the counts are kept.
    pub log: bool,
    /// Refuse envelope keys beyond `id`, `key`, `type` and `data` as malformed. Off by default:
    /// the real API tolerates them (the official JavaScript SDK sends `"product": 0`).
    pub strict_envelope: bool,
    /// v2: enforce the published per-route limits (`ROUTE_LIMITS`), per key, in fixed windows
    /// of `v2_window`. Off by default, so that tests about other things are not paced.
    pub v2_limits: bool,
    pub v2_window: Duration,
    /// v2: answer an unlinked `links/check` with the observed `{"success": false}` body instead
    /// of `{"linked": false, ...}`.
    pub v2_unlinked_success_false: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            fixture: Fixture::default_fixture(),
            faults: Faults::default(),
            log: true,
            strict_envelope: false,
            v2_limits: false,
            v2_window: Duration::from_secs(60),
            v2_unlinked_success_false: false,
        }
    }
}

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by the emulated API (success or API error).
    Answered,
    /// Answered 500/502/503 by fault injection.
    Fault5xx,
    /// Answered 429 by the rate limiter.
    RateLimited,
    /// Never answered (held open until the client gave up or the emulator stopped).
    Hung,
    /// Connection closed without an answer.
    Dropped,
}

/// One request received, as the emulator saw it.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// Arrival order, from 0.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The body's `type` when it has a string one.
    pub request_type: Option<String>,
    /// The parsed body, `Null` if unparseable.
    pub body: Value,
    pub raw_body: String,
    pub content_type: Option<String>,
    /// HTTP status answered; 0 for hung and dropped requests.
    pub status: u16,
    /// Body answered ("" for hung and dropped requests).
    pub response: String,
    pub outcome: Outcome,
    /// Wire-format problems found in the request; empty when it was well-formed.
    pub violations: Vec<String>,
    /// The query string (v2 GET routes), if any.
    pub query: Option<String>,
    /// v2: the route template (`"POST /v2/general/links/check"`); legacy: none.
    pub route: Option<String>,
    /// The `Authorization` header as sent (v2 carries the key in it).
    pub authorization: Option<String>,
}

/// Counters since start (not reset by `clear_log`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub received: u64,
    /// Requests answered, any status (includes 429 and 5xx).
    pub answered: u64,
    /// Answered requests by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    pub hung: u64,
    pub dropped: u64,
    pub rate_limited: u64,
    /// Answered 5xx by fault injection.
    pub faulted: u64,
    /// Requests with at least one wire-format violation.
    pub malformed: u64,
    /// State-changing requests actually applied.
    pub applied: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Most connections open at the same time.
    pub max_open_connections: u64,
}

impl Counts {
    /// Requests answered with `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

struct AtomicCounts {
    received: AtomicU64,
    answered: AtomicU64,
    by_status: [AtomicU64; 600],
    hung: AtomicU64,
    dropped: AtomicU64,
    rate_limited: AtomicU64,
    faulted: AtomicU64,
    malformed: AtomicU64,
    applied: AtomicU64,
    connections: AtomicU64,
    open_connections: AtomicU64,
    max_open_connections: AtomicU64,
}

impl AtomicCounts {
    fn new() -> AtomicCounts {
        AtomicCounts {
            received: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            by_status: std::array::from_fn(|_| AtomicU64::new(0)),
            hung: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open_connections: AtomicU64::new(0),
            max_open_connections: AtomicU64::new(0),
        }
    }

    fn answered(&self, status: u16) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.by_status.get(status as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Counts {
        let by_status = self
            .by_status
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((i as u16, n))
            })
            .collect();
        Counts {
            received: self.received.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
            by_status,
            hung: self.hung.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            faulted: self.faulted.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            applied: self.applied.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            max_open_connections: self.max_open_connections.load(Ordering::Relaxed),
        }
    }
}

/// Everything the connection tasks share. Each lock is held only for synchronous work.
struct Shared {
    community_id: String,
    api_key: String,
    disabled_types: Vec<String>,
    log_enabled: bool,
    strict_envelope: bool,
    v2_limits: bool,
    v2_window: Duration,
    v2_unlinked_success_false: bool,
    v2_windows: Mutex<v2::Windows>,
    seq: AtomicU64,
    counts: AtomicCounts,
    faults: Mutex<FaultEngine>,
    state: Mutex<State>,
    log: Mutex<Vec<LogEntry>>,
    shutdown: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running emulator. Dropping it stops it, like `stop`.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Emulator {
    /// Binds `opts.addr` (loopback only) and starts serving; returns once listening.
    pub fn start(opts: Options) -> std::io::Result<Emulator> {
        if !opts.addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the emulator binds loopback addresses only",
            ));
        }
        let listener = StdListener::bind(opts.addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let f = &opts.fixture;
        let shared = Arc::new(Shared {
            community_id: f.community_id.clone(),
            api_key: f.api_key.clone(),
            disabled_types: f.disabled_types.clone(),
            log_enabled: opts.log,
            strict_envelope: opts.strict_envelope,
            v2_limits: opts.v2_limits,
            v2_window: opts.v2_window,
            v2_unlinked_success_false: opts.v2_unlinked_success_false,
            v2_windows: Mutex::new(v2::Windows::default()),
            seq: AtomicU64::new(0),
            counts: AtomicCounts::new(),
            faults: Mutex::new(FaultEngine::new(opts.faults.clone())),
            state: Mutex::new(State::from_fixture(f)),
            log: Mutex::new(Vec::new()),
            shutdown: rx,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sonoran-emulator")
            .enable_all()
            .build()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new().name("sonoran-emulator".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                serve(listener, sh).await;
            });
            runtime.shutdown_timeout(Duration::from_millis(300));
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("emulator thread exited before listening")),
        }
        Ok(Emulator { addr, shared, shutdown: tx, thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn community_id(&self) -> String {
        self.shared.community_id.clone()
    }

    pub fn api_key(&self) -> String {
        self.shared.api_key.clone()
    }

    /// Replaces the faults for the next request on; reseeds the PRNG and refills the bucket.
    pub fn set_faults(&self, f: Faults) {
        *lock(&self.shared.faults) = FaultEngine::new(f);
    }

    /// Every request received (while the log is enabled), in arrival order.
    pub fn log(&self) -> Vec<LogEntry> {
        let mut v = lock(&self.shared.log).clone();
        v.sort_by_key(|e| e.seq);
        v
    }

    /// Removes and returns the log entries kept so far, in arrival order.
    pub fn take_log(&self) -> Vec<LogEntry> {
        let mut v = std::mem::take(&mut *lock(&self.shared.log));
        v.sort_by_key(|e| e.seq);
        v
    }

    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }

    pub fn counts(&self) -> Counts {
        self.shared.counts.snapshot()
    }

    /// Snapshot: `{"version", "accounts": [account objects + "syncIds"], "identifiers": [..],
    /// "nextIdentifierId"}`.
    pub fn state(&self) -> Value {
        lock(&self.shared.state).snapshot()
    }

    /// The account object (as GET_ACCOUNT answers it, plus `syncIds`) of `username`
    /// (ASCII case-insensitive).
    pub fn account(&self, username: &str) -> Option<Value> {
        let st = lock(&self.shared.state);
        st.by_username(username).map(|i| st.accounts[i].snapshot_json())
    }

    /// Stops accepting, closes every connection (hung ones too) and joins the server thread.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let sh = shared.clone();
                let counts = &shared.counts;
                counts.connections.fetch_add(1, Ordering::Relaxed);
                let open = counts.open_connections.fetch_add(1, Ordering::AcqRel) + 1;
                counts.max_open_connections.fetch_max(open, Ordering::AcqRel);
                conns.spawn(async move {
                    let svc = service_fn({
                        let sh = sh.clone();
                        move |req| handle(sh.clone(), req)
                    });
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    sh.counts.open_connections.fetch_sub(1, Ordering::AcqRel);
                });
                while conns.try_join_next().is_some() {}
            }
        }
    }
    drop(listener);
    conns.abort_all();
    let _ =
        tokio::time::timeout(Duration::from_millis(500), async { while conns.join_next().await.is_some() {} }).await;
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct NoAnswer;

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by the emulator (fault injection)")
    }
}

impl std::error::Error for NoAnswer {}

/// A request after reading: everything the checks, the answer and the log need.
struct Parsed {
    route: Option<Route>,
    ty: Option<ApiType>,
    body: Value,
    utf8: bool,
    violations: Vec<String>,
}

fn parse(method: &hyper::Method, path: &str, content_type: Option<&str>, raw: &[u8], strict: bool) -> Parsed {
    let route = if method == hyper::Method::POST { wire::route(path) } else { None };
    let (body, utf8) = match std::str::from_utf8(raw) {
        Ok(s) => (serde_json::from_str::<Value>(s).unwrap_or(Value::Null), true),
        Err(_) => (Value::Null, false),
    };
    let ty = match route {
        Some(Route::Typed(t)) => Some(t),
        Some(Route::Generic) => body.get("type").and_then(Value::as_str).and_then(ApiType::from_name),
        None => None,
    };
    let violations = if route.is_some() { wire::violations(ty, content_type, utf8, &body, strict) } else { Vec::new() };
    Parsed { route, ty, body, utf8, violations }
}

struct Reply {
    status: u16,
    json: bool,
    body: String,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, json: false, body: body.into() }
    }
}

/// The emulated API's answer to a request that passed fault injection. Returns the reply and
/// whether state changed.
fn answer(sh: &Shared, p: &Parsed) -> (Reply, bool) {
    let Some(route) = p.route else {
        return (Reply::text(200, BACKEND_REACHED), false);
    };
    let Value::Object(env) = &p.body else {
        return (Reply::text(400, "INVALID REQUEST TYPE"), false);
    };
    if env.get("id").and_then(Value::as_str) != Some(sh.community_id.as_str()) {
        return (Reply::text(400, "INVALID COMMUNITY ID"), false);
    }
    if env.get("key").and_then(Value::as_str) != Some(sh.api_key.as_str()) {
        return (Reply::text(400, "INVALID API KEY"), false);
    }
    let body_type = env.get("type").and_then(Value::as_str);
    let ty = match (route, p.ty) {
        (Route::Typed(t), _) if body_type == Some(t.name()) => t,
        (Route::Generic, Some(t)) => t,
        _ => return (Reply::text(400, "INVALID REQUEST TYPE"), false),
    };
    if sh.disabled_types.iter().any(|d| d == ty.name()) {
        let text = if ty == ApiType::SetAccountPermissions {
            "API ENDPOINT IS NOT ENABLED FOR THIS COMMUNITY"
        } else {
            "API IS NOT ENABLED FOR THIS COMMUNITY"
        };
        return (Reply::text(400, text), false);
    }
    if let Some(first) = p.violations.first() {
        return (Reply::text(400, format!("{MALFORMED_PREFIX}{first}")), false);
    }
    let empty = serde_json::Map::new();
    let items: Vec<&serde_json::Map<String, Value>> = match env.get("data").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_object).collect(),
        _ => vec![&empty], // GET_VERSION, GET_SERVERS without data
    };
    let mut answers = Vec::with_capacity(items.len());
    let mut changed = false;
    {
        let mut st = lock(&sh.state);
        for item in &items {
            match st.apply(ty, item) {
                Ok((a, c)) => {
                    changed |= c;
                    answers.push(a);
                }
                // Elements are applied in order; the first failure answers the request and
                // the elements before it stay applied.
                Err((status, text)) => return (Reply::text(status, text), changed),
            }
        }
    }
    (combine(answers), changed)
}

/// Several elements: text answers stay one text (identical ones once, different ones joined
/// by newlines); when any answer is JSON, the answer is a JSON array of all of them.
fn combine(mut answers: Vec<Answer>) -> Reply {
    if answers.len() == 1 {
        return match answers.pop().unwrap() {
            Answer::Text(t) => Reply::text(200, t),
            Answer::Json(v) => Reply { status: 200, json: true, body: v },
        };
    }
    if answers.iter().any(|a| matches!(a, Answer::Json(_))) {
        // Objects are spliced in as serialized, so their field order is kept.
        let mut body = String::from("[");
        for (i, a) in answers.into_iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            match a {
                Answer::Text(t) => body.push_str(&Value::String(t).to_string()),
                Answer::Json(v) => body.push_str(&v),
            }
        }
        body.push(']');
        return Reply { status: 200, json: true, body };
    }
    let mut texts: Vec<String> = Vec::with_capacity(answers.len());
    for a in answers {
        if let Answer::Text(t) = a {
            if !texts.contains(&t) {
                texts.push(t);
            }
        }
    }
    Reply::text(200, texts.join("\n"))
}

fn response(status: u16, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn handle(sh: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, NoAnswer> {
    let (parts, body) = req.into_parts();
    let raw = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err(NoAnswer),
    };
    let path = parts.uri.path();
    if path.starts_with("/v2/") || path.starts_with("/__emulator/") {
        return handle_v2(&sh, &parts, &raw).await;
    }
    let seq = sh.seq.fetch_add(1, Ordering::Relaxed);
    sh.counts.received.fetch_add(1, Ordering::Relaxed);
    let (decision, latency) = {
        let mut f = lock(&sh.faults);
        (f.decide(Instant::now()), f.latency())
    };
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let path = parts.uri.path();

    // Parse and check only when something needs it: an answer from the API, or the log.
    let parsed = (decision == Decision::Pass || sh.log_enabled)
        .then(|| parse(&parts.method, path, content_type, &raw, sh.strict_envelope));
    if parsed.as_ref().is_some_and(|p| !p.violations.is_empty()) {
        sh.counts.malformed.fetch_add(1, Ordering::Relaxed);
    }

    let (outcome, status, ctype, text, retry_after) = match &decision {
        Decision::Pass => {
            let p = parsed.as_ref().expect("parsed when passing");
            let (reply, changed) = answer(&sh, p);
            if changed {
                sh.counts.applied.fetch_add(1, Ordering::Relaxed);
            }
            let ct = if reply.json { JSON } else { TEXT };
            (Outcome::Answered, reply.status, ct, reply.body, None)
        }
        Decision::RateLimited { retry_after } => {
            sh.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"message":"API rate limit exceeded"}"#.to_string();
            (Outcome::RateLimited, 429, JSON, body, retry_after.clone())
        }
        Decision::Error(code) => {
            sh.counts.faulted.fetch_add(1, Ordering::Relaxed);
            (Outcome::Fault5xx, *code, TEXT, "Internal Server Error".to_string(), None)
        }
        Decision::Drop => {
            sh.counts.dropped.fetch_add(1, Ordering::Relaxed);
            (Outcome::Dropped, 0, TEXT, String::new(), None)
        }
        Decision::Hang => {
            sh.counts.hung.fetch_add(1, Ordering::Relaxed);
            (Outcome::Hung, 0, TEXT, String::new(), None)
        }
    };
    if status != 0 {
        sh.counts.answered(status);
    }

    if sh.log_enabled {
        let p = parsed.expect("parsed when logging");
        let entry = LogEntry {
            seq,
            method: parts.method.as_str().to_string(),
            path: path.to_string(),
            request_type: p.body.get("type").and_then(Value::as_str).map(str::to_string),
            body: p.body,
            raw_body: String::from_utf8_lossy(&raw).into_owned(),
            content_type: content_type.map(str::to_string),
            status,
            response: text.clone(),
            outcome,
            violations: p.violations,
            query: parts.uri.query().map(str::to_string),
            route: None,
            authorization: parts
                .headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        };
        lock(&sh.log).push(entry);
    }

    match outcome {
        Outcome::Dropped => return Err(NoAnswer),
        Outcome::Hung => {
            let mut rx = sh.shutdown.clone();
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
            return Err(NoAnswer);
        }
        _ => {}
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut resp = response(status, ctype, text);
    if let Some(ra) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&ra) {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    Ok(resp)
}

/// A fresh trace id (W3C traceparent-like, as the vendor's are).
fn trace_id(seq: u64) -> String {
    let mut r = faults::SplitMix64::new(seq ^ 0x5EED_7ACE);
    format!("00-{:016x}{:016x}-{:016x}-01", r.next_u64(), r.next_u64(), r.next_u64())
}

/// A v2 request: faults, then auth, then the route's own limit, then the route.
async fn handle_v2(
    sh: &Arc<Shared>,
    parts: &hyper::http::request::Parts,
    raw: &[u8],
) -> Result<Response<Full<Bytes>>, NoAnswer> {
    let seq = sh.seq.fetch_add(1, Ordering::Relaxed);
    sh.counts.received.fetch_add(1, Ordering::Relaxed);
    let header = |name: hyper::header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let req = v2::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authorization: header(hyper::header::AUTHORIZATION),
        accept: header(hyper::header::ACCEPT),
        content_type: header(CONTENT_TYPE),
        body: raw,
    };
    let body: Value = if raw.is_empty() { Value::Null } else { serde_json::from_slice(raw).unwrap_or(Value::Null) };
    let violations = v2::violations(&req, &sh.community_id, &body);
    if !violations.is_empty() {
        sh.counts.malformed.fetch_add(1, Ordering::Relaxed);
    }
    let trace = trace_id(seq);
    let found = v2::route(req.method, req.path);
    let (decision, latency) = {
        let mut f = lock(&sh.faults);
        (f.decide(Instant::now()), f.latency())
    };
    let request_id = &trace[3..35];
    let (outcome, reply) = match decision {
        Decision::RateLimited { retry_after } => {
            sh.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            (Outcome::RateLimited, Some(v2::rate_limited(request_id, retry_after)))
        }
        Decision::Error(code) => {
            sh.counts.faulted.fetch_add(1, Ordering::Relaxed);
            (
                Outcome::Fault5xx,
                Some(v2::problem(code, "Internal Server Error", "An unexpected error occurred.", req.path, &trace)),
            )
        }
        Decision::Drop => {
            sh.counts.dropped.fetch_add(1, Ordering::Relaxed);
            (Outcome::Dropped, None)
        }
        Decision::Hang => {
            sh.counts.hung.fetch_add(1, Ordering::Relaxed);
            (Outcome::Hung, None)
        }
        Decision::Pass => {
            let test_route = req.path.starts_with("/__emulator/");
            let key_ok = req.authorization.and_then(|a| a.strip_prefix("Bearer ")) == Some(sh.api_key.as_str());
            let reply = if !test_route && !key_ok {
                let detail = match req.authorization {
                    None => "Missing Authorization header.",
                    Some(a) if !a.starts_with("Bearer ") => "Authorization header must use the Bearer scheme.",
                    Some(_) => "API key is invalid.",
                };
                v2::problem(401, "Unauthorized", detail, req.path, &trace)
            } else if let Some((template, params)) = &found {
                let limited = if sh.v2_limits && !test_route {
                    lock(&sh.v2_windows).take(template, sh.v2_window, Instant::now()).err()
                } else {
                    None
                };
                if let Some(wait) = limited {
                    sh.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
                    v2::rate_limited(request_id, Some(wait.to_string()))
                } else if !raw.is_empty() && !body.is_object() {
                    v2::problem(400, "Bad Request", "The request body is invalid.", req.path, &trace)
                } else {
                    let (reply, changed) = {
                        let mut st = lock(&sh.state);
                        let routed = v2::Routed {
                            template,
                            params,
                            query: req.query,
                            body: &body,
                            trace_id: &trace,
                            path: req.path,
                            unlinked_success_false: sh.v2_unlinked_success_false,
                        };
                        v2::apply(&mut st, &routed)
                    };
                    if changed {
                        sh.counts.applied.fetch_add(1, Ordering::Relaxed);
                    }
                    reply
                }
            } else {
                v2::problem(404, "Not Found", "No such route.", req.path, &trace)
            };
            let outcome = if reply.status == 429 { Outcome::RateLimited } else { Outcome::Answered };
            (outcome, Some(reply))
        }
    };
    let status = reply.as_ref().map_or(0, |r| r.status);
    if status != 0 {
        sh.counts.answered(status);
    }
    if sh.log_enabled {
        let entry = LogEntry {
            seq,
            method: req.method.to_string(),
            path: req.path.to_string(),
            request_type: found.as_ref().map(|(t, _)| t.to_string()),
            body,
            raw_body: String::from_utf8_lossy(raw).into_owned(),
            content_type: req.content_type.map(str::to_string),
            status,
            response: reply.as_ref().map(|r| r.body.clone()).unwrap_or_default(),
            outcome,
            violations,
            query: req.query.map(str::to_string),
            route: found.as_ref().map(|(t, _)| t.to_string()),
            authorization: req.authorization.map(str::to_string),
        };
        lock(&sh.log).push(entry);
    }
    let Some(reply) = reply else {
        if outcome == Outcome::Hung {
            let mut rx = sh.shutdown.clone();
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        }
        return Err(NoAnswer);
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let ct = if reply.problem { "application/problem+json" } else { JSON };
    let mut resp = response(reply.status, ct, reply.body);
    resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&trace) {
        resp.headers_mut().insert("x-trace-id", v);
    }
    if let Some(ra) = reply.retry_after.and_then(|ra| HeaderValue::from_str(&ra).ok()) {
        resp.headers_mut().insert(RETRY_AFTER, ra);
    }
    Ok(resp)
}
