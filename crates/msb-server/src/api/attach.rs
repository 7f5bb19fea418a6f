//! `/v1/sandboxes/{name}/attach`: an interactive process over a WebSocket. Binary messages
//! are its stdin and its output; text messages are JSON controls from the client and the
//! final `exit` (or `error`) from the server. A client that goes away gets its process
//! killed; output waits for a slow client (the exec stream's credit holds the rest in the
//! guest) rather than piling up here.

use super::sandboxes::Named;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::state::Shared;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use microsandbox::{ExecEvent, ExecHandle, ExecOptions, ExecSink, ExecStatus, MicrosandboxError, WindowSize};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(attach))
}

/// The largest message a client may send (stdin is streamed in pieces of at most this).
const MAX_CLIENT_MESSAGE: usize = 1 << 20;

/// How long the server waits for the client's close after its own.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What to attach to (the query string).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttachQuery {
    /// Program and arguments: repeat `cmd` once per word, or give one JSON list
    /// (`cmd=["ls","-l"]`). Absent: the sandbox's shell.
    pub cmd: Option<Vec<String>>,
    /// Run on a terminal (default true).
    pub tty: Option<bool>,
    /// Terminal rows (default 24).
    #[param(minimum = 1, maximum = 65535)]
    pub rows: Option<u16>,
    /// Terminal columns (default 80).
    #[param(minimum = 1, maximum = 65535)]
    pub cols: Option<u16>,
}

/// A control message from the client (a text message).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// The terminal's new size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Send a signal to the process.
    Signal {
        /// Its number (2 is SIGINT).
        signal: i32,
    },
    /// End of input: the process reads end of file.
    CloseStdin,
}

/// A text message from the server.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// The process ended; the server closes the socket after this.
    Exit {
        /// Shell-style exit status (128+N for signal N; 126/127 when it could not start).
        exit_code: i32,
        /// Why it could not be started, when it could not.
        #[serde(skip_serializing_if = "Option::is_none")]
        spawn_error: Option<String>,
    },
    /// A control message could not be used, or the exec failed (then the socket closes).
    Error {
        /// The error's kind.
        kind: String,
        /// What went wrong.
        message: String,
    },
}

/// The request a query string describes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attach {
    cmd: Option<Vec<String>>,
    tty: Option<WindowSize>,
}

impl Attach {
    /// Parses the query's pairs (`cmd` may repeat; unknown keys are refused).
    fn parse(pairs: Vec<(String, String)>) -> ApiResult<Attach> {
        let (mut words, mut tty, mut rows, mut cols) = (Vec::new(), true, 24u16, 80u16);
        for (key, value) in pairs {
            match key.as_str() {
                "cmd" => words.push(value),
                "tty" => tty = flag(&value)?,
                "rows" => rows = size("rows", &value)?,
                "cols" => cols = size("cols", &value)?,
                other => return Err(ApiError::bad_request(format!("unknown query parameter '{other}'"))),
            }
        }
        let listed =
            matches!(words.as_slice(), [one] if one.trim_start().starts_with('[') && one.trim_end().ends_with(']'));
        if listed {
            words = serde_json::from_str(&words[0])
                .map_err(|e| ApiError::bad_request(format!("'cmd' is not a JSON list of strings: {e}")))?;
            if words.is_empty() {
                return Err(ApiError::invalid("'cmd' is an empty list"));
            }
        }
        Ok(Attach {
            cmd: (!words.is_empty()).then_some(words),
            tty: tty.then_some(WindowSize { rows, cols }),
        })
    }
}

/// A boolean query value.
fn flag(value: &str) -> ApiResult<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "'tty' must be true or false, not '{value}'"
        ))),
    }
}

/// A terminal dimension: 1 to 65535.
fn size(field: &str, value: &str) -> ApiResult<u16> {
    match value.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ApiError::invalid(format!(
            "'{field}' must be 1 to 65535, not '{value}'"
        ))),
    }
}

