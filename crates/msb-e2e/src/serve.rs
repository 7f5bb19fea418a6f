//! A running `msb serve` in a test world of its own, and a small client for it.

use crate::Sandbox;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::Duration;

/// `msb serve --listen 127.0.0.1:0` in a fresh world; killed (with the world's VMs) when
/// dropped.
#[derive(Debug)]
pub struct Server {
    /// The world: its home, its rootfs copy (`world.rootfs`).
    pub world: Sandbox,
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bearer token.
    pub token: String,
    /// `http://127.0.0.1:PORT` of the E2B-compatible listener, when started with
    /// `--e2b-listen`.
    pub e2b_url: Option<String>,
}

impl Server {
    /// Starts a server in a fresh world (with a copy of the busybox rootfs).
    pub fn start() -> Server {
        Server::start_in(Sandbox::new(), &[])
    }

    /// Starts a server in `world` with extra `msb serve` arguments.
    pub fn start_in(world: Sandbox, extra: &[&str]) -> Server {
        let mut cmd = world.msb();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(extra);
        Server::start_with(cmd, world)
    }

    /// Runs `cmd` (an `msb serve` command line) as the server of `world`.
    pub fn start_with(mut cmd: std::process::Command, world: Sandbox) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("starting msb serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stdout = std::io::BufReader::new(stdout);
        let url = announced(&mut stdout, "listening on ");
        let e2b_url = cmd
            .get_args()
            .any(|a| a.to_str().is_some_and(|a| a.split('=').next() == Some("--e2b-listen")))
            .then(|| announced(&mut stdout, "e2b listening on "));
        let home = cmd_home(&cmd).unwrap_or_else(|| world.home().to_path_buf());
        let token = std::fs::read_to_string(home.join("server/token")).unwrap_or_default();
        Server {
            world,
            child,
            url,
            token: token.trim().to_string(),
            e2b_url,
        }
    }

    /// A client that sends the token.
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("an HTTP client"),
            url: self.url.clone(),
            token: self.token.clone(),
        }
    }

    /// The server process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL of the next stdout line of `msb serve`, which must start with `prefix`.
fn announced(stdout: &mut impl BufRead, prefix: &str) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("reading msb serve's stdout");
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("msb serve said {line:?}, not {prefix:?}…"))
        .to_string()
}

/// The `MSB_HOME` a command is given.
fn cmd_home(cmd: &std::process::Command) -> Option<std::path::PathBuf> {
    cmd.get_envs()
        .find(|(k, _)| *k == "MSB_HOME")
        .and_then(|(_, v)| v.map(std::path::PathBuf::from))
}

/// An HTTP client of a test server.
#[derive(Debug, Clone)]
pub struct Client {
    /// The underlying client.
    pub http: reqwest::Client,
    /// The server's base URL.
    pub url: String,
    /// Its token.
    pub token: String,
}

impl Client {
    /// A request to `path` (under the server's URL) carrying the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    /// `POST path` with a JSON body; the status and the JSON answer (Null when empty).
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        answer(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    /// `GET path`; the status and the JSON answer.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        answer(self.request(reqwest::Method::GET, path)).await
    }

    /// `DELETE path`; the status and the JSON answer.
    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        answer(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Creates a sandbox named `name` from the world's rootfs copy `rootfs`, with `extra`
    /// JSON fields; asserts 201.
    pub async fn create(&self, name: &str, rootfs: &std::path::Path, extra: serde_json::Value) -> serde_json::Value {
        let mut body = serde_json::json!({"name": name, "rootfs": rootfs});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, created) = self.post("/v1/sandboxes", body).await;
        assert_eq!(status, 201, "creating {name}: {created}");
        created
    }
}

/// Sends `request`; the status and the JSON body (Null when empty or not JSON).
async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.expect("sending a request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("reading an answer");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}
