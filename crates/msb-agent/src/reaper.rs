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
