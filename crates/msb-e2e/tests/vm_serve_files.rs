//! `msb serve` with a real VM: guest files streamed both ways in bounded server memory,
//! the `fs` operations, hostile paths, an upload cut off midway, logs, metrics; and named
//! volumes (no VM).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use msb_e2e::serve::{Client, Server};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// One MiB of the test pattern, different for each `i` (xorshift, so not compressible).
fn chunk(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(1 << 20);
    while out.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// `PUT` of `body` to guest `path`; the status and JSON answer.
async fn put(client: &Client, sandbox: &str, path: &str, body: reqwest::Body) -> (u16, Value) {
    let response = client
        .request(Method::PUT, &format!("/v1/sandboxes/{sandbox}/files"))
        .query(&[("path", path)])
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET` of guest file `path`: the status and the bytes.
async fn read(client: &Client, sandbox: &str, path: &str) -> (u16, Vec<u8>) {
    let response = client
        .request(Method::GET, &format!("/v1/sandboxes/{sandbox}/files"))
        .query(&[("path", path)])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

/// `GET path` with `query`: the status and JSON answer.
async fn get(client: &Client, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = client.request(Method::GET, path).query(query).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The error kind of an error answer.
fn kind(answer: &Value) -> &str {
    answer["error"]["kind"].as_str().unwrap_or("")
}

/// The names in guest directory `dir`.
async fn names(client: &Client, dir: &str) -> Vec<String> {
    let (status, entries) = get(client, "/v1/sandboxes/files/fs/list", &[("path", dir)]).await;
    assert_eq!(status, 200, "{entries}");
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `script` in the guest; its stdout.
async fn sh(client: &Client, script: &str) -> String {
    let (status, out) = client.post("/v1/sandboxes/files/exec", json!({"shell": script})).await;
    assert_eq!((status, out["exit_code"].as_i64()), (200, Some(0)), "{script}: {out}");
    out["stdout"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_files_stream_both_ways_and_the_sandbox_reports_logs_and_metrics() {
    if !msb_e2e::vm_available() {
        return;
    }
    let server = Server::start();
    let client = server.client();
    let root = server.world.rootfs.clone();
    let mount = json!([{"Volume": {"name": "shared", "guest": "/shared", "readonly": false}}]);
    client.create("files", &root, json!({"mounts": mount})).await;

    // 64 MiB up and down, streamed: the server's memory stays far below the file's size.
    const MIB: u64 = 64;
    let before = msb_e2e::peak_rss_kib(server.pid()).unwrap();
    let mut expected = Sha256::new();
    for i in 0..MIB {
        expected.update(chunk(i));
    }
    let expected = format!("{:x}", expected.finalize());
    let started = Instant::now();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(0..MIB).map(|i| Ok::<_, std::io::Error>(chunk(i))));
    let (status, entry) = put(&client, "files", "/srv/up/big.bin", body).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(
        (entry["size"].as_u64(), entry["kind"].as_str()),
        (Some(MIB << 20), Some("file")),
        "{entry}"
    );
    assert_eq!(entry["mode_octal"], "0644");
    let uploaded = started.elapsed();
    assert!(sh(&client, "sha256sum /srv/up/big.bin").await.starts_with(&expected));
    let response = client
        .request(Method::GET, "/v1/sandboxes/files/files?path=/srv/up/big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    let (mut got, mut len) = (Sha256::new(), 0u64);
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.unwrap();
        len += piece.len() as u64;
        got.update(&piece);
    }
    assert_eq!((len, format!("{:x}", got.finalize())), (MIB << 20, expected));
    let after = msb_e2e::peak_rss_kib(server.pid()).unwrap();
    eprintln!(
        "64 MiB: up {uploaded:?}, up+check+down {:?}; server peak RSS {before} KiB -> {after} KiB",
        started.elapsed()
    );
    assert!(
        after - before < 200 * 1024,
        "the server's peak RSS grew by {} KiB",
        after - before
    );

    // Directory operations.
    let (status, _) = client
        .post("/v1/sandboxes/files/fs/mkdir", json!({"path": "/srv/d/e"}))
        .await;
    assert_eq!(status, 204);
    let (status, stat) = get(&client, "/v1/sandboxes/files/fs/stat", &[("path", "/srv/d/e")]).await;
    assert_eq!(
        (status, stat["kind"].as_str(), stat["name"].as_str()),
        (200, Some("dir"), Some("e")),
        "{stat}"
    );
    assert!(stat["modified"].as_str().unwrap().ends_with('Z'), "{stat}");
    let (status, entry) = put(&client, "files", "/srv/d/a.txt", "hello\n".into()).await;
    assert_eq!((status, entry["size"].as_u64()), (200, Some(6)), "{entry}");
    assert_eq!(names(&client, "/srv/d").await, ["a.txt", "e"]);
    let moved = json!({"from": "/srv/d/a.txt", "to": "/srv/d/e/b.txt"});
    assert_eq!(client.post("/v1/sandboxes/files/fs/rename", moved).await.0, 204);
    assert_eq!(
        read(&client, "files", "/srv/d/e/b.txt").await,
        (200, b"hello\n".to_vec())
    );
    let (status, err) = get(&client, "/v1/sandboxes/files/fs/stat", &[("path", "/srv/d/a.txt")]).await;
    assert_eq!((status, kind(&err)), (404, "not_found"), "{err}");
    let (status, err) = client
        .post("/v1/sandboxes/files/fs/remove", json!({"path": "/srv/d"}))
        .await;
    assert_eq!((status, kind(&err)), (409, "conflict"), "{err}");
    let (status, _) = client
        .post(
            "/v1/sandboxes/files/fs/remove",
            json!({"path": "/srv/d", "recursive": true}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(names(&client, "/srv").await, ["up"]);

    // Modes, and what cannot be written or read.
    let query = "/v1/sandboxes/files/files?path=/srv/up/secret&mode=0600";
    let response = client.request(Method::PUT, query).body("s").send().await.unwrap();
    let entry: Value = response.json().await.unwrap();
    assert_eq!(entry["mode_octal"], "0600", "{entry}");
    let (status, err) = put(&client, "files", "/srv/up", "x".into()).await;
    assert_eq!((status, kind(&err)), (409, "conflict"), "{err}");
    let (status, _) = read(&client, "files", "/srv/up").await;
    assert_eq!(status, 409);
    let (status, err) = put(&client, "files", "/srv/up/", "x".into()).await;
    assert_eq!((status, kind(&err)), (422, "invalid"), "{err}");
    let response = client
        .request(Method::PUT, "/v1/sandboxes/files/files?path=/srv/x&mode=rwx")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    for (status, body) in [
        read(&client, "files", "/no/such/file").await,
        read(&client, "nosuch", "/etc/passwd").await,
    ] {
        let err: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, kind(&err)), (404, "not_found"), "{err}");
    }

    // Hostile paths: refused with 422 before the guest sees them, and `..` through a link
    // stays inside the guest.
    let hostile = [
        "../../etc/passwd",
        "etc/passwd",
        "/tmp/../../etc/passwd",
        "/srv/..",
        "/a\0b",
        "",
    ];
    let escape = format!("/tmp/msb-escape-{}", std::process::id());
    for path in hostile
        .iter()
        .copied()
        .chain([format!("/../../../../..{escape}").as_str()])
    {
        let (status, body) = read(&client, "files", path).await;
        assert_eq!(status, 422, "GET {path:?}: {}", String::from_utf8_lossy(&body));
        let (status, err) = put(&client, "files", path, "x".into()).await;
        assert_eq!((status, kind(&err)), (422, "invalid"), "PUT {path:?}: {err}");
        for op in ["list", "stat"] {
            let (status, err) = get(&client, &format!("/v1/sandboxes/files/fs/{op}"), &[("path", path)]).await;
            assert_eq!(status, 422, "{op} {path:?}: {err}");
        }
        let (status, err) = client.post("/v1/sandboxes/files/fs/mkdir", json!({"path": path})).await;
        assert_eq!(status, 422, "mkdir {path:?}: {err}");
        let (status, err) = client
            .post(
                "/v1/sandboxes/files/fs/rename",
                json!({"from": "/srv/up/secret", "to": path}),
            )
            .await;
        assert!(err["error"]["message"].as_str().unwrap().contains("'to'"), "{err}");
        assert_eq!(status, 422);
    }
    assert!(!std::path::Path::new(&escape).exists());
    sh(
        &client,
        "echo inside > /srv/marker && ln -s /../../../../srv /srv/up/link",
    )
    .await;
    assert_eq!(
        read(&client, "files", "/srv/up/link/marker").await,
        (200, b"inside\n".to_vec())
    );

    // An upload cut off midway leaves neither a half file nor its hidden temporary, and the
    // file it was replacing is untouched.
    assert_eq!(put(&client, "files", "/srv/cut/f.txt", "old\n".into()).await.0, 200);
    let cut = futures::stream::iter([Ok(chunk(1)), Ok(chunk(2)), Err(std::io::Error::other("cut off"))]);
    let outcome = client
        .request(Method::PUT, "/v1/sandboxes/files/files?path=/srv/cut/f.txt")
        .body(reqwest::Body::wrap_stream(cut))
        .send()
        .await;
    assert!(outcome.map(|r| r.status() != 200).unwrap_or(true));
    let deadline = Instant::now() + Duration::from_secs(20);
    while names(&client, "/srv/cut").await != ["f.txt"] {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            names(&client, "/srv/cut").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(read(&client, "files", "/srv/cut/f.txt").await, (200, b"old\n".to_vec()));

    // Metrics: numbers now, for this sandbox and for all.
    let (status, m) = get(&client, "/v1/sandboxes/files/metrics", &[]).await;
    assert_eq!(status, 200, "{m}");
    assert!(m["memory_limit_bytes"].as_u64().unwrap() > 0, "{m}");
    assert!(
        m["cpu_percent"].is_number() && m["uptime_secs"].is_u64() && m["disk_total_bytes"].is_u64(),
        "{m}"
    );
    let (status, all) = get(&client, "/v1/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(all["files"]["memory_used_bytes"].as_u64().unwrap() > 0, "{all}");
    assert_eq!(get(&client, "/v1/sandboxes/nosuch/metrics", &[]).await.0, 404);

    // The volume it mounts names it as a user, and is not removed from under it.
    let (status, volume) = get(&client, "/v1/volumes/shared", &[]).await;
    assert_eq!((status, volume["users"].clone()), (200, json!(["files"])), "{volume}");
    let (status, err) = client.delete("/v1/volumes/shared").await;
    assert_eq!((status, kind(&err)), (409, "conflict"), "{err}");

    // Logs: the exec log has the exec; a follow ends when the sandbox stops, with what
    // was written until then.
    sh(&client, "echo first-marker").await;
    let (status, text) = logs(&client, &[("source", "exec")]).await;
    assert_eq!(status, 200);
    assert!(text.lines().any(|l| l.contains("first-marker")), "{text}");
    // The guest boots quietly: its console log may be empty, but it is there.
    assert_eq!(logs(&client, &[("source", "console")]).await.0, 200);
    assert_eq!(logs(&client, &[("source", "kernel")]).await.0, 400);
    assert_eq!(logs(&client, &[("source", "exec"), ("boot", "1")]).await.0, 422);
    let follower = client.clone();
    let followed = tokio::spawn(async move { logs(&follower, &[("source", "exec"), ("follow", "true")]).await });
    sh(&client, "echo second-marker").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!followed.is_finished(), "a followed log ended while the sandbox runs");
    let (status, _) = client
        .post("/v1/sandboxes/files/stop", json!({"timeout_secs": 2}))
        .await;
    assert_eq!(status, 200);
    let (status, text) = tokio::time::timeout(Duration::from_secs(30), followed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("second-marker"), "{text}");
    let (status, err) = get(&client, "/v1/sandboxes/files/fs/stat", &[("path", "/")]).await;
    assert_eq!((status, kind(&err)), (409, "conflict"), "{err}");
}

/// `GET …/files/logs` with `query`: the status and the text.
async fn logs(client: &Client, query: &[(&str, &str)]) -> (u16, String) {
    let response = client
        .request(Method::GET, "/v1/sandboxes/files/logs")
        .query(query)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_are_created_listed_and_removed_without_a_vm() {
    let server = Server::start();
    let client = server.client();
    let (status, made) = client
        .post("/v1/volumes", json!({"name": "data", "labels": {"team": "a"}}))
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["labels"]["team"].as_str(), made["quota_bytes"].clone()),
        (Some("a"), Value::Null)
    );
    assert_eq!(made["users"], json!([]));
    std::fs::write(
        std::path::Path::new(made["path"].as_str().unwrap()).join("f"),
        vec![1u8; 64 << 10],
    )
    .unwrap();
    let (status, sized) = client
        .post("/v1/volumes", json!({"name": "sized", "quota_mib": 16}))
        .await;
    assert_eq!(
        (status, sized["quota_bytes"].as_u64()),
        (201, Some(16 << 20)),
        "{sized}"
    );

    let (status, err) = client.post("/v1/volumes", json!({"name": "data"})).await;
    assert_eq!((status, kind(&err)), (409, "conflict"), "{err}");
    for bad in [json!({"name": "../x"}), json!({"name": "tiny", "quota_mib": 1})] {
        let (status, err) = client.post("/v1/volumes", bad.clone()).await;
        assert_eq!((status, kind(&err)), (422, "invalid"), "{bad}: {err}");
    }
    let (status, err) = client.post("/v1/volumes", json!({"name": "v", "size": 1})).await;
    assert_eq!((status, kind(&err)), (400, "bad_request"), "{err}");

    let (status, list) = client.get("/v1/volumes").await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{list}");
    assert!(listed.contains(&"data") && listed.contains(&"sized"), "{list}");
    let (status, one) = client.get("/v1/volumes/data").await;
    assert_eq!(status, 200);
    assert!(one["used_bytes"].as_u64().unwrap() >= 64 << 10, "{one}");

    assert_eq!(client.delete("/v1/volumes/data").await.0, 204);
    assert_eq!(client.delete("/v1/volumes/sized?force=true").await.0, 204);
    let (status, err) = client.get("/v1/volumes/data").await;
    assert_eq!((status, kind(&err)), (404, "not_found"), "{err}");
    assert_eq!(client.delete("/v1/volumes/data").await.0, 404);
    assert_eq!(client.get("/v1/volumes").await.1, json!([]));
}
