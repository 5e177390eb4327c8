//! A hostile (or merely odd) HTTP server for the tests: it answers every request with what the
//! test's function says and records everything it received. Loopback only, on its own thread
//! with its own runtime, stopped when dropped.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// The request target as sent: a path, or a whole URL when sent to a proxy.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What to answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<String>) -> Reply {
        Reply { status, headers: vec![("content-type".into(), content_type.into())], body: body.into() }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

type Answer = dyn Fn(&Received) -> Reply + Send + Sync;

pub struct Server {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(answer: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let answer: Arc<Answer> = Arc::new(answer);
        let rec = received.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = stopped.changed() => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (answer, rec) = (answer.clone(), rec.clone());
                            tokio::spawn(async move {
                                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                                    let (answer, rec) = (answer.clone(), rec.clone());
                                    async move {
                                        let (parts, body) = req.into_parts();
                                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                        let got = Received {
                                            method: parts.method.to_string(),
                                            target: parts.uri.to_string(),
                                            headers: parts
                                                .headers
                                                .iter()
                                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                                                .collect(),
                                            body: String::from_utf8_lossy(&body).into_owned(),
                                        };
                                        let reply = answer(&got);
                                        rec.lock().unwrap().push(got);
                                        let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
                                        *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                                        for (k, v) in reply.headers {
                                            resp.headers_mut().append(
                                                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                                hyper::header::HeaderValue::from_str(&v).unwrap(),
                                            );
                                        }
                                        Ok::<_, std::convert::Infallible>(resp)
                                    }
                                });
                                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                            });
                        }
                    }
                }
            });
        });
        Server { addr, received, stop, thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
