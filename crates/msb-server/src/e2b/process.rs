//! envd's `process.Process` service over our agent: Start and Connect stream a process's
//! events, List, SendSignal, SendInput and CloseStdin act on the processes of the
//! sandbox's [`ProcessTable`](super::process_table::ProcessTable). PTYs and client-streamed
//! input are refused with `unimplemented`, naming the feature.

use super::connect::{self, unary, unimplemented, Code, Codec, ConnectError};
use super::envd::Envd;
use super::process_table::{keepalive, started, Process};
use super::state::E2bShared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use microsandbox::{ExecEvent, ExecOptions, Stdin};
use msb_envd::process::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The header in which a client asks for keep-alive events (seconds between them).
const KEEPALIVE_HEADER: &str = "keepalive-ping-interval";

/// `Start`: runs a process and streams its events.
pub async fn start(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (codec, request) = match connect::stream_request::<StartRequest>(&headers, &body) {
        Ok(parsed) => parsed,
        Err(e) => return connect::stream_error(Codec::Json, e),
    };
    match run(&state, &headers, request).await {
        Ok((process, events)) => stream::<StartResponse>(codec, &headers, process.pid, events),
        Err(e) => connect::stream_error(codec, e),
    }
}

async fn run(
    state: &E2bShared,
    headers: &HeaderMap,
    request: StartRequest,
) -> Result<(Arc<Process>, mpsc::Receiver<ProcessEvent>), ConnectError> {
    if request.pty.is_some() {
        return Err(unimplemented("PTY sessions"));
    }
    let config = request
        .process
        .ok_or_else(|| ConnectError::new(Code::InvalidArgument, "the request names no process"))?;
    let envd = Envd::of(state, headers).await?;
    // E2B runs commands in bash; an image without bash gets the same command in sh.
    let program = match config.cmd.as_str() {
        "/bin/bash" => state.shell(&envd.id, &envd.sandbox).await,
        other => other,
    };
    let mut opts = ExecOptions::new();
    opts.env = config.envs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    opts.workdir = config.cwd.as_deref().map(|cwd| envd.path(cwd)).transpose()?;
    opts.user = envd.user.clone();
    // An older client that does not say gets stdin open, as envd has always given it.
    opts.stdin = if request.stdin.unwrap_or(true) {
        Stdin::Pipe
    } else {
        Stdin::Null
    };
    let mut handle = envd
        .sandbox
        .exec_stream_with(program, config.args.clone(), opts)
        .await
        .map_err(|e| ConnectError::new(Code::Unavailable, format!("starting the process: {e}")))?;
    let pid = match handle.recv().await {
        Ok(Some(ExecEvent::Started(pid))) => pid,
        Ok(Some(ExecEvent::SpawnFailed(failure))) => {
            return Err(ConnectError::new(
                Code::InvalidArgument,
                format!("cannot start {}: {}", config.cmd, failure.message),
            ))
        }
        Ok(_) => return Err(ConnectError::new(Code::Internal, "the process sent no start event")),
        Err(e) => {
            return Err(ConnectError::new(
                Code::Unavailable,
                format!("starting the process: {e}"),
            ))
        }
    };
    let table = state.processes(&envd.id);
    Ok(table.adopt(handle, pid, config, request.tag))
}

/// `Connect`: streams the events of a running process from now on.
pub async fn connect(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (codec, request) = match connect::stream_request::<ConnectRequest>(&headers, &body) {
        Ok(parsed) => parsed,
        Err(e) => return connect::stream_error(Codec::Json, e),
    };
    match select(&state, &headers, request.process.as_ref()).await {
        Ok(process) => {
            let events = process.watch();
            stream::<ConnectResponse>(codec, &headers, process.pid, events)
        }
        Err(e) => connect::stream_error(codec, e),
    }
}

