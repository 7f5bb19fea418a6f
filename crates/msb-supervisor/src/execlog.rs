//! The exec log: one line when each session (a process or a file operation) starts and one
//! when it ends, plus the sandbox's own events (started, stopped and why), in
//! `logs/exec.log`.

use msb_protocol::{ExecRequest, ExitStatus, FsRequest};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// An append-only log file shared by the supervisor's tasks.
#[derive(Debug)]
pub struct ExecLog {
    file: Mutex<File>,
    next: AtomicU64,
}

impl ExecLog {
    /// Opens (creating) the log at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<ExecLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ExecLog {
            file: Mutex::new(file),
            next: AtomicU64::new(1),
        })
    }

    /// Writes one timestamped line; a failing log never stops the sandbox.
    pub fn note(&self, text: &str) {
        let stamp = humantime::format_rfc3339_millis(SystemTime::now());
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{stamp} {text}");
        }
    }

    /// Records the start of a process and returns its entry in this log.
    pub fn started(&self, req: &ExecRequest) -> LogEntry {
        let argv = serde_json::to_string(&req.argv).unwrap_or_default();
        let user = req.user.as_deref().unwrap_or("root");
        let cwd = req.workdir.as_deref().unwrap_or("/");
        let tty = if req.tty.is_some() { " tty" } else { "" };
        self.start("exec", &format!("{tty} user={user} cwd={cwd} argv={argv}"))
    }

    /// Records the start of a file operation and returns its entry in this log.
    pub fn started_fs(&self, req: &FsRequest) -> LogEntry {
        let user = req.user.as_deref().unwrap_or("root");
        let what = serde_json::to_string(&req.op.describe()).unwrap_or_default();
        self.start("fs", &format!(" user={user} op={what}"))
    }

    fn start(&self, kind: &'static str, details: &str) -> LogEntry {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.note(&format!("{kind}#{n} start{details}"));
        LogEntry { kind, n }
    }

    /// Records how a session ended.
    pub fn ended(&self, entry: LogEntry, outcome: &str, took: Duration) {
        let LogEntry { kind, n } = entry;
        self.note(&format!("{kind}#{n} {outcome} after {:.3}s", took.as_secs_f64()));
    }
}

/// A session's line in the log: its kind and number.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry {
    kind: &'static str,
    n: u64,
}

/// How an exit status reads in the log.
pub fn describe(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("exit {c}"),
        ExitStatus::Signal(s) => format!("killed by signal {s}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_timestamped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exec.log");
        let log = ExecLog::open(&path).unwrap();
        let req = ExecRequest::new(["echo", "hi there"]);
        let entry = log.started(&req);
        log.ended(entry, &describe(ExitStatus::Code(3)), Duration::from_millis(1500));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with("exec#1 start user=root cwd=/ argv=[\"echo\",\"hi there\"]"),
            "{text}"
        );
        assert!(lines[1].ends_with("exec#1 exit 3 after 1.500s"), "{text}");
        assert!(lines[0].starts_with("20"), "{text}");
    }
}