/// Runs a command (default: the sandbox's shell) attached to a WebSocket.
///
/// Binary messages from the client are its stdin; binary messages from the server its
/// output (stdout and stderr; one stream on a terminal). Text messages from the client are
/// JSON controls: `{"type":"resize","rows":R,"cols":C}`, `{"type":"signal","signal":N}`,
/// `{"type":"close_stdin"}`; one that cannot be used is answered with a text
/// `{"type":"error","kind","message"}`. The server's last message is a text
/// `{"type":"exit","exit_code":N}` (or an `error`, when the exec itself failed), then it
/// closes. A client that disconnects gets the process killed.
#[utoipa::path(get, path = "/v1/sandboxes/{name}/attach", tag = "exec", params(Named, AttachQuery),
    responses((status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, body = ErrorBody, description = "not a WebSocket request, or a bad query"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn attach(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let request = Attach::parse(pairs)?;
    let upgrade = upgrade
        .map_err(|r| ApiError::bad_request(format!("this path needs a WebSocket upgrade: {}", r.body_text())))?;
    // Started before the upgrade, so a missing or stopped sandbox is an ordinary error
    // answer; if the upgrade then fails, dropping the handle kills the process.
    let handle = state
        .with_sandbox(&name, |sb| {
            let request = request.clone();
            async move {
                let argv = request.cmd.unwrap_or_else(|| vec![sb.shell_program().to_string()]);
                let (cmd, args) = argv
                    .split_first()
                    .ok_or_else(|| MicrosandboxError::InvalidArgument("empty command".into()))?;
                let opts = ExecOptions::new().stdin_pipe().tty(request.tty);
                Ok(sb.exec_stream_with(cmd, args.to_vec(), opts).await?.kill_on_drop())
            }
        })
        .await?;
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session(socket, handle)))
}

/// The writing half of the socket, shared by the output pump and control answers.
type Sender = tokio::sync::Mutex<futures::stream::SplitSink<WebSocket, Message>>;

/// Pumps the socket both ways until the process ends (then `exit` and a close) or the
/// client goes away (then the handle is dropped, which kills the process).
async fn session(socket: WebSocket, mut handle: ExecHandle) {
    let (tx, mut rx) = socket.split();
    let tx: Sender = tokio::sync::Mutex::new(tx);
    let sink = handle.stdin();
    let input = pump_input(&mut rx, &sink, &tx);
    tokio::pin!(input);
    let ended = tokio::select! {
        _ = &mut input => false,
        ended = pump_output(&mut handle, &tx) => ended,
    };
    if ended {
        // Let the client answer the close; whatever it still sends goes nowhere harmful.
        let _ = tokio::time::timeout(CLOSE_WAIT, input).await;
    }
}

/// Client messages into the process until the client closes or disconnects.
async fn pump_input(rx: &mut futures::stream::SplitStream<WebSocket>, sink: &ExecSink, tx: &Sender) {
    while let Some(Ok(message)) = rx.next().await {
        let failed = match message {
            Message::Binary(bytes) => sink.write(&bytes).await.err().map(ApiError::from),
            Message::Text(text) => control(sink, text.as_str()).await.err(),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => None,
        };
        if let Some(e) = failed {
            if send_notice(tx, &error_notice(e)).await.is_err() {
                return;
            }
        }
    }
}

/// Carries out one control message.
async fn control(sink: &ExecSink, text: &str) -> ApiResult<()> {
    let control: Control = serde_json::from_str(text).map_err(|e| {
        ApiError::bad_request(format!(
            "not a control message ({e}); send {{\"type\":\"resize\",\"rows\":R,\"cols\":C}}, \
             {{\"type\":\"signal\",\"signal\":N}} or {{\"type\":\"close_stdin\"}}"
        ))
    })?;
    match control {
        Control::Resize { rows, cols } if rows == 0 || cols == 0 => {
            Err(ApiError::invalid("'rows' and 'cols' must be at least 1"))
        }
        Control::Resize { rows, cols } => Ok(sink.resize(WindowSize { rows, cols }).await?),
        Control::Signal { signal } if !(1..=64).contains(&signal) => {
            Err(ApiError::invalid(format!("'signal' must be 1 to 64, not {signal}")))
        }
        Control::Signal { signal } => Ok(sink.signal(signal).await?),
        Control::CloseStdin => Ok(sink.close().await?),
    }
}

