//! `msb serve`'s images against the local fixture registry (`cargo xtask registry`): pull
//! with streamed progress (NDJSON and SSE), list, inspect, remove. No VM is booted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_e2e::serve::{Client, Server};
use serde_json::{json, Value};

/// The NDJSON events of a pull of `reference`, every line parsed.
async fn pull(client: &Client, reference: &str) -> Vec<Value> {
    let response = client
        .request(reqwest::Method::POST, "/v1/images/pull")
        .json(&json!({"reference": reference}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// The error kind of an error answer.
fn kind(answer: &Value) -> &str {
    answer["error"]["kind"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_pulled_with_progress_listed_inspected_and_removed() {
    let Some(addr) = msb_e2e::registry() else { return };
    let server = Server::start();
    let client = server.client();
    let image = format!("{addr}/msb-test/python");

    let events = pull(&client, &image).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"resolving"), "{types:?}");
    assert!(
        types.contains(&"resolved") && types.contains(&"layer_done"),
        "{types:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["type"], "done", "{last}");
    assert_eq!(last["image"]["reference"], format!("{image}:latest"));
    assert_eq!(last["image"]["layers"].as_array().unwrap().len(), 3, "{last}");
    for progress in events.iter().filter(|e| e["type"] == "layer_progress") {
        assert!(
            progress["received"].as_u64().unwrap() <= progress["size"].as_u64().unwrap(),
            "{progress}"
        );
    }

    // Pulled again, as Server-Sent Events: every layer is already stored.
    let sse = client
        .request(reqwest::Method::POST, "/v1/images/pull")
        .header("accept", "text/event-stream")
        .json(&json!({"reference": image}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sse.contains("event: layer_done\ndata: {"), "{sse}");
    assert!(sse.contains("\"cached\":true"), "{sse}");
    assert!(sse.contains("event: done\n"), "{sse}");

    let (status, list) = client.get("/v1/images").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["reference"], format!("{image}:latest"));
    assert!(
        list[0]["size_bytes"].as_u64().unwrap() > 0 && list[0]["layers"] == 3,
        "{list}"
    );
    let inspect = |reference: String| {
        let client = client.clone();
        async move {
            let response = client
                .request(reqwest::Method::GET, "/v1/images/inspect")
                .query(&[("reference", reference)])
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, detail) = inspect(image.clone()).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["config"]["working_dir"], "/app");
    assert_eq!(detail["config"]["cmd"][0], "python3");
    assert!(detail["platform"].as_str().unwrap().starts_with("linux/"), "{detail}");
    let (status, err) = inspect(format!("{addr}/msb-test/absent")).await;
    assert_eq!((status, kind(&err)), (404, "not_found"), "{err}");
    let (status, err) = inspect("Not A Reference!".into()).await;
    assert_eq!((status, kind(&err)), (422, "invalid"), "{err}");

    // Failures: a bad reference is refused at once; a missing image ends its stream with
    // an error event.
    let (status, err) = client
        .post("/v1/images/pull", json!({"reference": "Not A Reference!"}))
        .await;
    assert_eq!((status, kind(&err)), (422, "invalid"), "{err}");
    let (status, err) = client
        .post("/v1/images/pull", json!({"reference": image, "tag": "x"}))
        .await;
    assert_eq!((status, kind(&err)), (400, "bad_request"), "{err}");
    let events = pull(&client, &format!("{addr}/msb-test/absent")).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{events:?}");
    assert!(
        ["not_found", "upstream"].contains(&last["kind"].as_str().unwrap()),
        "{last}"
    );

    let (status, removed) = client.delete(&format!("/v1/images?reference={image}")).await;
    assert_eq!(status, 200, "{removed}");
    assert!(removed["layers_deleted"].as_u64().unwrap() >= 3, "{removed}");
    let (status, err) = client.delete(&format!("/v1/images?reference={image}&force=true")).await;
    assert_eq!((status, kind(&err)), (404, "not_found"), "{err}");
    assert_eq!(client.get("/v1/images").await.1, json!([]));
}
