//! The sandbox and volume tools: create, exec, shell, stop, remove, list, metrics; volume
//! create, list, remove.

use super::params::{CreateArgs, ExecArgs, MetricsArgs, RemoveArgs, ShellArgs, StopArgs, VolumeCreateArgs};
use super::{respond, McpServer, ToolResult, MAX_OUTPUT_BYTES};
use crate::api::exec::{self, ExecRequest, ExecResult};
use crate::api::metrics::MetricsView;
use crate::api::sandboxes::SandboxView;
use crate::error::ApiResult;
use microsandbox::{ExecStatus, SandboxInfo, Volume};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// A sandbox as the tools show it: the REST view without its whole spec.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Its name.
    pub name: String,
    /// `created`, `running`, `stopped`, `crashed` (or `removed`, after an ephemeral one stops).
    pub state: String,
    /// The image reference, or the rootfs path.
    pub source: String,
    /// Created, seconds since the Unix epoch.
    pub created_at: i64,
    /// Last started.
    pub started_at: Option<i64>,
    /// Last stopped or found crashed.
    pub stopped_at: Option<i64>,
    /// Exit code of its command, when it had one and it ended.
    pub exit_code: Option<i32>,
    /// Why the last run ended.
    pub exit_reason: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl Summary {
    /// The summary of `info`.
    pub fn of(info: SandboxInfo) -> ApiResult<Summary> {
        let view = SandboxView::of(info)?;
        Ok(Summary {
            name: view.name,
            state: view.state,
            source: view.source,
            created_at: view.created_at,
            started_at: view.started_at,
            stopped_at: view.stopped_at,
            exit_code: view.exit_code,
            exit_reason: view.exit_reason,
            labels: view.labels,
        })
    }
}

/// A named volume as the tools show it.
#[derive(Debug, Serialize)]
pub struct VolumeView {
    /// Its name.
    pub name: String,
    /// The host directory holding its files.
    pub path: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Created, seconds since the Unix epoch.
    pub created_at: i64,
    /// Its size limit, for a volume made with a quota.
    pub quota_bytes: Option<u64>,
}

impl VolumeView {
    /// The view of `volume`.
    pub fn of(volume: &Volume) -> VolumeView {
        VolumeView {
            name: volume.name.clone(),
            path: volume.path.display().to_string(),
            labels: volume.labels.clone(),
            created_at: volume.created_at,
            quota_bytes: volume.size_bytes(),
        }
    }
}

#[tool_router(router = sandbox_tools, vis = "pub(super)")]
impl McpServer {
    /// Creates and starts a sandbox.
    #[tool(
        description = "Create a new sandbox (a microVM) from an OCI image ('python', 'alpine', \
        'node:22' …) or a host rootfs directory, and start it. It keeps running in the background \
        until sandbox_stop (or its idle_timeout_secs); it is not removed when this session ends \
        unless 'ephemeral' is set. Returns its name and state; pass the name to the other tools.",
        annotations(title = "Create sandbox", destructive_hint = false, open_world_hint = true)
    )]
    async fn sandbox_create(&self, Parameters(args): Parameters<CreateArgs>) -> ToolResult {
        respond(self.create(args).await)
    }

    /// Runs a program in a sandbox.
    #[tool(
        description = "Run a program in a running sandbox and wait for it: 'cmd' is the argv \
        (no shell: use sandbox_shell for pipes and redirections). Returns exit_code, success, \
        stdout and stderr (text; each cut in the middle past 1 MiB). A nonzero exit is not a \
        tool error; a missing or stopped sandbox is (kind not_found or conflict), and so is \
        running past timeout_secs (kind timeout; the process is killed).",
        annotations(title = "Run a command")
    )]
    async fn sandbox_exec(&self, Parameters(args): Parameters<ExecArgs>) -> ToolResult {
        let (name, req) = args.into_request();
        respond(self.exec(&name, &req).await)
    }

    /// Runs a shell script in a sandbox.
    #[tool(
        description = "Run a shell script in a running sandbox with its shell (`/bin/sh -c \
        SCRIPT` by default) and wait for it. Returns exit_code, success, stdout and stderr, as \
        sandbox_exec does.",
        annotations(title = "Run a shell script")
    )]
    async fn sandbox_shell(&self, Parameters(args): Parameters<ShellArgs>) -> ToolResult {
        let (name, req) = args.into_request();
        respond(self.exec(&name, &req).await)
    }

    /// Stops a sandbox.
    #[tool(
        description = "Stop a running sandbox: its processes get the stop signal, then \
        timeout_secs (default 10) before the VM is killed. Its files are kept (unless it is \
        ephemeral) until sandbox_remove. Returns its state afterwards.",
        annotations(title = "Stop sandbox", destructive_hint = true, idempotent_hint = false)
    )]
    async fn sandbox_stop(&self, Parameters(args): Parameters<StopArgs>) -> ToolResult {
        let grace = Duration::from_secs(args.timeout_secs.unwrap_or(10).min(3600));
        respond(self.stop(&args.name, grace).await)
    }

    /// Removes a sandbox.
    #[tool(
        description = "Remove a sandbox and everything it wrote. A running one is refused \
        (kind conflict) unless 'force' is true, which stops it first.",
        annotations(title = "Remove sandbox", destructive_hint = true)
    )]
    async fn sandbox_remove(&self, Parameters(args): Parameters<RemoveArgs>) -> ToolResult {
        self.state.forget(&args.name);
        let removed = self.state.msb.remove(&args.name, args.force).await;
        respond(removed.map(|()| json!({ "removed": args.name })).map_err(Into::into))
    }

    /// Lists sandboxes.
    #[tool(
        description = "List every sandbox (running, stopped, crashed), newest first, with its \
        state, source image and labels.",
        annotations(title = "List sandboxes", read_only_hint = true)
    )]
    async fn sandbox_list(&self) -> ToolResult {
        respond(self.list().await)
    }

    /// Measures resource use.
    #[tool(
        description = "Resource use of a running sandbox now: CPU percent, memory and disk used \
        and total (bytes), network bytes, uptime. Without 'name', of every running sandbox, by \
        name.",
        annotations(title = "Sandbox metrics", read_only_hint = true)
    )]
    async fn sandbox_metrics(&self, Parameters(args): Parameters<MetricsArgs>) -> ToolResult {
        respond(self.metrics(args.name).await)
    }

    /// Creates a volume.
    #[tool(
        description = "Create a named volume: storage that outlives sandboxes. Mount it with \
        sandbox_create's 'volumes' ([{\"volume\": NAME, \"guest\": \"/data\"}]). With \
        quota_mib it is a disk of that size.",
        annotations(title = "Create volume", destructive_hint = false)
    )]
    async fn volume_create(&self, Parameters(args): Parameters<VolumeCreateArgs>) -> ToolResult {
        let mut builder = self.state.msb.volumes().builder(args.name);
        if let Some(mib) = args.quota_mib {
            builder = builder.quota(mib);
        }
        for (key, value) in args.labels {
            builder = builder.label(key, value);
        }
        respond(builder.create().await.map(|v| VolumeView::of(&v)).map_err(Into::into))
    }

    /// Lists volumes.
    #[tool(
        description = "List the named volumes.",
        annotations(title = "List volumes", read_only_hint = true)
    )]
    async fn volume_list(&self) -> ToolResult {
        let listed = self.state.msb.volumes().list().await;
        respond(
            listed
                .map(|all| json!({ "volumes": all.iter().map(VolumeView::of).collect::<Vec<_>>() }))
                .map_err(Into::into),
        )
    }

    /// Removes a volume.
    #[tool(
        description = "Remove a named volume and its files. One that a sandbox mounts is \
        refused (kind conflict) unless 'force' is true.",
        annotations(title = "Remove volume", destructive_hint = true)
    )]
    async fn volume_remove(&self, Parameters(args): Parameters<RemoveArgs>) -> ToolResult {
        let removed = self.state.msb.volumes().remove(&args.name, args.force).await;
        respond(removed.map(|()| json!({ "removed": args.name })).map_err(Into::into))
    }
}

