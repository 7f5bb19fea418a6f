//! The file tools: read, write, list, mkdir, remove, stat, on a running sandbox's guest
//! filesystem (as root). Content is text, or base64 for binary files; reads stop at
//! [`MAX_READ_BYTES`].

use super::params::{Encoding, PathArgs, ReadArgs, RemoveFileArgs, WriteArgs};
use super::{respond, McpServer, ToolResult, MAX_READ_BYTES};
use crate::api::fs::{guest_path, FsEntryView};
use crate::error::{ApiError, ApiResult};
use base64::Engine;
use microsandbox::{FsKind, MicrosandboxError, MicrosandboxResult, Sandbox};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{tool, tool_router};
use serde_json::json;

#[tool_router(router = fs_tools, vis = "pub(super)")]
impl McpServer {
    /// Reads a guest file.
    #[tool(
        description = "Read a file of a running sandbox. Returns its content as text (the \
        default encoding 'text' fails with kind invalid on a file that is not UTF-8: read it \
        again with encoding 'base64'). Files over 10 MiB are refused (kind invalid): read parts \
        with sandbox_exec (head, tail, dd).",
        annotations(title = "Read file", read_only_hint = true)
    )]
    async fn sandbox_fs_read(&self, Parameters(args): Parameters<ReadArgs>) -> ToolResult {
        let read = match guest_path("path", &args.path) {
            Ok(path) => {
                let bytes = self
                    .state
                    .with_sandbox(&args.name, |sb| async move { read_capped(&sb, path).await })
                    .await;
                bytes.and_then(|bytes| encode(path, bytes, args.encoding))
            }
            Err(e) => Err(e),
        };
        Ok(match read {
            Ok(content) => CallToolResult::success(vec![ContentBlock::text(content)]),
            Err(e) => super::tool_error(&e),
        })
    }

    /// Writes a guest file.
    #[tool(
        description = "Create or replace a file of a running sandbox (missing parent \
        directories are made). 'content' is text, or base64 of the bytes with encoding \
        'base64'. Returns the path and the number of bytes written.",
        annotations(title = "Write file", destructive_hint = true, idempotent_hint = true)
    )]
    async fn sandbox_fs_write(&self, Parameters(args): Parameters<WriteArgs>) -> ToolResult {
        respond(self.write(args).await)
    }

    /// Lists a guest directory.
    #[tool(
        description = "List a directory of a running sandbox: each entry's name, kind (file, \
        dir, symlink, other), size in bytes, mode (and mode_octal), uid, gid and modification \
        time (modified, RFC 3339), sorted by name.",
        annotations(title = "List directory", read_only_hint = true)
    )]
    async fn sandbox_fs_list(&self, Parameters(args): Parameters<PathArgs>) -> ToolResult {
        respond(self.list_dir(&args.name, &args.path).await)
    }

    /// Makes a guest directory.
    #[tool(
        description = "Create a directory of a running sandbox, with its missing parents \
        (mkdir -p); an existing directory is not an error.",
        annotations(title = "Make directory", destructive_hint = false, idempotent_hint = true)
    )]
    async fn sandbox_fs_mkdir(&self, Parameters(args): Parameters<PathArgs>) -> ToolResult {
        respond(self.mkdir(&args.name, &args.path).await)
    }

    /// Removes a guest file or tree.
    #[tool(
        description = "Remove a file, symlink or (with recursive: true) a directory and \
        everything below it, in a running sandbox.",
        annotations(title = "Remove file", destructive_hint = true)
    )]
    async fn sandbox_fs_remove(&self, Parameters(args): Parameters<RemoveFileArgs>) -> ToolResult {
        respond(self.remove_path(args).await)
    }

    /// Describes a guest path.
    #[tool(
        description = "Describe one path of a running sandbox (a symlink itself, not its \
        target): kind (file, dir, symlink, other), size, mode, mode_octal, uid, gid, modified \
        (RFC 3339), nlink. A missing path is a tool error of kind not_found.",
        annotations(title = "Stat path", read_only_hint = true)
    )]
    async fn sandbox_fs_stat(&self, Parameters(args): Parameters<PathArgs>) -> ToolResult {
        respond(self.stat(&args.name, &args.path).await)
    }
}

