//! Attached sessions (`run`, `exec`, `shell`): the terminal flags, and what happens to the
//! sandbox when the session ends or the user detaches.

use crate::output::notice;
use anyhow::Result;
use microsandbox::{DetachKeys, ExecOptions, MicrosandboxResult, Sandbox, DETACHED};

/// How the session uses this terminal.
#[derive(clap::Args, Debug)]
pub struct TerminalArgs {
    /// Allocate a pseudo-terminal and attach the host terminal to it (raw mode).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keys that detach from a terminal session and leave its process running: ctrl-<c> or
    /// one character, comma-separated (e.g. ctrl-p,ctrl-q) [default: ctrl-]].
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<DetachKeys>,
}

impl TerminalArgs {
    /// `opts` with the terminal settings: a PTY of this terminal's size when `tty`.
    pub fn apply(&self, opts: ExecOptions, tty: bool) -> ExecOptions {
        ExecOptions {
            tty: tty.then(microsandbox::terminal_size),
            detach_keys: self.detach_keys.clone(),
            ..opts
        }
    }
}

/// Ends an attached session. A sandbox started for it (`started_here`) is stopped again,
/// unless the user detached: then it keeps running with the process, and msb exits 0.
pub async fn end_session(sb: Sandbox, outcome: MicrosandboxResult<i32>, started_here: bool) -> Result<i32> {
    if matches!(outcome, Ok(DETACHED)) {
        let name = sb.name().to_string();
        if started_here {
            sb.detach().await?;
        }
        notice(&format!(
            "detached: the process runs on in sandbox '{name}' (`msb stop {name}` ends it)"
        ));
        return Ok(0);
    }
    if started_here {
        sb.stop().await?;
    }
    Ok(outcome?)
}