impl McpServer {
    async fn create(&self, args: CreateArgs) -> ApiResult<Summary> {
        let sb = args.into_request().builder(&self.state.msb)?.create_detached().await?;
        self.state.keep(&sb);
        Summary::of(sb.info().await?)
    }

    async fn exec(&self, name: &str, req: &ExecRequest) -> ApiResult<ExecResult> {
        let out = exec::start(&self.state, name, req).await?.collect().await?;
        let spawn_error = match &out.status {
            ExecStatus::SpawnFailed(f) => Some(f.message.clone()),
            _ => None,
        };
        Ok(ExecResult {
            exit_code: out.status.code(),
            success: out.success(),
            stdout: cap(out.stdout_text()),
            stderr: cap(out.stderr_text()),
            spawn_error,
        })
    }

    async fn stop(&self, name: &str, grace: Duration) -> ApiResult<Summary> {
        let before = self.state.msb.get(name).await?;
        self.state.forget(name);
        match self.state.msb.stop(name, grace).await? {
            Some(after) => Summary::of(after),
            None => {
                let mut gone = Summary::of(before)?;
                gone.state = "removed".into();
                Ok(gone)
            }
        }
    }

    async fn list(&self) -> ApiResult<serde_json::Value> {
        let all = self.state.msb.list().await?;
        let summaries = all.into_iter().map(Summary::of).collect::<ApiResult<Vec<_>>>()?;
        Ok(json!({ "sandboxes": summaries }))
    }

    async fn metrics(&self, name: Option<String>) -> ApiResult<serde_json::Value> {
        match name {
            Some(name) => {
                let measured = self
                    .state
                    .with_sandbox(&name, |sb| async move { sb.metrics().await })
                    .await?;
                Ok(json!({ "name": name, "metrics": MetricsView::from(measured) }))
            }
            None => {
                let all = self.state.msb.all_metrics().await?;
                let views: BTreeMap<String, MetricsView> = all.into_iter().map(|(n, m)| (n, m.into())).collect();
                Ok(json!({ "metrics": views }))
            }
        }
    }
}

/// `text`, or its first and last halves of [`MAX_OUTPUT_BYTES`] with a note of what was cut.
fn cap(text: String) -> String {
    if text.len() <= MAX_OUTPUT_BYTES {
        return text;
    }
    let half = MAX_OUTPUT_BYTES / 2;
    let mut head = half;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - half;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}\n[… {} bytes cut …]\n{}", &text[..head], tail - head, &text[tail..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_keeps_its_ends_on_character_boundaries() {
        let long = "é".repeat(MAX_OUTPUT_BYTES);
        let capped = cap(long);
        assert!(capped.len() < MAX_OUTPUT_BYTES + 100);
        assert!(capped.starts_with('é') && capped.ends_with('é'));
        assert!(capped.contains("bytes cut"));
        assert_eq!(cap("short".into()), "short");
    }
}
