//! `msb serve` under a burst of concurrent calls: creates (with racing duplicates), execs
//! spread over the sandboxes, lists, then removes racing each other and a re-create. Every
//! answer is a well-formed success or a 4xx in the error shape, never a 5xx; afterwards the
//! list is exactly what should exist and no VM is left.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use futures::future::join_all;
use msb_e2e::serve::{Client, Server};
use msb_e2e::vm_available;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

/// Sandboxes (and VMs) at most at once: each boot takes seconds under emulation.
const SANDBOXES: usize = 4;

/// One answer: what was asked, the status, the body.
type Answer = (String, u16, Value);

/// A call under way.
type Call<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send + 'a>>;

/// Sends `method path` with `body`; never panics on the answer, which is checked later.
async fn call(client: &Client, method: &str, path: &str, body: Option<Value>) -> Answer {
    let mut request = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), path);
    if let Some(body) = &body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let value = match bytes.is_empty() {
        true => Value::Null,
        false => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {path} {status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        }),
    };
    (format!("{method} {path}"), status, value)
}

/// Asserts every answer is a success or a 4xx with the error shape.
fn assert_well_formed(answers: &[Answer]) {
    for (what, status, body) in answers {
        match status {
            200..=299 => assert!(
                *status == 204 || body.is_object() || body.is_array(),
                "{what}: {status} {body}"
            ),
            400..=499 => {
                let error = &body["error"];
                assert!(
                    error["kind"].is_string() && error["message"].is_string(),
                    "{what}: {status} {body}"
                );
            }
            _ => panic!("{what}: {status} {body}"),
        }
    }
}

/// The status of every answer whose request was `what`.
fn statuses(answers: &[Answer], what: &str) -> Vec<u16> {
    answers
        .iter()
        .filter(|(w, _, _)| w == what)
        .map(|(_, s, _)| *s)
        .collect()
}