/// The process's output to the client, then its `exit`; whether the process ended (false:
/// the client could not be written to).
async fn pump_output(handle: &mut ExecHandle, tx: &Sender) -> bool {
    let (notice, code) = loop {
        let event = match handle.recv().await {
            Ok(Some(event)) => event,
            Ok(None) => {
                break (
                    error_notice(ApiError::internal("the process's stream ended early")),
                    1011,
                )
            }
            Err(e) => break (error_notice(e.into()), 1011),
        };
        let end = match event {
            ExecEvent::Started(_) => continue,
            ExecEvent::Stdout(bytes) | ExecEvent::Stderr(bytes) => {
                // Awaited: a slow client slows the process (its output credit runs out).
                if tx.lock().await.send(Message::Binary(bytes.into())).await.is_err() {
                    return false;
                }
                continue;
            }
            ExecEvent::Exited(status) => ExecStatus::from(status),
            ExecEvent::SpawnFailed(failure) => ExecStatus::SpawnFailed(failure),
        };
        let spawn_error = match &end {
            ExecStatus::SpawnFailed(f) => Some(f.message.clone()),
            _ => None,
        };
        let exit = Notice::Exit {
            exit_code: end.code(),
            spawn_error,
        };
        break (exit, 1000);
    };
    if send_notice(tx, &notice).await.is_err() {
        return false;
    }
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: "".into(),
    }));
    let _ = tx.lock().await.send(close).await;
    true
}

/// An `error` notice for `e`.
fn error_notice(e: ApiError) -> Notice {
    Notice::Error {
        kind: e.kind.to_string(),
        message: e.message,
    }
}

/// Sends `notice` as a text message.
async fn send_notice(tx: &Sender, notice: &Notice) -> Result<(), axum::Error> {
    // Our own plain enum: serializing it cannot fail.
    let text = serde_json::to_string(notice).unwrap_or_default();
    tx.lock().await.send(Message::Text(text.into())).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn cmd_repeats_or_is_a_json_list_and_defaults_to_a_terminal() {
        let a = Attach::parse(pairs(&[("cmd", "ls"), ("cmd", "-l")])).unwrap();
        assert_eq!(a.cmd.unwrap(), ["ls", "-l"]);
        assert_eq!(a.tty, Some(WindowSize { rows: 24, cols: 80 }));
        let a = Attach::parse(pairs(&[("cmd", r#"["sh","-c","echo [x]"]"#), ("tty", "false")])).unwrap();
        assert_eq!(a.cmd.unwrap(), ["sh", "-c", "echo [x]"]);
        assert_eq!(a.tty, None);
        let a = Attach::parse(pairs(&[("rows", "50"), ("cols", "132")])).unwrap();
        assert_eq!((a.cmd, a.tty), (None, Some(WindowSize { rows: 50, cols: 132 })));
        // The `[` program is a word, not a list.
        assert_eq!(Attach::parse(pairs(&[("cmd", "[")])).unwrap().cmd.unwrap(), ["["]);
    }

    #[test]
    fn bad_queries_are_client_errors() {
        for bad in [
            pairs(&[("cmd", "[1,2]")]),
            pairs(&[("cmd", "[]")]),
            pairs(&[("tty", "maybe")]),
            pairs(&[("rows", "0")]),
            pairs(&[("cols", "70000")]),
            pairs(&[("colour", "1")]),
        ] {
            let e = Attach::parse(bad.clone()).unwrap_err();
            assert!(e.status.is_client_error(), "{bad:?}: {e:?}");
        }
    }

    #[test]
    fn control_messages_parse_and_unknown_ones_do_not() {
        let c: Control = serde_json::from_str(r#"{"type":"resize","rows":5,"cols":6}"#).unwrap();
        assert!(matches!(c, Control::Resize { rows: 5, cols: 6 }));
        let c: Control = serde_json::from_str(r#"{"type":"close_stdin"}"#).unwrap();
        assert!(matches!(c, Control::CloseStdin));
        for bad in [
            r#"{"type":"resize","rows":-1,"cols":6}"#,
            r#"{"type":"signal","signal":2,"extra":1}"#,
            r#"{"type":"explode"}"#,
            "not json",
        ] {
            assert!(serde_json::from_str::<Control>(bad).is_err(), "{bad}");
        }
    }
}
