//! Requests: the token check on every path, malformed and mistyped bodies, odd names.

use super::*;

#[tokio::test]
async fn every_v1_path_is_401_without_the_token_whatever_the_name() {
    let server = Server::quick().await;
    let rootfs = tempfile::tempdir().unwrap();
    let body = json!({"name": "exists", "rootfs": rootfs.path()});
    send(server.request(Method::POST, "/v1/sandboxes").json(&body)).await;
    let (status, _) = send(server.request(Method::GET, "/v1/sandboxes/exists")).await;
    assert_eq!(status, 200, "the fake supervisor leaves a record");
    let (status, body) = send(server.request(Method::GET, "/v1/sandboxes/no-such-sandbox-4f2a")).await;
    assert_eq!((status, error_kind(status, &body).as_str()), (404, "not_found"));
    let mut answers = Vec::new();
    for name in ["exists", "no-such-sandbox-4f2a", "..%2F..%2Fetc"] {
        let mut routes = every_route(name);
        routes.push((Method::GET, "/v1/nothing-here".into(), false));
        routes.push((Method::POST, format!("/v1/sandboxes/{name}/bogus"), false));
        routes.push((Method::POST, "/mcp".into(), true));
        routes.push((Method::GET, format!("/v1/sandboxes/{name}/exec"), false));
        routes.push((Method::PATCH, "/v1/sandboxes".into(), false));
        for (method, path, _) in routes {
            if path == "/health" || path == "/openapi.json" {
                continue;
            }
            let wrong = [None, Some("Bearer wrong".to_string()), Some(format!("Bearer {TOKEN}x"))];
            let more = [
                Some(format!("Basic {TOKEN}")),
                Some(format!("bearer{TOKEN}")),
                Some("Bearer ".into()),
            ];
            for header in wrong.into_iter().chain(more) {
                let mut request = client().request(method.clone(), format!("{}{path}", server.url));
                if let Some(h) = &header {
                    request = request.header("authorization", h);
                }
                let request = request.header("content-type", "application/json").body("{}");
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                assert_eq!(status, 401, "{method} {path} with {header:?}: {text}");
                assert_eq!(
                    error_kind(status, &serde_json::from_str(&text).unwrap()),
                    "unauthorized"
                );
                answers.push(text);
            }
        }
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "different 401 answers: {answers:?}");
}

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_fields_are_refused() {
    let server = Server::quick().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: &[(&str, &str, &str, u16)] = &[
        ("POST", "/v1/sandboxes", r#"{"name":"#, 400),
        ("POST", "/v1/sandboxes", "not json", 400),
        ("POST", "/v1/sandboxes", "[]", 400),
        ("POST", "/v1/sandboxes", &deep, 400),
        ("POST", "/v1/sandboxes", r#"{"name": 5, "rootfs": "/x"}"#, 400),
        ("POST", "/v1/sandboxes", r#"{"cpus": "two", "rootfs": "/x"}"#, 400),
        ("POST", "/v1/sandboxes", r#"{"cpus": -1, "rootfs": "/x"}"#, 400),
        (
            "POST",
            "/v1/sandboxes",
            r#"{"rootfs": "/x", "ports": [{"host": 99999, "guest": 1}]}"#,
            400,
        ),
        (
            "POST",
            "/v1/sandboxes",
            r#"{"rootfs": "/x", "pull_policy": "sometimes"}"#,
            400,
        ),
        ("POST", "/v1/sandboxes", r#"{"rootfs": "/x", "bogus": 1}"#, 400),
        (
            "POST",
            "/v1/sandboxes",
            r#"{"rootfs": "/x", "secrets": [{"env": "A", "value": "v", "hosts": [], "x": 1}]}"#,
            400,
        ),
        ("POST", "/v1/sandboxes", "{}", 422),
        ("POST", "/v1/sandboxes", r#"{"rootfs": "/x", "image": "alpine"}"#, 422),
        ("POST", "/v1/sandboxes", r#"{"name": "../../etc", "rootfs": "/x"}"#, 422),
        ("POST", "/v1/sandboxes/exists/exec", r#"{"cmd": "ls"}"#, 400),
        (
            "POST",
            "/v1/sandboxes/exists/exec",
            r#"{"cmd": ["ls"], "extra": 1}"#,
            400,
        ),
        (
            "POST",
            "/v1/sandboxes/exists/exec/stream",
            r#"{"timeout_secs": "soon"}"#,
            400,
        ),
        ("POST", "/v1/sandboxes/exists/stop", r#"{"timeout_secs": -1}"#, 400),
        ("POST", "/v1/sandboxes/exists/stop", r#"{"grace": 1}"#, 400),
        ("DELETE", "/v1/sandboxes/exists?force=maybe", "", 400),
        ("DELETE", "/v1/sandboxes/exists?colour=red", "", 400),
    ];
    for (method, path, body, expected) in cases {
        let request = server.request(Method::from_bytes(method.as_bytes()).unwrap(), path);
        let request = request
            .header("content-type", "application/json")
            .body(body.to_string());
        let (status, answer) = send(request).await;
        let what = format!("{method} {path} {}", body.chars().take(80).collect::<String>());
        assert_eq!(status, *expected, "{what}: {answer}");
        error_kind(status, &answer);
        if body.contains("bogus") {
            assert!(
                answer.to_string().contains("bogus"),
                "the unknown field is named: {answer}"
            );
        }
    }
    // A method the route does not have.
    let (status, answer) = send(server.request(Method::PATCH, "/v1/sandboxes")).await;
    assert_eq!(
        (status, error_kind(status, &answer).as_str()),
        (405, "method_not_allowed")
    );
    // A body without a JSON content type, and bytes that are not UTF-8.
    let (status, answer) = send(server.request(Method::POST, "/v1/sandboxes").body(r#"{"rootfs":"/x"}"#)).await;
    assert_4xx("no content type", status, &answer);
    let bad_utf8 = server
        .request(Method::POST, "/v1/sandboxes")
        .header("content-type", "application/json");
    let (status, answer) = send(bad_utf8.body(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'])).await;
    assert_4xx("invalid UTF-8", status, &answer);
    // Every operation with a JSON body, including ones added later, refuses garbage.
    for (method, path, json_body) in every_route("exists") {
        if json_body {
            let request = server
                .request(method.clone(), &path)
                .header("content-type", "application/json");
            let (status, answer) = send(request.body("{\"unterminated")).await;
            assert_4xx(&format!("{method} {path}"), status, &answer);
        }
    }
}

#[tokio::test]
async fn odd_and_traversing_sandbox_names_are_client_errors() {
    let server = Server::quick().await;
    let long = "a".repeat(5000);
    let names = [
        "%2E%2E%2F",
        "%2e%2e%2f%2e%2e",
        "..%2F..%2Fetc%2Fpasswd",
        "a%2Fb",
        "%00",
        "x%00y",
        "UPPER",
        "-x",
        "%20",
        "%C3%BCml",
        "a..b",
        ".%2Fx",
        "%25",
        "*",
        long.as_str(),
        "..%5C..%5Cwindows",
    ];
    for name in names {
        for (method, path, _) in every_route(name) {
            if !path.starts_with("/v1/sandboxes/") {
                continue;
            }
            let request = server
                .request(method.clone(), &path)
                .header("content-type", "application/json");
            let (status, answer) = send(request.body(r#"{"cmd":["ls"]}"#)).await;
            assert_4xx(&format!("{method} {}", &path[..path.len().min(120)]), status, &answer);
        }
        let body = json!({"name": name, "rootfs": "/x"});
        let (status, answer) = send(server.request(Method::POST, "/v1/sandboxes").json(&body)).await;
        assert_4xx(&format!("create {name:.80}"), status, &answer);
    }
    // Dot segments, which clients resolve before sending, sent as they are.
    let dots = [
        "/v1/sandboxes/../../etc/passwd",
        "/v1/sandboxes/./x/../y",
        "/v1/sandboxes//exec",
        "/v1/sandboxes/..",
    ];
    for path in dots.into_iter().chain([
        "/v1/sandboxes/%2e%2e",
        "/v1/sandboxes/%2e%2e/exec",
        "/v1/sandboxes/./exec",
    ]) {
        let request =
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n");
        let answer = raw(server.addr, request.as_bytes(), Duration::from_secs(10))
            .await
            .unwrap();
        let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "{path}: {answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        error_kind(status, &serde_json::from_str(body).unwrap_or(Value::Null));
    }
}
