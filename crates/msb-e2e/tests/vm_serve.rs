//! `msb serve` with real VMs: the sandbox lifecycle and exec over HTTP, errors by kind,
//! streaming as NDJSON and SSE, and a client that goes away getting its process killed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use msb_e2e::serve::{Client, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The `ps` lines of `name` that mention `needle`.
async fn processes(client: &Client, name: &str, needle: &str) -> Vec<String> {
    let (status, out) = client
        .post(&format!("/v1/sandboxes/{name}/exec"), json!({"cmd": ["ps"]}))
        .await;
    assert_eq!(status, 200, "{out}");
    let text = out["stdout"].as_str().unwrap_or_default().to_string();
    text.lines().filter(|l| l.contains(needle)).map(String::from).collect()
}

/// Waits (at most 20 s) until no process of `name` mentions `needle`.
async fn wait_gone(client: &Client, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes(client, name, needle).await;
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still running: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The NDJSON events of a streamed exec, read to the end.
async fn stream_events(client: &Client, name: &str, body: Value) -> Vec<Value> {
    let response = client
        .request(reqwest::Method::POST, &format!("/v1/sandboxes/{name}/exec/stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_live_and_run_commands_through_the_api() {
    if !msb_e2e::vm_available() {
        return;
    }
    let server = Server::start();
    let client = server.client();
    let root = server.world.rootfs.clone();

    // Nothing is said without the token, not even whether a sandbox exists.
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .get(format!("{}/v1/sandboxes/nope", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let created = client
        .create(
            "api",
            &root,
            json!({"env": {"GREETING": "hello"}, "labels": {"team": "a"}}),
        )
        .await;
    assert_eq!(created["state"], "running");
    assert_eq!(created["labels"]["team"], "a");

    // Errors by kind.
    let (status, err) = client.get("/v1/sandboxes/missing").await;
    assert_eq!((status, err["error"]["kind"].as_str()), (404, Some("not_found")));
    let (status, err) = client
        .post("/v1/sandboxes", json!({"name": "api", "rootfs": root}))
        .await;
    assert_eq!(
        (status, err["error"]["kind"].as_str()),
        (409, Some("conflict")),
        "{err}"
    );
    let (status, err) = client
        .post("/v1/sandboxes", json!({"name": "bad", "rootfs": root, "cpus": 0}))
        .await;
    assert_eq!((status, err["error"]["kind"].as_str()), (422, Some("invalid")), "{err}");
    let (status, err) = client
        .post("/v1/sandboxes", json!({"name": "bad", "rootfs": root, "colour": "red"}))
        .await;
    assert_eq!(
        (status, err["error"]["kind"].as_str()),
        (400, Some("bad_request")),
        "{err}"
    );

    // Exec: output, status, the sandbox's env, stdin, per-exec settings.
    let (status, out) = client
        .post(
            "/v1/sandboxes/api/exec",
            json!({"shell": "echo $GREETING $X; cat; exit 7", "env": {"X": "x"}, "stdin": "in\n"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["stdout"].as_str(), out["exit_code"].as_i64()),
        (Some("hello x\nin\n"), Some(7))
    );
    let (_, out) = client
        .post("/v1/sandboxes/api/exec", json!({"cmd": ["/no/such"]}))
        .await;
    assert_eq!(out["exit_code"], 127);
    assert!(out["spawn_error"].as_str().is_some(), "{out}");
    let (status, err) = client
        .post(
            "/v1/sandboxes/api/exec",
            json!({"cmd": ["sleep", "30"], "timeout_secs": 1}),
        )
        .await;
    assert_eq!((status, err["error"]["kind"].as_str()), (504, Some("timeout")), "{err}");

    // Streaming: events in order, a character split by the guest kept whole.
    let events = stream_events(
        &client,
        "api",
        json!({"shell": "printf 'a\\342'; sleep 0.2; printf '\\230\\203b'; echo err >&2; exit 3"}),
    )
    .await;
    assert_eq!(events.first().unwrap()["type"], "started");
    let stdout: String = events
        .iter()
        .filter(|e| e["type"] == "stdout")
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(stdout, "a☃b");
    assert!(events.iter().any(|e| e["type"] == "stderr" && e["data"] == "err\n"));
    assert_eq!(
        events.last().unwrap(),
        &json!({"type": "exit", "exit_code": 3, "success": false, "spawn_error": null})
    );

    // Server-Sent Events for a client that asks for them.
    let sse = client
        .request(reqwest::Method::POST, "/v1/sandboxes/api/exec/stream")
        .header("accept", "text/event-stream")
        .json(&json!({"cmd": ["echo", "sse"]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sse.contains("event: stdout\ndata: {\"type\":\"stdout\",\"data\":\"sse\\n\"}"),
        "{sse}"
    );
    assert!(sse.contains("event: exit"), "{sse}");

    // A client that goes away gets its process killed: streamed, and request/response.
    let response = client
        .request(reqwest::Method::POST, "/v1/sandboxes/api/exec/stream")
        .json(&json!({"shell": "echo ready; exec sleep 3131"}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("ready") {
        seen.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
    }
    assert_eq!(processes(&client, "api", "sleep 3131").await.len(), 1);
    drop(body);
    wait_gone(&client, "api", "sleep 3131").await;
    let pending = client
        .request(reqwest::Method::POST, "/v1/sandboxes/api/exec")
        .json(&json!({"cmd": ["sleep", "3132"]}))
        .send();
    assert!(tokio::time::timeout(Duration::from_secs(3), pending).await.is_err());
    wait_gone(&client, "api", "sleep 3132").await;

    // A download the client abandons ends in the guest too: the agent (PID 1) closes the
    // file instead of waiting forever for the client to read on.
    let agent_fds = || async {
        let (_, out) = client
            .post("/v1/sandboxes/api/exec", json!({"shell": "ls /proc/1/fd | wc -l"}))
            .await;
        out["stdout"].as_str().unwrap().trim().parse::<u32>().unwrap()
    };
    let (_, made) = client
        .post(
            "/v1/sandboxes/api/exec",
            json!({"shell": "dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null"}),
        )
        .await;
    assert_eq!(made["exit_code"], 0, "{made}");
    let before = agent_fds().await;
    let download = client
        .request(reqwest::Method::GET, "/v1/sandboxes/api/files?path=/big")
        .send()
        .await
        .unwrap();
    let mut body = download.bytes_stream();
    body.next().await.unwrap().unwrap();
    assert!(agent_fds().await > before, "the agent holds the file while it is read");
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent_fds().await > before {
        assert!(Instant::now() < deadline, "the abandoned read still holds the file");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Stop, start, kill, remove.
    let (status, stopped) = client.post("/v1/sandboxes/api/stop", json!({"timeout_secs": 2})).await;
    assert_eq!((status, stopped["state"].as_str()), (200, Some("stopped")), "{stopped}");
    let (status, err) = client.post("/v1/sandboxes/api/exec", json!({"cmd": ["true"]})).await;
    assert_eq!(
        (status, err["error"]["kind"].as_str()),
        (409, Some("conflict")),
        "{err}"
    );
    let (status, started) = client.post("/v1/sandboxes/api/start", json!({})).await;
    assert_eq!((status, started["state"].as_str()), (200, Some("running")), "{started}");
    let (_, out) = client
        .post("/v1/sandboxes/api/exec", json!({"cmd": ["echo", "again"]}))
        .await;
    assert_eq!(out["stdout"], "again\n");
    let (status, err) = client.delete("/v1/sandboxes/api").await;
    assert_eq!(
        (status, err["error"]["kind"].as_str()),
        (409, Some("conflict")),
        "{err}"
    );
    let (status, killed) = client.post("/v1/sandboxes/api/kill", json!({})).await;
    assert_eq!(status, 200, "{killed}");
    let (status, _) = client.delete("/v1/sandboxes/api?force=true").await;
    assert_eq!(status, 204);

    // An ephemeral sandbox is gone once stopped.
    client.create("brief", &root, json!({"ephemeral": true})).await;
    let (status, stopped) = client.post("/v1/sandboxes/brief/stop", json!({})).await;
    assert_eq!((status, stopped["state"].as_str()), (200, Some("removed")), "{stopped}");
    // Removing a running one (killed first; its supervisor removes it as it stops) is done,
    // not "not found".
    client.create("brisk", &root, json!({"ephemeral": true})).await;
    let (status, body) = client.delete("/v1/sandboxes/brisk?force=true").await;
    assert_eq!(status, 204, "{body}");

    let (_, all) = client.get("/v1/sandboxes").await;
    assert_eq!(all, json!([]));
    server.world.assert_no_vm_left();
}
