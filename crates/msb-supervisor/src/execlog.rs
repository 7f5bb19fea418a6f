//! The exec log: one line when each session starts and one when it ends, plus the
//! sandbox's own events (started, stopped and why), in `logs/exec.log`.

use msb_protocol::{ExecRequest, ExitStatus};
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

    /// Records the start of a session and returns its number in this log.
    pub fn started(&self, req: &ExecRequest) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let argv = serde_json::to_string(&req.argv).unwrap_or_default();
        let user = req.user.as_deref().unwrap_or("root");
        let cwd = req.workdir.as_deref().unwrap_or("/");
        let tty = if req.tty.is_some() { " tty" } else { "" };
        self.note(&format!("exec#{n} start{tty} user={user} cwd={cwd} argv={argv}"));
        n
    }

    /// Records how session `n` ended.
    pub fn ended(&self, n: u64, outcome: &str, took: Duration) {
        self.note(&format!("exec#{n} {outcome} after {:.3}s", took.as_secs_f64()));
    }
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
        let req = ExecRequest {
            argv: vec!["echo".into(), "hi there".into()],
            env: Vec::new(),
            workdir: None,
            user: None,
            tty: None,
            stdin: Default::default(),
            rlimits: Vec::new(),
        };
        let n = log.started(&req);
        log.ended(n, &describe(ExitStatus::Code(3)), Duration::from_millis(1500));
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
