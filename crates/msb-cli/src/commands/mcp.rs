//! `msb mcp`: MCP for AI agents on stdin and stdout (the same tools as `/mcp` on
//! `msb serve`). Only MCP messages go to stdout; logs go to stderr.

use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb mcp`.
#[derive(clap::Args, Debug)]
pub struct McpArgs {}

/// Serves MCP on stdio until the client closes stdin.
pub async fn run(_args: McpArgs) -> Result<i32> {
    let msb = Microsandbox::from_env();
    msb.config()?;
    // The client that started this process is the only one on its stdin: no token.
    msb_server::mcp::serve_stdio(msb_server::AppState::new(msb, None)).await?;
    Ok(0)
}
