//! TLS is real: every test elsewhere talks plain HTTP to the emulator on loopback, so this one
//! stands up a loopback HTTPS server (OpenSSL's `s_server`, from Debian's `openssl` package)
//! with a self-signed certificate and checks that the client's TLS stack (rustls with the
//! aws-lc-rs provider and the compiled-in Mozilla roots) handshakes with it and refuses its
//! certificate, saying so, on both APIs; and that the key is in no text of the failure.

mod common;

use common::*;
use sonoran::{Call, Client, Config, ErrorCode, Kind};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap_or_else(|e| {
        panic!("could not run openssl ({e}): run scripts/install-deps.sh (it installs Debian's openssl package)")
    });
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `openssl s_server` on a free loopback port with a fresh self-signed certificate for
/// `localhost`; returns it once it accepts connections.
fn https_server(dir: &std::path::Path) -> (Server, u16) {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let (key, cert) = (key.to_str().unwrap(), cert.to_str().unwrap());
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
        "-keyout",
        key,
        "-out",
        cert,
    ]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", cert, "-key", key])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let server = Server(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "openssl s_server did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, port)
}

#[test]
fn the_client_speaks_tls_and_refuses_an_untrusted_certificate() {
    let dir = std::env::temp_dir().join(format!("sonoran-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, port) = https_server(&dir);
    let key = "a-key-that-must-not-leak-0123456789";
    for api in APIS {
        let cfg = match api {
            sonoran::ApiVersion::Legacy => Config::new("TESTCOMM", key),
            sonoran::ApiVersion::V2 => Config::v2(key),
        }
        .with_api_url(&format!("https://localhost:{port}"));
        // The failed handshakes are retried (nothing was sent); no pacing between them here.
        let cfg = Config { rate_limits: sonoran::RateLimits::unlimited(), ..cfg };
        let client = Client::new(cfg).expect("an https:// URL on loopback is accepted");
        let call = Call::for_api(api, Kind::GetAccount, serde_json::json!({"username": "SonoranBrian"})).unwrap();
        let r = run_one(&client, call);
        let f = r.outcome.as_ref().expect_err("an untrusted certificate must fail the request");
        assert_eq!(f.code, ErrorCode::Network, "{api:?}: {f:?}");
        let msg = f.message.to_ascii_lowercase();
        assert!(msg.contains("invalid peer certificate"), "{api:?}: names the certificate problem: {}", f.message);
        assert!(!f.message.contains(key), "{api:?}: {}", f.message);
        eprintln!("{api:?}: {}", f.message);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