/// Names and states of `GET /v1/sandboxes`, sorted by name.
async fn listed(client: &Client) -> Vec<(String, String)> {
    let (status, all) = client.get("/v1/sandboxes").await;
    assert_eq!(status, 200, "{all}");
    let mut rows: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().into(), s["state"].as_str().unwrap().into()))
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_calls_leave_a_consistent_state_and_no_vm() {
    if !vm_available() {
        return;
    }
    let server = Server::start();
    let owned = server.client();
    let client = &owned;
    // A rootfs copy per sandbox: a guest writes to the tree it boots.
    let mut roots: Vec<PathBuf> = vec![server.world.rootfs.clone()];
    for i in 1..SANDBOXES {
        let copy = server.world.home().join(format!("rootfs-{i}"));
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&server.world.rootfs)
            .arg(&copy)
            .status();
        assert!(status.unwrap().success(), "copying the rootfs");
        roots.push(copy);
    }
    let names: Vec<String> = (0..SANDBOXES).map(|i| format!("load-{i}")).collect();
    let create = |i: usize| json!({"name": names[i], "rootfs": roots[i], "memory_mib": 256});
    let mut answers: Vec<Answer> = Vec::new();

    // Creates at once, the last name twice: one of that pair wins, the other is a conflict.
    let mut creates: Vec<_> = (0..SANDBOXES)
        .map(|i| call(client, "POST", "/v1/sandboxes", Some(create(i))))
        .collect();
    creates.push(call(client, "POST", "/v1/sandboxes", Some(create(SANDBOXES - 1))));
    let created = join_all(creates).await;
    let mut winners: Vec<&str> = created
        .iter()
        .filter(|a| a.1 == 201)
        .map(|a| a.2["name"].as_str().unwrap())
        .collect();
    winners.sort();
    assert_eq!(winners, names, "{created:?}");
    assert_eq!(created.iter().filter(|a| a.1 == 409).count(), 1, "{created:?}");
    assert!(
        created.iter().filter(|a| a.1 == 201).all(|a| a.2["state"] == "running"),
        "{created:?}"
    );
    answers.extend(created);

    // 80 execs over the sandboxes (plain, with stdin, streamed), lists and gets meanwhile.
    let mut burst = Vec::new();
    for k in 0..80 {
        let name = &names[k % SANDBOXES];
        let (path, body) = match k % 4 {
            0 => (
                format!("/v1/sandboxes/{name}/exec"),
                json!({"cmd": ["cat"], "stdin": format!("in-{k}\n")}),
            ),
            1 => (
                format!("/v1/sandboxes/{name}/exec/stream"),
                json!({"shell": format!("echo out-{k}")}),
            ),
            _ => (
                format!("/v1/sandboxes/{name}/exec"),
                json!({"shell": format!("echo out-{k}; hostname")}),
            ),
        };
        burst.push(Box::pin(async move {
            let (what, status, body) = if path.ends_with("/stream") {
                stream(client, &path, body).await
            } else {
                call(client, "POST", &path, Some(body)).await
            };
            (k, (what, status, body))
        })
            as std::pin::Pin<
                Box<dyn std::future::Future<Output = (usize, Answer)> + Send + '_>,
            >);
    }
    for k in 0..14 {
        let path = match k % 2 {
            0 => "/v1/sandboxes".to_string(),
            _ => format!("/v1/sandboxes/{}", names[k % SANDBOXES]),
        };
        burst.push(Box::pin(
            async move { (usize::MAX, call(client, "GET", &path, None).await) },
        ));
    }
    for (k, answer) in join_all(burst).await {
        if k != usize::MAX {
            let (what, status, body) = &answer;
            assert_eq!(*status, 200, "{what}: {body}");
            let expected = match k % 4 {
                0 => format!("in-{k}\n"),
                _ => format!("out-{k}\n"),
            };
            let stdout = body["stdout"].as_str().unwrap_or_default();
            assert!(stdout.starts_with(&expected), "{what} #{k}: {body}");
            if k % 4 > 1 {
                assert_eq!(stdout, format!("{expected}{}\n", names[k % SANDBOXES]), "{what} #{k}");
            }
        } else if answer.0 == "GET /v1/sandboxes" {
            let states: Vec<&str> = answer
                .2
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["state"].as_str().unwrap())
                .collect();
            assert_eq!(states, ["running"; SANDBOXES], "{answer:?}");
        }
        answers.push(answer);
    }

    // Removes at once, two of them twice, and a re-create of the first name racing its
    // removal (it may come before the removal, a conflict, or after it, a new sandbox).
    let remove = |i: usize| -> Call<'_> {
        let path = format!("/v1/sandboxes/{}?force=true", names[i]);
        Box::pin(async move { call(client, "DELETE", &path, None).await })
    };
    let mut ends: Vec<Call<'_>> = (0..SANDBOXES).map(remove).collect();
    ends.push(remove(1));
    ends.push(remove(2));
    ends.push(Box::pin(call(client, "POST", "/v1/sandboxes", Some(create(0)))));
    ends.push(Box::pin(call(client, "GET", "/v1/sandboxes", None)));
    let ended = join_all(ends).await;
    for name in &names {
        let what = format!("DELETE /v1/sandboxes/{name}?force=true");
        let got = statuses(&ended, &what);
        assert!(got.contains(&204), "{what}: {ended:?}");
        assert!(got.iter().all(|s| [204, 404, 409].contains(s)), "{what}: {ended:?}");
    }
    let recreated = ended.iter().find(|a| a.0 == "POST /v1/sandboxes").unwrap();
    assert!([201, 409].contains(&recreated.1), "{recreated:?}");
    answers.extend(ended.iter().cloned());
    let remaining = listed(client).await;
    let expected: Vec<(String, String)> = match recreated.1 {
        201 => vec![(names[0].clone(), "running".into())],
        _ => vec![],
    };
    assert_eq!(remaining, expected, "{recreated:?}");
    if recreated.1 == 201 {
        let last = call(
            client,
            "DELETE",
            &format!("/v1/sandboxes/{}?force=true", names[0]),
            None,
        )
        .await;
        assert_eq!(last.1, 204, "{last:?}");
        answers.push(last);
    }
    assert_eq!(listed(client).await, vec![]);
    assert_well_formed(&answers);
    assert!(answers.len() >= 100, "{} calls", answers.len());
    server.world.assert_no_vm_left();
}

/// `POST path` on the streaming exec: its NDJSON events folded into an exec's answer
/// (`stdout`), or the error answer.
async fn stream(client: &Client, path: &str, body: Value) -> Answer {
    let what = format!("POST {path}");
    let response = client
        .request(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    if status != 200 {
        return (what, status, serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    let mut stdout = String::new();
    let mut exit = Value::Null;
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
        match event["type"].as_str() {
            Some("stdout") => stdout.push_str(event["data"].as_str().unwrap()),
            Some("exit") => exit = event,
            Some("started") | Some("stderr") => {}
            _ => panic!("{what}: {event}"),
        }
    }
    assert_eq!(exit["exit_code"], 0, "{what}: {text}");
    (what, status, json!({"stdout": stdout}))
}
