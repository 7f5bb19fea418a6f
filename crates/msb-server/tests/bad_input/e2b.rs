//! The E2B endpoint under hostile input, with no VM: every refusal is in the shape E2B's
//! clients parse (`{code, message}` for the control plane and `/files`, Connect errors for
//! envd), features outside the subset are a 501 naming them, and nothing is a 500.

use super::*;
use msb_server::e2b::E2bState;

const SANDBOX_HEADER: &str = "E2b-Sandbox-Id";

async fn e2b_server() -> Server {
    Server::start_app(Limits::default(), |msb| {
        let state = AppState::new(msb, Some(TOKEN.to_string().into()));
        msb_server::e2b::app(E2bState::new(state, Default::default()))
    })
    .await
}

/// The envd access token of sandbox `id` under the test token.
fn access_token(id: &str) -> String {
    let msb = Microsandbox::at("/nonexistent");
    let state = E2bState::new(AppState::new(msb, Some(TOKEN.to_string().into())), Default::default());
    state.access_token(id).unwrap()
}

impl Server {
    fn control(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, format!("{}{path}", self.url))
            .header("X-API-Key", TOKEN)
    }

    fn envd(&self, path: &str, id: &str) -> reqwest::RequestBuilder {
        client()
            .post(format!("{}{path}", self.url))
            .header(SANDBOX_HEADER, id)
            .header("X-Access-Token", access_token(id))
    }
}

/// Asserts `{code: status, message}` with a message; returns the message.
fn e2b_error(status: u16, body: &Value) -> String {
    assert_eq!(body["code"].as_u64(), Some(u64::from(status)), "{body}");
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: no message: {body}"));
    assert!(!message.is_empty());
    message.to_string()
}

/// The error of a Connect stream's end-of-stream message (the stream must hold only it).
fn stream_error(body: &[u8]) -> Value {
    assert!(body.len() >= 5, "no envelope: {body:?}");
    assert_eq!(body[0] & 0b10, 0b10, "not the end of the stream: {body:?}");
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    assert_eq!(body.len(), 5 + len, "trailing bytes after the end-of-stream message");
    let end: Value = serde_json::from_slice(&body[5..]).unwrap();
    end["error"].clone()
}

fn envelope(flags: u8, message: &[u8]) -> Vec<u8> {
    let mut frame = vec![flags];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend(message);
    frame
}

#[tokio::test]
async fn the_control_plane_wants_the_api_key_on_every_path() {
    let server = e2b_server().await;
    for (method, path) in [
        (Method::POST, "/sandboxes"),
        (Method::GET, "/v2/sandboxes"),
        (Method::GET, "/sandboxes/i123"),
        (Method::DELETE, "/sandboxes/i123"),
        (Method::POST, "/sandboxes/i123/pause"),
        (Method::GET, "/templates"),
        (Method::GET, "/no/such/route"),
    ] {
        for key in [
            None,
            Some("wrong"),
            Some("msbt_test_toke"),
            Some("e2b_test_toke"),
            Some("e2b_"),
        ] {
            let mut request = client().request(method.clone(), format!("{}{path}", server.url));
            if let Some(key) = key {
                request = request.header("X-API-Key", key);
            }
            let (status, body) = send(request).await;
            assert_eq!(status, 401, "{method} {path} with {key:?}: {body}");
            e2b_error(status, &body);
        }
    }
}

#[tokio::test]
async fn the_api_key_is_the_token_in_either_form() {
    let server = e2b_server().await;
    assert_eq!(msb_server::e2b::api_key(TOKEN), "e2b_test_token");
    for key in [TOKEN, "e2b_test_token"] {
        let request = client()
            .get(format!("{}/v2/sandboxes", server.url))
            .header("X-API-Key", key);
        let (status, body) = send(request).await;
        assert_eq!((status, body), (200, json!([])), "{key}");
    }
}

