//! MCP over streamable HTTP at `/mcp`, without VMs: the token check, the handshake, the
//! tool list, and a tool error carrying the SDK error's kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use microsandbox::Microsandbox;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-token-0123456789";

const TOOLS: [&str; 16] = [
    "sandbox_create",
    "sandbox_exec",
    "sandbox_shell",
    "sandbox_fs_read",
    "sandbox_fs_write",
    "sandbox_fs_list",
    "sandbox_fs_mkdir",
    "sandbox_fs_remove",
    "sandbox_fs_stat",
    "sandbox_stop",
    "sandbox_remove",
    "sandbox_list",
    "sandbox_metrics",
    "volume_create",
    "volume_list",
    "volume_remove",
];

/// The application over an empty home, with [`TOKEN`].
fn app(home: &tempfile::TempDir) -> axum::Router {
    let token = Some(zeroize::Zeroizing::new(TOKEN.to_string()));
    msb_server::app(msb_server::AppState::new(Microsandbox::at(home.path()), token))
}

/// POSTs one JSON-RPC message to `/mcp`; answers the status and the JSON body (if any).
async fn post(app: &axum::Router, token: Option<&str>, message: Value) -> (StatusCode, Value) {
    let mut request = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Body::from(message.to_string())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

#[tokio::test]
async fn without_the_token_mcp_answers_401() {
    let home = tempfile::tempdir().unwrap();
    let app = app(&home);
    let (status, body) = post(&app, None, initialize()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["kind"], "unauthorized");
    let (status, _) = post(&app, Some("wrong"), initialize()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn initialize_and_list_every_tool_with_a_schema() {
    let home = tempfile::tempdir().unwrap();
    let app = app(&home);
    let (status, body) = post(&app, Some(TOKEN), initialize()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "microsandbox");
    assert!(body["result"]["capabilities"]["tools"].is_object(), "{body}");

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let (status, body) = post(&app, Some(TOKEN), list).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tools = body["result"]["tools"].as_array().expect("a tool list");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for name in TOOLS {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(names.len(), TOOLS.len(), "{names:?}");
    for tool in tools {
        assert!(tool["description"].as_str().is_some_and(|d| d.len() > 20), "{tool}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    }
    let exec = tools.iter().find(|t| t["name"] == "sandbox_exec").unwrap();
    let required = exec["inputSchema"]["required"].as_array().unwrap();
    assert!(
        required.contains(&json!("name")) && required.contains(&json!("cmd")),
        "{exec}"
    );
}

#[tokio::test]
async fn a_tool_on_a_missing_sandbox_is_a_tool_error_of_kind_not_found() {
    let home = tempfile::tempdir().unwrap();
    let app = app(&home);
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "sandbox_exec", "arguments": {"name": "no-such-sandbox", "cmd": ["/bin/true"]}}});
    let (status, body) = post(&app, Some(TOKEN), call).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["result"];
    assert_eq!(result["isError"], true, "{body}");
    assert_eq!(result["structuredContent"]["error"]["kind"], "not_found", "{body}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("not_found: ") && text.contains("no-such-sandbox"),
        "{text}"
    );
}

#[tokio::test]
async fn listing_an_empty_home_answers_no_sandboxes_and_no_volumes() {
    let home = tempfile::tempdir().unwrap();
    let app = app(&home);
    for (tool, key) in [("sandbox_list", "sandboxes"), ("volume_list", "volumes")] {
        let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": {"name": tool, "arguments": {}}});
        let (status, body) = post(&app, Some(TOKEN), call).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["result"]["isError"], false, "{body}");
        assert_eq!(body["result"]["structuredContent"][key], json!([]), "{body}");
    }
}

/// Calls `tool` with `arguments` over `/mcp`; answers the result.
async fn call(app: &axum::Router, tool: &str, arguments: Value) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}});
    let (status, body) = post(app, Some(TOKEN), call).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["result"].clone()
}

#[tokio::test]
async fn a_relative_or_traversing_guest_path_is_refused_before_any_sandbox_is_asked() {
    let home = tempfile::tempdir().unwrap();
    let app = app(&home);
    for path in ["etc/passwd", "/tmp/../etc/passwd"] {
        let result = call(
            &app,
            "sandbox_fs_read",
            json!({"name": "no-such-sandbox", "path": path}),
        )
        .await;
        assert_eq!(result["isError"], true, "{result}");
        assert_eq!(result["structuredContent"]["error"]["kind"], "invalid", "{result}");
    }
}

#[tokio::test]
async fn volumes_are_created_listed_and_removed() {
    let home = tempfile::tempdir().unwrap();
    let app = app(&home);
    let made = call(&app, "volume_create", json!({"name": "data", "labels": {"a": "b"}})).await;
    assert_eq!(made["isError"], false, "{made}");
    assert_eq!(made["structuredContent"]["name"], "data", "{made}");
    let again = call(&app, "volume_create", json!({"name": "data"})).await;
    assert_eq!(again["structuredContent"]["error"]["kind"], "conflict", "{again}");
    let listed = call(&app, "volume_list", json!({})).await;
    assert_eq!(
        listed["structuredContent"]["volumes"][0]["labels"]["a"], "b",
        "{listed}"
    );
    let removed = call(&app, "volume_remove", json!({"name": "data"})).await;
    assert_eq!(removed["isError"], false, "{removed}");
    let missing = call(&app, "volume_remove", json!({"name": "data"})).await;
    assert_eq!(missing["structuredContent"]["error"]["kind"], "not_found", "{missing}");
}
