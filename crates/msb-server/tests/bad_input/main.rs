//! Hostile and malformed requests against an in-process server with no VM: every answer is
//! a 4xx in the API's error shape (never a 500, never a crash), slow or oversized clients
//! are cut off, and the token check says nothing about which sandboxes exist.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod connections;
mod e2b;
mod requests;

use microsandbox::Microsandbox;
use msb_server::{AppState, Limits};
use reqwest::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "msbt_test_token";

/// A server on 127.0.0.1:0 over an empty `$MSB_HOME`, whose "supervisor" reports success
/// without booting anything: a create leaves a record (connecting to it then fails), so a
/// sandbox of that name exists without a VM.
struct Server {
    addr: SocketAddr,
    url: String,
    _home: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    async fn start(limits: Limits) -> Server {
        Server::start_app(limits, |msb| {
            msb_server::app(AppState::new(msb, Some(TOKEN.to_string().into())))
        })
        .await
    }

    /// A server of `app` over the fake world.
    async fn start_app(limits: Limits, app: impl FnOnce(Microsandbox) -> axum::Router) -> Server {
        let home = tempfile::tempdir().unwrap();
        let supervisor = home.path().join("fake-supervisor");
        let ready = r#"{"pid":1,"vmm_pid":null,"boot_ms":0,"accel_note":null,"error":null}"#;
        std::fs::write(&supervisor, format!("#!/bin/sh\necho '{ready}'\n")).unwrap();
        std::fs::set_permissions(&supervisor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let msb = Microsandbox::at(home.path()).with_supervisor(supervisor);
        let app = app(msb);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        tokio::spawn(msb_server::serve(
            listener,
            app,
            None,
            limits,
            shutdown,
            Duration::from_secs(1),
        ));
        Server {
            addr,
            url: format!("http://{addr}"),
            _home: home,
            stop: Some(stop),
        }
    }

    /// A server with a 1 s header timeout.
    async fn quick() -> Server {
        Server::start(Limits {
            max_connections: 64,
            header_timeout: Duration::from_secs(1),
        })
        .await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The status and JSON body (Null when not JSON) of `request`.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Asserts `body` is `{"error":{"kind","message"}}` with a message; returns the kind.
fn error_kind(status: u16, body: &Value) -> String {
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{status}: not the error shape: {body}"));
    assert_eq!(
        (body.as_object().unwrap().len(), error.len()),
        (1, 2),
        "{status}: {body}"
    );
    assert!(!error["message"].as_str().expect("a message").is_empty(), "{body}");
    error["kind"].as_str().expect("a kind").to_string()
}

/// Asserts a client error in the error shape.
fn assert_4xx(what: &str, status: u16, body: &Value) {
    assert!((400..500).contains(&status), "{what}: {status} {body}");
    error_kind(status, body);
}

/// Every (method, path) of the OpenAPI document with `{name}` replaced by `name`, and
/// whether the operation takes a JSON body.
fn every_route(name: &str) -> Vec<(Method, String, bool)> {
    let doc = serde_json::to_value(msb_server::openapi()).unwrap();
    let mut routes = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let json_body = op["requestBody"]["content"].get("application/json").is_some();
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            routes.push((method, path.replace("{name}", name), json_body));
        }
    }
    routes
}

/// This process's resident memory, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Writes `request` on a fresh connection and reads until the server closes it (at most
/// `within`); what it answered, or None when it did not close in time.
async fn raw(addr: SocketAddr, request: &[u8], within: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may close while we still write (it refused what it read so far).
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut answer)).await {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}
