//! Processes in a sandbox: collected output, or a stream of events with stdin.

use crate::{MicrosandboxError, MicrosandboxResult};
use msb_protocol::client::{ExecControl, ExecEvent, ExecSession};
use msb_protocol::{ExitStatus, SpawnFailure};
use std::time::Duration;

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
    /// It could not be started (not found, not executable, bad user or directory …).
    SpawnFailed(SpawnFailure),
}

impl ExecStatus {
    /// The status a shell would report: the code, 128 + the signal, or 127/126/125 for a
    /// program not found / not executable / otherwise not started.
    pub fn code(&self) -> i32 {
        match self {
            ExecStatus::Exited(c) => ExitStatus::Code(*c).shell_code(),
            ExecStatus::Signaled(s) => ExitStatus::Signal(*s).shell_code(),
            ExecStatus::SpawnFailed(f) => f.kind.exit_code(),
        }
    }

    /// Whether the process exited with code 0.
    pub fn success(&self) -> bool {
        *self == ExecStatus::Exited(0)
    }
}

impl From<ExitStatus> for ExecStatus {
    fn from(s: ExitStatus) -> Self {
        match s {
            ExitStatus::Code(c) => ExecStatus::Exited(c),
            ExitStatus::Signal(s) => ExecStatus::Signaled(s),
        }
    }
}

/// Everything a finished process wrote, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// How it ended.
    pub status: ExecStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error (empty on a terminal, where both streams are one).
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Whether the process exited with code 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl Drop for ExecHandle {
    fn drop(&mut self) {
        if !self.kill_on_drop || self.ended {
            return;
        }
        let control = self.session.control();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = control.signal(libc::SIGKILL).await;
            });
        }
    }
}

/// A running process: its events, its input, signals.
#[derive(Debug)]
pub struct ExecHandle {
    session: ExecSession,
    pid: Option<u32>,
    /// The process is killed when this passes (its timeout), and `recv` then reports it.
    deadline: Option<(tokio::time::Instant, Duration)>,
    timed_out: bool,
    /// It has reported how it ended.
    ended: bool,
    /// Kill the process if this handle is dropped before it ended.
    kill_on_drop: bool,
}

/// The input side of a running process; cheap to clone, usable from another task.
#[derive(Debug, Clone)]
pub struct ExecSink {
    control: ExecControl,
}

impl ExecSink {
    /// Writes to the process's stdin, waiting while earlier input is not consumed yet.
    pub async fn write(&self, data: &[u8]) -> MicrosandboxResult<()> {
        Ok(self.control.write_stdin(data).await?)
    }

    /// Closes the process's stdin (it reads end of file).
    pub async fn close(&self) -> MicrosandboxResult<()> {
        Ok(self.control.close_stdin().await?)
    }

    /// Tells the process's PTY its new window size (no effect without a PTY).
    pub async fn resize(&self, size: msb_protocol::WindowSize) -> MicrosandboxResult<()> {
        Ok(self.control.resize(size).await?)
    }

    /// Sends signal `sig` to the process.
    pub async fn signal(&self, sig: i32) -> MicrosandboxResult<()> {
        Ok(self.control.signal(sig).await?)
    }
}

impl ExecHandle {
    pub(crate) fn new(session: ExecSession, timeout: Option<Duration>) -> ExecHandle {
        ExecHandle {
            session,
            pid: None,
            deadline: timeout.map(|t| (tokio::time::Instant::now() + t, t)),
            timed_out: false,
            ended: false,
            kill_on_drop: false,
        }
    }

    /// Makes dropping this handle before the process ended kill it (SIGKILL): for a
    /// caller that goes away, such as an HTTP client that disconnects mid-exec.
    pub fn kill_on_drop(mut self) -> Self {
        self.kill_on_drop = true;
        self
    }

    /// The next event: output chunks in order per stream, then exactly one `Exited` or
    /// `SpawnFailed`; `None` after that. A process with a timeout that passes is killed, and
    /// instead of its `Exited` this returns [`MicrosandboxError::ExecTimeout`].
    pub async fn recv(&mut self) -> MicrosandboxResult<Option<ExecEvent>> {
        let event = match self.deadline.filter(|_| !self.timed_out) {
            Some((at, _)) => match tokio::time::timeout_at(at, self.session.next()).await {
                Ok(event) => event?,
                Err(_) => {
                    self.timed_out = true;
                    self.session.control().signal(libc::SIGKILL).await?;
                    self.session.next().await?
                }
            },
            None => self.session.next().await?,
        };
        if let (true, Some(ExecEvent::Exited(_)), Some((_, limit))) = (self.timed_out, &event, self.deadline) {
            return Err(MicrosandboxError::ExecTimeout(limit));
        }
        match event {
            Some(ExecEvent::Started(pid)) => self.pid = Some(pid),
            Some(ExecEvent::Exited(_) | ExecEvent::SpawnFailed(_)) | None => self.ended = true,
            _ => {}
        }
        Ok(event)
    }

    /// The guest pid, once the `Started` event has been received.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The process's input.
    pub fn stdin(&self) -> ExecSink {
        ExecSink {
            control: self.session.control(),
        }
    }

    /// Sends signal `sig` to the process.
    pub async fn signal(&self, sig: i32) -> MicrosandboxResult<()> {
        Ok(self.session.control().signal(sig).await?)
    }

    /// Kills the process (SIGKILL).
    pub async fn kill(&self) -> MicrosandboxResult<()> {
        self.signal(libc::SIGKILL).await
    }

    /// Reads everything that remains and returns it with the status.
    pub async fn collect(mut self) -> MicrosandboxResult<ExecOutput> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(event) = self.recv().await? {
            match event {
                ExecEvent::Stdout(b) => stdout.extend(b),
                ExecEvent::Stderr(b) => stderr.extend(b),
                ExecEvent::Started(_) => {}
                ExecEvent::Exited(s) => {
                    return Ok(ExecOutput {
                        status: s.into(),
                        stdout,
                        stderr,
                    })
                }
                ExecEvent::SpawnFailed(f) => {
                    return Ok(ExecOutput {
                        status: ExecStatus::SpawnFailed(f),
                        stdout,
                        stderr,
                    })
                }
            }
        }
        Err(MicrosandboxError::Agent(
            msb_protocol::client::ClientError::Disconnected,
        ))
    }

    /// Like [`ExecHandle::collect`], but kills the process if it has not ended after `timeout`
    /// (from now) and returns [`MicrosandboxError::ExecTimeout`].
    pub async fn collect_within(mut self, timeout: Duration) -> MicrosandboxResult<ExecOutput> {
        self.deadline = Some((tokio::time::Instant::now() + timeout, timeout));
        self.collect().await
    }

    /// Waits for the process to end, discarding its output.
    pub async fn wait(self) -> MicrosandboxResult<ExecStatus> {
        Ok(self.collect().await?.status)
    }
}