/// The response stream: the start event, the process's events (with keep-alives when the
/// client asked for them), until its end event.
fn stream<R>(codec: Codec, headers: &HeaderMap, pid: u32, events: mpsc::Receiver<ProcessEvent>) -> Response
where
    R: From<ProcessEvent> + connect::Message,
{
    let interval = headers
        .get(KEEPALIVE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let feed = Feed {
        first: Some(started(pid)),
        events,
        keepalive_every: interval,
        deadline: connect::deadline(headers),
        done: false,
    };
    connect::stream_response(codec, futures::stream::unfold(feed, Feed::next::<R>))
}

/// What a process stream sends: the start event, the process's events, keep-alives in
/// quiet spells when the client asked for them, and `deadline_exceeded` when the client's
/// time for the call is up (the process runs on, as in E2B: it can be re-joined).
struct Feed {
    first: Option<ProcessEvent>,
    events: mpsc::Receiver<ProcessEvent>,
    keepalive_every: Option<Duration>,
    deadline: Option<Instant>,
    done: bool,
}

impl Feed {
    async fn next<R: From<ProcessEvent>>(mut self) -> Option<(Result<R, ConnectError>, Feed)> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take() {
            return Some((Ok(R::from(first)), self));
        }
        let keepalive_at = self.keepalive_every.map(|every| Instant::now() + every);
        let wake = match (keepalive_at, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let next = match wake {
            Some(at) => tokio::time::timeout_at(at, self.events.recv()).await,
            None => Ok(self.events.recv().await),
        };
        match next {
            Ok(event) => event.map(|event| (Ok(R::from(event)), self)),
            Err(_) if self.deadline.is_some_and(|d| d <= Instant::now()) => {
                self.done = true;
                let late = ConnectError::new(Code::DeadlineExceeded, "the call's time (Connect-Timeout-Ms) ran out");
                Some((Err(late), self))
            }
            Err(_) => Some((Ok(R::from(keepalive())), self)),
        }
    }
}

/// `List`: the running processes.
pub async fn list(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |_: ListRequest| async move {
        let envd = Envd::of(state, headers).await?;
        Ok(ListResponse {
            processes: state.processes(&envd.id).list(),
        })
    })
    .await
}

/// `SendSignal`: SIGTERM or SIGKILL to a process.
pub async fn send_signal(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |request: SendSignalRequest| async move {
        let signal = match Signal::try_from(request.signal) {
            Ok(Signal::Sigterm) => libc::SIGTERM,
            Ok(Signal::Sigkill) => libc::SIGKILL,
            _ => {
                return Err(ConnectError::new(
                    Code::InvalidArgument,
                    "the signal must be SIGTERM or SIGKILL",
                ))
            }
        };
        let process = select(state, headers, request.process.as_ref()).await?;
        process.sink.signal(signal).await.map_err(gone)?;
        Ok(SendSignalResponse {})
    })
    .await
}

/// `SendInput`: bytes to a process's stdin.
pub async fn send_input(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |request: SendInputRequest| async move {
        let process = select(state, headers, request.process.as_ref()).await?;
        match request.input.and_then(|i| i.input) {
            Some(process_input::Input::Stdin(bytes)) => process.sink.write(&bytes).await.map_err(gone)?,
            Some(process_input::Input::Pty(_)) => return Err(unimplemented("PTY sessions")),
            None => {}
        }
        Ok(SendInputResponse {})
    })
    .await
}

/// `CloseStdin`: end of input for a process.
pub async fn close_stdin(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |request: CloseStdinRequest| async move {
        let process = select(state, headers, request.process.as_ref()).await?;
        process.sink.close().await.map_err(gone)?;
        Ok(CloseStdinResponse {})
    })
    .await
}

/// `Update` (PTY resize) and `StreamInput` (client streaming): not offered.
pub async fn pty_update() -> Response {
    connect::error_response(unimplemented("PTY sessions"))
}

/// `StreamInput`: not offered; `SendInput` carries the same bytes.
pub async fn stream_input() -> Response {
    connect::error_response(unimplemented("streamed stdin (StreamInput; use SendInput)"))
}

/// The process a selector names.
async fn select(
    state: &E2bShared,
    headers: &HeaderMap,
    selector: Option<&ProcessSelector>,
) -> Result<Arc<Process>, ConnectError> {
    let envd = Envd::of(state, headers).await?;
    let table = state.processes(&envd.id);
    let found = match selector.and_then(|s| s.selector.as_ref()) {
        Some(process_selector::Selector::Pid(pid)) => table.by_pid(*pid),
        Some(process_selector::Selector::Tag(tag)) => table.by_tag(tag),
        None => {
            return Err(ConnectError::new(
                Code::InvalidArgument,
                "the request selects no process",
            ))
        }
    };
    found.ok_or_else(|| ConnectError::new(Code::NotFound, "no such process (it may have ended)"))
}

fn gone(e: microsandbox::MicrosandboxError) -> ConnectError {
    ConnectError::new(Code::NotFound, format!("the process is gone: {e}"))
}
