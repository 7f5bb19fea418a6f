//! `/v1/sandboxes/{name}/exec`: run a command and answer its output, or stream its events
//! as NDJSON or Server-Sent Events. A client that goes away gets its process killed.

use super::sandboxes::Named;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::Shared;
use crate::stream::EventName;
use crate::text::Utf8Stream;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures::{Stream, StreamExt};
use microsandbox::{ExecEvent, ExecHandle, ExecOptions, ExecStatus, MicrosandboxError, MicrosandboxResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(exec)).routes(routes!(exec_stream))
}

/// A command to run in a sandbox.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments; this or `shell`.
    pub cmd: Option<Vec<String>>,
    /// A script for the sandbox's shell (`SHELL -c script`); this or `cmd`.
    pub shell: Option<String>,
    /// Environment variables on top of the sandbox's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User to run as.
    pub user: Option<String>,
    /// Text for its standard input (default: none, `/dev/null`).
    pub stdin: Option<String>,
    /// Kill it after this many seconds.
    pub timeout_secs: Option<u64>,
}

impl ExecRequest {
    /// The argv and options of this request, for a sandbox whose shell is `shell`.
    pub fn argv_and_options(&self, shell: &str) -> MicrosandboxResult<(Vec<String>, ExecOptions)> {
        let argv = match (&self.cmd, &self.shell) {
            (Some(cmd), None) if !cmd.is_empty() => cmd.clone(),
            (None, Some(script)) => vec![shell.to_string(), "-c".into(), script.clone()],
            _ => {
                return Err(MicrosandboxError::InvalidArgument(
                    "give exactly one of 'cmd' (non-empty) and 'shell'".into(),
                ))
            }
        };
        let mut opts = ExecOptions::new().envs(self.env.clone());
        if let Some(dir) = &self.workdir {
            opts = opts.cwd(dir);
        }
        if let Some(user) = &self.user {
            opts = opts.user(user);
        }
        if let Some(input) = &self.stdin {
            opts = opts.stdin_bytes(input.as_bytes().to_vec());
        }
        if let Some(secs) = self.timeout_secs {
            opts = opts.timeout(Duration::from_secs(secs));
        }
        Ok((argv, opts))
    }
}

/// How a command ended, with its output.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecResult {
    /// Its exit status, shell-style (128+N for signal N; 126/127 when it could not start).
    pub exit_code: i32,
    /// Whether it exited with 0.
    pub success: bool,
    /// Standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Why it could not be started, when it could not.
    pub spawn_error: Option<String>,
}

/// Starts the process the request describes; dropping the handle kills it.
pub async fn start(state: &Shared, name: &str, req: &ExecRequest) -> ApiResult<ExecHandle> {
    state
        .with_sandbox(name, |sb| async move {
            let (argv, opts) = req.argv_and_options(sb.shell_program())?;
            let (cmd, args) = argv
                .split_first()
                .ok_or_else(|| MicrosandboxError::InvalidArgument("empty command".into()))?;
            Ok(sb.exec_stream_with(cmd, args.to_vec(), opts).await?.kill_on_drop())
        })
        .await
}

