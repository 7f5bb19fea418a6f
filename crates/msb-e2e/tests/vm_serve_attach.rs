//! `GET /v1/sandboxes/{name}/attach` of `msb serve`: a WebSocket carries stdin and output
//! both ways (with flow control), JSON controls resize the terminal and signal the process,
//! a bad control is answered and survived, and a client that vanishes gets its process
//! killed.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use futures::{SinkExt, StreamExt};
use msb_e2e::serve::{Client, Server};
use msb_e2e::vm_available;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one step may take (a TCG guest is slow).
const STEP: Duration = Duration::from_secs(60);

/// Opens the attach socket of `name` with `query`.
async fn attach(server: &Server, name: &str, query: &str) -> Ws {
    let url = format!(
        "{}/v1/sandboxes/{name}/attach?{query}",
        server.url.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().unwrap();
    let auth = format!("Bearer {}", server.token).parse().unwrap();
    request.headers_mut().insert("authorization", auth);
    let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("the upgrade");
    assert_eq!(response.status().as_u16(), 101);
    ws
}

/// The next message (within a step).
async fn next(ws: &mut Ws) -> Option<Message> {
    let message = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("a message within a minute");
    message.map(|m| m.expect("a well-formed message"))
}

/// Reads output until it contains `needle`; returns all of it.
async fn read_until(ws: &mut Ws, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match next(ws).await {
            Some(Message::Binary(bytes)) => seen.extend_from_slice(&bytes),
            other => panic!(
                "waiting for {needle:?} after {:?}: {other:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
        if String::from_utf8_lossy(&seen).contains(needle) {
            return String::from_utf8_lossy(&seen).into_owned();
        }
    }
}

/// Reads the rest: the output, then the `exit` notice (returned) and the close.
async fn finish(ws: &mut Ws) -> (Vec<u8>, Value) {
    let mut output = Vec::new();
    loop {
        match next(ws).await {
            Some(Message::Binary(bytes)) => output.extend_from_slice(&bytes),
            Some(Message::Text(text)) => {
                let notice: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(notice["type"], "exit", "{notice}");
                let close = next(ws).await;
                assert!(matches!(close, Some(Message::Close(_)) | None), "{close:?}");
                return (output, notice);
            }
            other => panic!("expected output or exit, got {other:?}"),
        }
    }
}

/// A text message with `value`.
fn control(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

/// The query of a command given as a JSON list, without a terminal.
fn json_cmd(argv: &[&str]) -> String {
    let list = serde_json::to_string(argv).unwrap();
    let encoded: String = list.bytes().map(|b| format!("%{b:02X}")).collect();
    format!("cmd={encoded}&tty=false")
}

/// The resident memory of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The guest's process list.
async fn ps(client: &Client) -> String {
    let (status, out) = client.post("/v1/sandboxes/att/exec", json!({"cmd": ["ps"]})).await;
    assert_eq!(status, 200, "{out}");
    out["stdout"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_carries_stdin_output_and_controls_and_a_vanished_client_kills_its_process() {
    if !vm_available() {
        return;
    }
    let server = Server::start();
    let client = server.client();
    client.create("att", &server.world.rootfs, json!({})).await;

    // cat without a terminal: bytes round trip, a quarter MiB of them written while read.
    let mut ws = attach(&server, "att", "cmd=cat&tty=false").await;
    ws.send(Message::Binary(b"hello\n".to_vec().into())).await.unwrap();
    assert_eq!(read_until(&mut ws, "hello\n").await, "hello\n");
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut tx, mut rx) = ws.split();
    let sent = big.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(10_000) {
            tx.send(Message::Binary(chunk.to_vec().into())).await.unwrap();
        }
        tx.send(control(json!({"type": "close_stdin"}))).await.unwrap();
        tx
    });
    let mut echoed = Vec::new();
    let notice = loop {
        match tokio::time::timeout(STEP, rx.next())
            .await
            .expect("cat's output")
            .unwrap()
            .unwrap()
        {
            Message::Binary(bytes) => echoed.extend_from_slice(&bytes),
            Message::Text(text) => break serde_json::from_str::<Value>(&text).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    assert!(
        echoed == big,
        "cat gave back {} bytes of {}, or other ones",
        echoed.len(),
        big.len()
    );
    assert_eq!(notice, json!({"type": "exit", "exit_code": 0}));
    drop(writer.await.unwrap().reunite(rx));

    // A client that does not read: the output waits in the guest (its credit runs out),
    // not in the server.
    let before = rss_kib(server.pid());
    let mut ws = attach(
        &server,
        "att",
        &json_cmd(&["sh", "-c", "dd if=/dev/zero bs=65536 count=1024 2>/dev/null"]),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = rss_kib(server.pid()).saturating_sub(before);
    let (output, notice) = finish(&mut ws).await;
    assert_eq!((output.len(), &notice["exit_code"]), (64 << 20, &json!(0)));
    assert!(
        grown < 16 * 1024,
        "the server grew by {grown} KiB while its client did not read"
    );

    // Controls that cannot be used are answered, and the session goes on; a signal ends it.
    let mut ws = attach(&server, "att", "cmd=cat&tty=false").await;
    let bad = [
        (Message::Text("{bogus".into()), "bad_request"),
        (control(json!({"type": "explode"})), "bad_request"),
        (control(json!({"type": "signal", "signal": 99})), "invalid"),
        (control(json!({"type": "resize", "rows": 0, "cols": 80})), "invalid"),
    ];
    for (message, kind) in bad {
        ws.send(message).await.unwrap();
        let answer = next(&mut ws).await.unwrap();
        let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
        assert_eq!(
            (answer["type"].as_str(), answer["kind"].as_str()),
            (Some("error"), Some(kind)),
            "{answer}"
        );
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }
    ws.send(Message::Binary(b"still here\n".to_vec().into())).await.unwrap();
    read_until(&mut ws, "still here\n").await;
    ws.send(control(json!({"type": "signal", "signal": 15}))).await.unwrap();
    assert_eq!(finish(&mut ws).await.1["exit_code"], 128 + 15);

    // The sandbox's shell on a terminal of the size asked for, then of the size sent.
    let mut ws = attach(&server, "att", "rows=24&cols=80").await;
    ws.send(Message::Binary(b"stty size\n".to_vec().into())).await.unwrap();
    read_until(&mut ws, "24 80").await;
    ws.send(control(json!({"type": "resize", "rows": 33, "cols": 111})))
        .await
        .unwrap();
    ws.send(Message::Binary(b"stty size; exit 3\n".to_vec().into()))
        .await
        .unwrap();
    let (output, notice) = finish(&mut ws).await;
    assert!(
        String::from_utf8_lossy(&output).contains("33 111"),
        "{}",
        String::from_utf8_lossy(&output)
    );
    assert_eq!(notice["exit_code"], 3);

    // A client that goes away without a word: its process is killed.
    let ws = attach(&server, "att", &json_cmd(&["sleep", "1000"])).await;
    let deadline = Instant::now() + STEP;
    while !ps(&client).await.contains("sleep 1000") {
        assert!(Instant::now() < deadline, "sleep 1000 never showed in ps");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let listed = ps(&client).await;
        if !listed.contains("sleep 1000") {
            break;
        }
        assert!(Instant::now() < deadline, "sleep 1000 outlived its client:\n{listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Errors before the upgrade are ordinary answers.
    let (status, body) = client.get("/v1/sandboxes/att/attach").await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (status, body) = client.delete("/v1/sandboxes/att?force=true").await;
    assert_eq!(status, 204, "{body}");
    server.world.assert_no_vm_left();
}