impl McpServer {
    async fn write(&self, args: WriteArgs) -> ApiResult<serde_json::Value> {
        let data = match args.encoding {
            Encoding::Text => args.content.into_bytes(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(args.content.trim())
                .map_err(|e| ApiError::invalid(format!("'content' is not base64: {e}")))?,
        };
        let mode = args.mode.as_deref().map(parse_mode).transpose()?;
        let (path, bytes) = (guest_path("path", &args.path)?, data.as_slice());
        self.state
            .with_sandbox(&args.name, |sb| async move {
                let mut sink = sb.fs().write_stream(path, mode).await?;
                sink.write(bytes).await?;
                sink.close().await
            })
            .await?;
        Ok(json!({ "path": path, "bytes_written": bytes.len() }))
    }

    async fn list_dir(&self, name: &str, path: &str) -> ApiResult<serde_json::Value> {
        let path = guest_path("path", path)?;
        let entries = self
            .state
            .with_sandbox(name, |sb| async move { sb.fs().list(path).await })
            .await?;
        let entries: Vec<FsEntryView> = entries.into_iter().map(FsEntryView::from).collect();
        Ok(json!({ "path": path, "entries": entries }))
    }

    async fn stat(&self, name: &str, path: &str) -> ApiResult<FsEntryView> {
        let path = guest_path("path", path)?;
        let entry = self
            .state
            .with_sandbox(name, |sb| async move { sb.fs().stat(path).await })
            .await?;
        Ok(entry.into())
    }

    async fn mkdir(&self, name: &str, path: &str) -> ApiResult<serde_json::Value> {
        let path = guest_path("path", path)?;
        self.state
            .with_sandbox(name, |sb| async move { sb.fs().mkdir(path).await })
            .await?;
        Ok(json!({ "created": path }))
    }

    async fn remove_path(&self, args: RemoveFileArgs) -> ApiResult<serde_json::Value> {
        let path = guest_path("path", &args.path)?;
        if path.trim_end_matches('/').is_empty() {
            return Err(ApiError::invalid("'path' is the guest's root, which is not removed"));
        }
        let recursive = args.recursive;
        self.state
            .with_sandbox(&args.name, |sb| async move {
                match recursive {
                    true => sb.fs().remove_dir(path).await,
                    false => sb.fs().remove(path).await,
                }
            })
            .await?;
        Ok(json!({ "removed": path }))
    }
}

/// The bytes of file `path`, refused past [`MAX_READ_BYTES`] (before reading when its size
/// says so, while reading when it grows).
async fn read_capped(sb: &Sandbox, path: &str) -> MicrosandboxResult<Vec<u8>> {
    let too_big = |size: u64| {
        MicrosandboxError::InvalidArgument(format!(
            "{path} is {:.1} MiB; sandbox_fs_read returns at most {} MiB: read parts of it with \
             sandbox_exec (head -c, tail -c, dd)",
            size as f64 / (1 << 20) as f64,
            MAX_READ_BYTES >> 20
        ))
    };
    let entry = sb.fs().stat(path).await?;
    match entry.kind {
        FsKind::Dir => {
            return Err(MicrosandboxError::InvalidArgument(format!(
                "{path} is a directory: list it with sandbox_fs_list"
            )))
        }
        FsKind::File if entry.size > MAX_READ_BYTES => return Err(too_big(entry.size)),
        _ => {}
    }
    let mut stream = sb.fs().read_stream(path).await?;
    let mut all = Vec::new();
    while let Some(chunk) = stream.recv().await? {
        all.extend_from_slice(&chunk);
        if all.len() as u64 > MAX_READ_BYTES {
            // Dropping the stream ends the read.
            return Err(too_big(all.len() as u64));
        }
    }
    Ok(all)
}

/// `bytes` of `path` as the agent asked: UTF-8 text (refused when it is not) or base64.
fn encode(path: &str, bytes: Vec<u8>, encoding: Encoding) -> ApiResult<String> {
    match encoding {
        Encoding::Base64 => Ok(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Encoding::Text => String::from_utf8(bytes).map_err(|_| {
            ApiError::invalid(format!(
                "{path} is not UTF-8 text (a binary file?): read it with encoding 'base64'"
            ))
        }),
    }
}

/// Permission bits written in octal (`755`, `0644`, `0o600`).
fn parse_mode(text: &str) -> ApiResult<u32> {
    let digits = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(ApiError::invalid(format!(
            "'mode' must be octal permission bits such as '644' or '755', not '{text}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("755").ok(), Some(0o755));
        assert_eq!(parse_mode("0644").ok(), Some(0o644));
        assert_eq!(parse_mode("0o600").ok(), Some(0o600));
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("77777").is_err());
    }

    #[test]
    fn binary_content_is_refused_as_text_and_carried_as_base64() {
        let e = encode("/b", vec![0xff, 0xfe], Encoding::Text).err().map(|e| e.kind);
        assert_eq!(e, Some("invalid"));
        assert_eq!(
            encode("/b", vec![0xff, 0xfe], Encoding::Base64).ok().as_deref(),
            Some("//4=")
        );
        assert_eq!(encode("/t", b"hi".to_vec(), Encoding::Text).ok().as_deref(), Some("hi"));
    }
}
