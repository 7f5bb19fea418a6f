//! Connecting a guest process to this terminal: output to stdout/stderr, stdin forwarded,
//! signals and window resizes relayed.

use crate::terminal::{self, RawMode};
use anyhow::Result;
use microsandbox::vm::BootedVm;
use microsandbox::{ExecControl, ExecEvent, ExecRequest};
use std::io::IsTerminal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// Prints a notice for a person at a terminal; stays quiet when stderr is piped.
pub fn notice(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("msb: {msg}");
    }
}

/// Runs `request` in `vm` attached to our stdio; returns the shell-style exit status.
/// SIGINT/SIGTERM/SIGHUP end the session (the caller then shuts the VM down cleanly).
pub async fn attach(vm: &BootedVm, request: ExecRequest) -> Result<i32> {
    let tty = request.tty.is_some();
    let mut session = vm.exec(request).await?;
    let _raw = if tty { RawMode::enable()? } else { None };
    let input = tokio::spawn(forward_stdin(session.control()));
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut winch = signal(SignalKind::window_change())?;
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
                Some(ExecEvent::Exited(status)) => break status.shell_code(),
                Some(ExecEvent::SpawnFailed(f)) => {
                    eprintln!("msb: {}", f.message);
                    break f.kind.exit_code();
                }
                None => break crate::EXIT_MSB_ERROR,
            },
            _ = winch.recv(), if tty => { let _ = session.control().resize(terminal::window_size()).await; }
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

async fn forward_stdin(control: ExecControl) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; msb_protocol::MAX_CHUNK];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if control.write_stdin(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = control.close_stdin().await;
}