#[tokio::test]
async fn features_outside_the_subset_are_501_naming_them() {
    let server = e2b_server().await;
    // Pausing, resuming and forking an unknown sandbox: it is not found.
    for path in [
        "/sandboxes/i123/pause",
        "/sandboxes/i123/resume",
        "/sandboxes/i123/fork",
    ] {
        let (status, body) = send(server.control(Method::POST, path)).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    for (method, path, feature) in [
        (Method::POST, "/sandboxes/i123/snapshots", "snapshots"),
        (Method::POST, "/v3/templates", "template builds"),
        (Method::GET, "/volumes", "volumes"),
        (Method::GET, "/secrets", "secrets"),
    ] {
        let (status, body) = send(server.control(method.clone(), path)).await;
        assert_eq!(status, 501, "{method} {path}: {body}");
        assert!(e2b_error(status, &body).contains(feature), "{method} {path}: {body}");
    }
    for (field, value, feature) in [
        ("autoPause", json!(true), "autoPause"),
        ("mcp", json!({"github": {}}), "mcp"),
        ("volumeMounts", json!([{"name": "v", "path": "/data"}]), "volumeMounts"),
        ("network", json!({"denyOut": ["0.0.0.0/0"]}), "network"),
    ] {
        let mut create = json!({"templateID": "base"});
        create[field] = value;
        let (status, body) = send(server.control(Method::POST, "/v2/sandboxes").json(&create)).await;
        assert_eq!(status, 501, "{field}: {body}");
        assert!(e2b_error(status, &body).contains(feature), "{field}: {body}");
    }
}

#[tokio::test]
async fn malformed_creates_and_unknown_sandboxes_are_client_errors() {
    let server = e2b_server().await;
    for body in [
        "not json".to_string(),
        json!({}).to_string(),
        json!({"templateID": 7}).to_string(),
        json!({"templateID": "base", "timeout": -1}).to_string(),
        json!({"templateID": "base", "timeout": 86_401}).to_string(),
        json!({"templateID": "base", "envVars": ["A=1"]}).to_string(),
    ] {
        let request = server
            .control(Method::POST, "/sandboxes")
            .header("content-type", "application/json")
            .body(body.clone());
        let (status, answer) = send(request).await;
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
        e2b_error(status, &answer);
    }
    for id in ["i123", "..%2F..%2Fetc", "%00", "a%20b"] {
        for (method, path) in [
            (Method::GET, format!("/sandboxes/{id}")),
            (Method::DELETE, format!("/sandboxes/{id}")),
            (Method::POST, format!("/sandboxes/{id}/connect")),
        ] {
            let (status, body) = send(server.control(method.clone(), &path).json(&json!({"timeout": 10}))).await;
            assert_eq!(status, 404, "{method} {path}: {body}");
            e2b_error(status, &body);
        }
        let request = server.control(Method::POST, &format!("/sandboxes/{id}/timeout"));
        let (status, body) = send(request.json(&json!({"timeout": 10}))).await;
        assert_eq!(status, 404, "timeout of {id}: {body}");
        // Clients leave the timeout out of a connect: still the sandbox's 404.
        for path in [
            format!("/sandboxes/{id}/connect"),
            format!("/v2/sandboxes/{id}/connect"),
        ] {
            let (status, body) = send(server.control(Method::POST, &path).json(&json!({}))).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
    }
    for body in ["not json", "{\"timeout\": \"soon\", \"duration\": \"soon\"}", "[]"] {
        for path in [
            "/sandboxes/i123/timeout",
            "/sandboxes/i123/connect",
            "/sandboxes/i123/refreshes",
        ] {
            let request = server.control(Method::POST, path).body(body);
            let (status, answer) = send(request).await;
            assert_eq!(status, 400, "{path} {body}: {answer}");
            e2b_error(status, &answer);
        }
    }
}

#[tokio::test]
async fn a_sandbox_not_made_through_the_endpoint_is_not_one_of_its_sandboxes() {
    let server = e2b_server().await;
    let rootfs = tempfile::tempdir().unwrap();
    let home = server._home.path();
    let msb = Microsandbox::at(home).with_supervisor(home.join("fake-supervisor"));
    let plain = msb.builder("plain").rootfs(rootfs.path()).create_detached().await;
    assert!(
        msb.get("plain").await.is_ok(),
        "the fake supervisor leaves a record: {plain:?}"
    );
    let (status, body) = send(server.control(Method::GET, "/sandboxes/plain")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = send(server.control(Method::DELETE, "/sandboxes/plain")).await;
    assert_eq!(status, 404, "{body}");
    assert!(msb.get("plain").await.is_ok(), "DELETE left it alone");
    let (_, list) = send(server.control(Method::GET, "/v2/sandboxes")).await;
    assert_eq!(list, json!([]));
    let stat = server
        .envd("/filesystem.Filesystem/Stat", "plain")
        .header("content-type", "application/json")
        .body(r#"{"path": "/etc"}"#);
    let (status, body) = send(stat).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (503, Some("sandbox plain was not found")),
        "{body}"
    );
}

#[tokio::test]
async fn envd_refuses_a_missing_sandbox_header_and_wrong_access_tokens() {
    let server = e2b_server().await;
    let stat = |request: reqwest::RequestBuilder| {
        request
            .header("content-type", "application/json")
            .body(r#"{"path": "/"}"#)
    };
    let url = format!("{}/filesystem.Filesystem/Stat", server.url);
    let (status, body) = send(stat(client().post(&url))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_argument")),
        "{body}"
    );
    for token in [String::new(), "x".into(), access_token("other-sandbox")] {
        let request = client()
            .post(&url)
            .header(SANDBOX_HEADER, "i123")
            .header("X-Access-Token", token);
        let (status, body) = send(stat(request)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthenticated")),
            "{body}"
        );
    }
    let (status, body) = send(stat(server.envd("/filesystem.Filesystem/Stat", "i123"))).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")), "{body}");
    let files = client()
        .get(format!("{}/files?path=/etc/passwd", server.url))
        .header(SANDBOX_HEADER, "i123");
    let (status, body) = send(files).await;
    assert_eq!(status, 401, "{body}");
    e2b_error(status, &body);
    let health = client()
        .get(format!("{}/health", server.url))
        .header(SANDBOX_HEADER, "i123");
    let (status, body) = send(health).await;
    assert_eq!(status, 502, "{body}");
    assert!(e2b_error(status, &body).contains("was not found"), "{body}");
}

#[tokio::test]
async fn malformed_connect_messages_are_invalid_argument_in_either_codec() {
    let server = e2b_server().await;
    let unary = "/filesystem.Filesystem/Stat";
    for (content_type, body) in [
        ("application/json", b"{\"path\": 7}".to_vec()),
        ("application/json", b"{\"path\": \"/\"".to_vec()),
        ("application/proto", vec![0x0a, 0xff, 0xff, 0xff]),
        ("application/proto", vec![0xff]),
        ("text/plain", b"{}".to_vec()),
        ("application/connect+json", b"{}".to_vec()),
    ] {
        let request = server
            .envd(unary, "i123")
            .header("content-type", content_type)
            .body(body.clone());
        let (status, answer) = send(request).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("invalid_argument")),
            "{content_type} {body:?}: {answer}"
        );
    }
    let start = |body: Vec<u8>, content_type: &str| {
        server
            .envd("/process.Process/Start", "i123")
            .header("content-type", content_type)
            .body(body)
    };
    let good = br#"{"process": {"cmd": "/bin/sh", "args": ["-c", "true"]}}"#;
    let mut long = envelope(0, good);
    long.push(b' ');
    for (body, content_type) in [
        (good.to_vec(), "application/connect+json"),
        (envelope(0, good)[..4].to_vec(), "application/connect+json"),
        (long, "application/connect+json"),
        (envelope(1, good), "application/connect+json"),
        (envelope(0, b"{\"process\": 5}"), "application/connect+json"),
        (envelope(0, &[0x0a, 0x05, 0x0a]), "application/connect+proto"),
        (envelope(0, good), "application/json"),
        (
            envelope(0, b"{\"process\": {\"cmd\": \"sh\"}, \"pty\": {}}"),
            "application/connect+json",
        ),
    ] {
        let response = start(body.clone(), content_type).send().await.unwrap();
        assert_eq!(response.status(), 200, "a stream's errors end the stream: {body:?}");
        let error = stream_error(&response.bytes().await.unwrap());
        let code = error["code"].as_str().unwrap();
        assert!(
            ["invalid_argument", "unimplemented"].contains(&code),
            "{body:?}: {error}"
        );
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let huge = vec![b' '; 5 << 20];
    let request = server
        .envd(unary, "i123")
        .header("content-type", "application/json")
        .body(huge);
    assert_eq!(request.send().await.unwrap().status(), 413);
}

#[tokio::test]
async fn pty_watchers_and_streamed_input_are_unimplemented_naming_the_feature() {
    let server = e2b_server().await;
    for (path, feature) in [
        ("/process.Process/Update", "PTY"),
        ("/process.Process/StreamInput", "StreamInput"),
        ("/filesystem.Filesystem/WatchDir", "watchers"),
        ("/filesystem.Filesystem/CreateWatcher", "watchers"),
    ] {
        let request = server
            .envd(path, "i123")
            .header("content-type", "application/json")
            .body("{}");
        let (status, body) = send(request).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (501, Some("unimplemented")),
            "{path}: {body}"
        );
        assert!(body["message"].as_str().unwrap().contains(feature), "{path}: {body}");
    }
}
