//! MCP (Model Context Protocol) for AI agents: tools to create sandboxes, run commands and
//! move files in them, over stdio (`msb mcp`) or streamable HTTP (`/mcp` on `msb serve`,
//! behind the same token as `/v1`). Each tool calls the SDK through the REST layer's
//! types and helpers; a failure is a tool error carrying the SDK error's kind and message.

mod fs;
mod params;
mod tools;

use crate::error::{ApiError, ApiResult};
use crate::state::Shared;
use axum::Router;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool_handler, ErrorData, ServerHandler, ServiceExt};
use serde::Serialize;
use std::sync::Arc;

/// The most a `sandbox_fs_read` answers (larger files: read parts with `sandbox_exec`).
pub const MAX_READ_BYTES: u64 = 10 << 20;

/// The most of each of stdout and stderr an exec answers (the middle of more is cut).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// What the server tells an agent on `initialize`.
const INSTRUCTIONS: &str = "microsandbox runs code in hardware-isolated microVMs. \
Create a sandbox with sandbox_create (an OCI image such as 'python' or 'alpine'; remember its \
name), run programs with sandbox_exec (argv) or sandbox_shell (a /bin/sh script), and move \
files with the sandbox_fs_* tools (text, or base64 for binary files). Sandboxes keep running \
after this session: sandbox_stop and sandbox_remove them when done (or create them with \
'ephemeral': true to have them removed when they stop). Named volumes (volume_*) keep data \
across sandboxes. A failed call is a tool error whose text starts with its kind: not_found, \
conflict, invalid, forbidden, timeout, no_space, upstream or internal.";

/// The MCP server: the tools over the server's shared state.
#[derive(Debug, Clone)]
pub struct McpServer {
    state: Shared,
    tool_router: ToolRouter<Self>,
}

impl McpServer {
    /// A server over `state`, with every tool.
    pub fn new(state: Shared) -> McpServer {
        McpServer {
            state,
            tool_router: Self::sandbox_tools() + Self::fs_tools(),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("microsandbox", env!("CARGO_PKG_VERSION")).with_title("microsandbox"))
            .with_instructions(INSTRUCTIONS)
    }
}

/// `/mcp`: MCP over streamable HTTP (stateless; JSON answers). The caller applies the token
/// check. With a token, any `Host` is accepted (the token already defeats DNS rebinding);
/// without one (loopback only), only loopback host names are.
pub fn router<S: Clone + Send + Sync + 'static>(state: Shared) -> Router<S> {
    let guarded = state.token.is_some();
    let server = McpServer::new(state);
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(crate::router::JSON_BODY_LIMIT);
    if guarded {
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new().route_service("/mcp", service)
}

/// Serves MCP on stdin and stdout until the client closes them. Nothing else may write to
/// stdout meanwhile.
pub async fn serve_stdio(state: Shared) -> std::io::Result<()> {
    let running = McpServer::new(state)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(format!("starting MCP on stdio: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(format!("serving MCP on stdio: {e}")))?;
    Ok(())
}

/// What a tool answers.
type ToolResult = Result<CallToolResult, ErrorData>;

/// `value` as a tool's answer (structured, and as JSON text), or the failure as a tool error.
fn respond<T: Serialize>(result: ApiResult<T>) -> ToolResult {
    Ok(
        match result.and_then(|v| serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))) {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => tool_error(&e),
        },
    )
}

/// A tool error: text `KIND: MESSAGE`, structured `{"error": {"kind", "message"}}` as the
/// REST API answers.
fn tool_error(e: &ApiError) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!("{}: {}", e.kind, e.message))]);
    result.structured_content = serde_json::to_value(e.body()).ok();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_sdk_kind_in_text_and_structure() {
        let e = ApiError::from(microsandbox::MicrosandboxError::SandboxNotFound("x".into()));
        let result = tool_error(&e);
        assert_eq!(result.is_error, Some(true));
        let text = result.content[0].as_text().map(|t| t.text.clone()).unwrap_or_default();
        assert!(text.starts_with("not_found: "), "{text}");
        let structured = result.structured_content.unwrap_or_default();
        assert_eq!(structured["error"]["kind"], "not_found");
    }
}
