//! Environment proxies are ignored: with `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` (both
//! cases) pointing at a loopback server that records what reaches it, requests still go
//! straight to the configured API and the "proxy" sees nothing, so the key in the body never
//! travels to it. A test binary of its own: the variables are process-wide.

mod common;

use common::hostile::{Reply, Server};
use common::*;
use serde_json::json;
use sonoran::Call;
use std::time::Duration;

#[test]
fn environment_proxies_are_ignored() {
    let proxy = Server::start(|_| Reply::text(200, "SonoranBrian"));
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        std::env::set_var(var, proxy.url());
    }
    for var in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(var);
    }
    let emu = start();
    let c = client_for(&emu);
    let col = Collector::default();
    let id = c.submit(Call::check_api_id(json!({"apiId": "11000010499F33C"})).unwrap(), col.handler()).unwrap();
    poll_until(&c, &col, 1, Duration::from_secs(30));
    assert!(col.get(id).is_ok());
    assert_eq!(emu.log().len(), 1, "the request reached the API directly");
    assert!(proxy.received().is_empty(), "the environment's proxy received {:?}", proxy.received());
}
