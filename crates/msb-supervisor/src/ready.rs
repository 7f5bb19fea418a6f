//! The one line a starting supervisor prints on its stdout (a pipe its starter reads):
//! either how it started, or why it could not.

use serde::{Deserialize, Serialize};
use std::io::Write;

/// The supervisor's report to whoever started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyLine {
    /// The supervisor's pid.
    pub pid: u32,
    /// The VMM's pid, once running.
    pub vmm_pid: Option<u32>,
    /// Launch to agent ready, milliseconds.
    pub boot_ms: u64,
    /// Why KVM is not in use, when it is not.
    pub accel_note: Option<String>,
    /// Why the sandbox could not start; `None` on success.
    pub error: Option<String>,
}

impl ReadyLine {
    /// Writes the line to stdout, then points stdout at /dev/null so the reader sees the
    /// end of the pipe. Returns whether the line was written (false: nobody was reading).
    pub fn emit(&self) -> bool {
        let mut out = std::io::stdout().lock();
        let written = serde_json::to_string(self)
            .map(|json| writeln!(out, "{json}").and_then(|()| out.flush()).is_ok())
            .unwrap_or(false);
        drop(out);
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            let _ = rustix::stdio::dup2_stdout(&null);
        }
        written
    }
}
