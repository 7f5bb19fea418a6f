//! Connecting a guest process to this process's terminal: output to stdout/stderr, stdin
//! forwarded, signals and window resizes relayed.

use crate::terminal::{terminal_size, RawMode};
use crate::{MicrosandboxError, MicrosandboxResult};
use msb_protocol::client::{AgentClient, ExecControl, ExecEvent};
use msb_protocol::ExecRequest;
use msb_types::{DetachKeys, DetachMatcher, Scanned};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// What [`attach`](crate::Sandbox::attach) returns when the user typed the detach keys: the
/// process runs on in the guest (the reference's value).
pub const DETACHED: i32 = -1;

/// Runs `request` attached to our stdio; returns the shell-style exit status, or
/// [`DETACHED`]. SIGINT, SIGTERM and SIGHUP to this process end the session with 128 + the
/// signal; a closed stdout ends it with 141, as for a pipeline's writer. Past `timeout` the
/// process is killed and [`MicrosandboxError::ExecTimeout`] returned. On a terminal the
/// guest gets this terminal's `TERM` unless one is set, and `detach_keys` (default
/// `ctrl-]`) let go of the session.
pub(crate) async fn attach(
    client: &AgentClient,
    mut request: ExecRequest,
    timeout: Option<std::time::Duration>,
    detach_keys: Option<DetachKeys>,
) -> MicrosandboxResult<i32> {
    let tty = request.tty.is_some();
    if tty && !request.env.iter().any(|(k, _)| k == "TERM") {
        let term = std::env::var("TERM").ok().filter(|t| !t.is_empty() && t != "dumb");
        request
            .env
            .push(("TERM".into(), term.unwrap_or_else(|| "xterm".into())));
    }
    let mut session = client.exec(request).await?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut timed_out = false;
    let _raw = if tty {
        RawMode::enable().map_err(|e| MicrosandboxError::io("putting the terminal in raw mode")(e.into()))?
    } else {
        None
    };
    let detach = tty.then(|| DetachMatcher::new(&detach_keys.unwrap_or_default()));
    let (detached_tx, mut detached) = tokio::sync::oneshot::channel();
    let input = tokio::spawn(forward_stdin(session.control(), detach, detached_tx));
    let mut stdin_done = false;
    let watch = |kind| signal(kind).map_err(MicrosandboxError::io("watching signals"));
    let mut interrupt = watch(SignalKind::interrupt())?;
    let mut terminate = watch(SignalKind::terminate())?;
    let mut hangup = watch(SignalKind::hangup())?;
    let mut winch = watch(SignalKind::window_change())?;
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let code = loop {
        tokio::select! {
            event = session.next() => match event? {
                Some(ExecEvent::Stdout(data)) => {
                    if write(&mut stdout, &data).await.is_err() {
                        break 128 + libc::SIGPIPE;
                    }
                }
                Some(ExecEvent::Stderr(data)) => {
                    if write(&mut stderr, &data).await.is_err() {
                        break 128 + libc::SIGPIPE;
                    }
                }
                Some(ExecEvent::Started(_)) => {}
                Some(ExecEvent::Exited(_)) if timed_out => {
                    input.abort();
                    return Err(MicrosandboxError::ExecTimeout(timeout.unwrap_or_default()));
                }
                Some(ExecEvent::Exited(status)) => break status.shell_code(),
                Some(ExecEvent::SpawnFailed(f)) => {
                    eprintln!("msb: error: {}", f.message);
                    break f.kind.exit_code();
                }
                None => return Err(msb_protocol::client::ClientError::Disconnected.into()),
            },
            _ = winch.recv(), if tty => { let _ = session.control().resize(terminal_size()).await; }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() && !timed_out => {
                timed_out = true;
                session.control().signal(libc::SIGKILL).await?;
            }
            said = &mut detached, if !stdin_done => {
                // Either the detach keys, or stdin ended (the sender is gone).
                stdin_done = true;
                if said.is_ok() {
                    break DETACHED;
                }
            }
            _ = interrupt.recv() => break 128 + libc::SIGINT,
            _ = terminate.recv() => break 128 + libc::SIGTERM,
            _ = hangup.recv() => break 128 + libc::SIGHUP,
        }
    };
    input.abort();
    Ok(code)
}

/// Writes guest output. When our output is gone (`msb run … | head -1`), the session ends
/// as a shell pipeline's writer would: the caller stops the VM and exits 141 (SIGPIPE).
async fn write(out: &mut (impl AsyncWriteExt + Unpin), data: &[u8]) -> std::io::Result<()> {
    out.write_all(data).await?;
    out.flush().await
}

/// Copies our stdin to the process until it ends; on the detach keys, lets go of the
/// session instead and says so on `detached`.
async fn forward_stdin(
    control: ExecControl,
    mut detach: Option<DetachMatcher>,
    detached: tokio::sync::oneshot::Sender<()>,
) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; msb_protocol::MAX_CHUNK];
    loop {
        let n = match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let scanned = match &mut detach {
            Some(matcher) => matcher.feed(&buf[..n]),
            None => Scanned::Input(buf[..n].to_vec()),
        };
        let (Scanned::Input(input) | Scanned::Detach(input)) = &scanned;
        if control.write_stdin(input).await.is_err() {
            return;
        }
        if matches!(scanned, Scanned::Detach(_)) {
            if control.release().await.is_ok() {
                let _ = detached.send(());
            }
            return;
        }
    }
    let _ = control.close_stdin().await;
}