/// Runs a command and answers its output when it ends.
#[utoipa::path(post, path = "/v1/sandboxes/{name}/exec", tag = "exec", params(Named), request_body = ExecRequest,
    responses((status = 200, body = ExecResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
async fn exec(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Json(req): Json<ExecRequest>,
) -> ApiResult<Json<ExecResult>> {
    let out = start(&state, &name, &req).await?.collect().await?;
    let spawn_error = match &out.status {
        ExecStatus::SpawnFailed(f) => Some(f.message.clone()),
        _ => None,
    };
    Ok(Json(ExecResult {
        exit_code: out.status.code(),
        success: out.success(),
        stdout: out.stdout_text(),
        stderr: out.stderr_text(),
        spawn_error,
    }))
}

/// One event of a streamed exec.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The process started.
    Started {
        /// Its guest pid.
        pid: u32,
    },
    /// Output on stdout.
    Stdout {
        /// The text (a character split across chunks is sent whole).
        data: String,
    },
    /// Output on stderr.
    Stderr {
        /// The text.
        data: String,
    },
    /// It ended; nothing follows.
    Exit {
        /// Shell-style exit status.
        exit_code: i32,
        /// Whether it exited with 0.
        success: bool,
        /// Why it could not be started, when it could not.
        spawn_error: Option<String>,
    },
    /// The exec failed (timeout, sandbox gone); nothing follows.
    Error {
        /// The error's kind.
        kind: String,
        /// What went wrong.
        message: String,
    },
}

/// The events of a running process, ending with `Exit` or `Error`.
pub fn events(handle: ExecHandle) -> impl Stream<Item = StreamEvent> + Send {
    struct Decoding {
        handle: Option<ExecHandle>,
        out: Utf8Stream,
        err: Utf8Stream,
    }
    let start = Decoding {
        handle: Some(handle),
        out: Utf8Stream::default(),
        err: Utf8Stream::default(),
    };
    futures::stream::unfold(start, |mut d| async move {
        let handle = d.handle.as_mut()?;
        let event = match handle.recv().await {
            Ok(Some(ExecEvent::Started(pid))) => vec![StreamEvent::Started { pid }],
            Ok(Some(ExecEvent::Stdout(bytes))) => vec![StreamEvent::Stdout {
                data: d.out.push(&bytes),
            }],
            Ok(Some(ExecEvent::Stderr(bytes))) => vec![StreamEvent::Stderr {
                data: d.err.push(&bytes),
            }],
            Ok(Some(end @ (ExecEvent::Exited(_) | ExecEvent::SpawnFailed(_)))) => {
                d.handle = None;
                let status = match end {
                    ExecEvent::Exited(s) => ExecStatus::from(s),
                    ExecEvent::SpawnFailed(f) => ExecStatus::SpawnFailed(f),
                    _ => unreachable!("matched above"),
                };
                let spawn_error = match &status {
                    ExecStatus::SpawnFailed(f) => Some(f.message.clone()),
                    _ => None,
                };
                let mut last = Vec::new();
                let (out, err) = (d.out.finish(), d.err.finish());
                if !out.is_empty() {
                    last.push(StreamEvent::Stdout { data: out });
                }
                if !err.is_empty() {
                    last.push(StreamEvent::Stderr { data: err });
                }
                last.push(StreamEvent::Exit {
                    exit_code: status.code(),
                    success: status.success(),
                    spawn_error,
                });
                last
            }
            Ok(None) => {
                d.handle = None;
                vec![]
            }
            Err(e) => {
                d.handle = None;
                let e = ApiError::from(e);
                vec![StreamEvent::Error {
                    kind: e.kind.to_string(),
                    message: e.message,
                }]
            }
        };
        Some((futures::stream::iter(event), d))
    })
    .flatten()
    .filter(|e| {
        std::future::ready(!matches!(e, StreamEvent::Stdout { data } | StreamEvent::Stderr { data } if data.is_empty()))
    })
}

/// Runs a command and streams its events: NDJSON, or Server-Sent Events when the client
/// accepts `text/event-stream`.
#[utoipa::path(post, path = "/v1/sandboxes/{name}/exec/stream", tag = "exec", params(Named), request_body = ExecRequest,
    responses((status = 200, description = "one StreamEvent per line", content(
        (StreamEvent = "application/x-ndjson"), (StreamEvent = "text/event-stream"))),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn exec_stream(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    headers: HeaderMap,
    Json(req): Json<ExecRequest>,
) -> ApiResult<Response> {
    let handle = start(&state, &name, &req).await?;
    Ok(crate::stream::respond(&headers, events(handle)))
}

impl EventName for StreamEvent {
    fn event_name(&self) -> &'static str {
        match self {
            StreamEvent::Started { .. } => "started",
            StreamEvent::Stdout { .. } => "stdout",
            StreamEvent::Stderr { .. } => "stderr",
            StreamEvent::Exit { .. } => "exit",
            StreamEvent::Error { .. } => "error",
        }
    }
}
