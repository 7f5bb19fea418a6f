//! The single place that reaps children: PID 1 must collect orphans, and sessions learn
//! their process's exit status from here (so nothing else may call `wait`).

use msb_protocol::ExitStatus;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// Who is waiting for which pid. Registration happens right after `spawn`, with no await in
/// between, so on the single-threaded runtime the reaper can never see the pid first.
#[derive(Debug, Default, Clone)]
pub struct Reaper {
    waiting: Rc<RefCell<HashMap<i32, oneshot::Sender<ExitStatus>>>>,
}

impl Reaper {
    /// Returns a receiver that gets `pid`'s exit status.
    pub fn watch(&self, pid: i32) -> oneshot::Receiver<ExitStatus> {
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(pid, tx);
        rx
    }

    /// Reaps children on every SIGCHLD, forever.
    pub async fn run(self) -> std::io::Result<()> {
        let mut sigchld = signal(SignalKind::child())?;
        loop {
            self.reap_all();
            sigchld.recv().await;
        }
    }

    fn reap_all(&self) {
        loop {
            let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, ExitStatus::Signal(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if let Some(tx) = self.waiting.borrow_mut().remove(&pid.as_raw()) {
                let _ = tx.send(status);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    const ALONE: &str = "MSB_AGENT_TEST_ALONE";

    /// `waitpid(-1)` would collect the children of tests running beside this one, so the
    /// test runs again by itself in a process of its own, and passes if that run does.
    fn alone(name: &str) -> bool {
        if std::env::var_os(ALONE).is_some() {
            return true;
        }
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} failed in its own process:\n{text}");
        assert!(text.contains("1 passed"), "{name} did not run:\n{text}");
        false
    }

    fn start(script: &str) -> i32 {
        let child = Command::new("sh").args(["-c", script]).stdin(Stdio::null()).spawn();
        child.unwrap().id() as i32
    }

    #[test]
    fn every_child_is_reaped_and_watchers_get_their_status() {
        if !alone("reaper::tests::every_child_is_reaped_and_watchers_get_their_status") {
            return;
        }
        let reaper = Reaper::default();
        let watched = [
            (start("exit 0"), ExitStatus::Code(0)),
            (start("exit 3"), ExitStatus::Code(3)),
            (start("kill -9 $$"), ExitStatus::Signal(9)),
        ];
        let orphan = start("exit 7");
        let statuses: Vec<_> = watched.iter().map(|(pid, _)| reaper.watch(*pid)).collect();
        // All four are zombies before the reaper runs: its first pass must take them all,
        // as no SIGCHLD will come for them once it listens.
        std::thread::sleep(Duration::from_millis(500));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            tokio::task::spawn_local(reaper.clone().run());
            for ((pid, want), status) in watched.iter().zip(statuses) {
                let got = tokio::time::timeout(Duration::from_secs(10), status).await;
                assert_eq!(got.expect("status never came").unwrap(), *want, "pid {pid}");
            }
        });
        assert!(
            !std::path::Path::new(&format!("/proc/{orphan}")).exists(),
            "an unwatched child was left a zombie"
        );
    }
}
