//! One exec session: pumps the process's output to the host under credit, feeds it input,
//! forwards signals and resizes, and reports the exit status after the last output byte.

use crate::spawn::{winsize, ChildIo, Spawned};
use msb_protocol::{ExitStatus, Frame, Message, StreamKind, MAX_CHUNK, STREAM_WINDOW};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::spawn_local;

/// Everything a session needs to talk to the host.
#[derive(Debug, Clone)]
pub struct Link {
    /// Session id.
    pub id: u32,
    /// Outbound frames.
    pub out: mpsc::Sender<Frame>,
}

impl Link {
    /// Sends `msg` on this session; false once the host's side is gone.
    pub async fn send(&self, msg: Message) -> bool {
        self.out.send(Frame::new(self.id, msg)).await.is_ok()
    }
}

/// How many sessions are running; each holds an [`Active`] until it has reported its exit.
#[derive(Debug, Clone, Default)]
pub struct Sessions(Rc<Cell<usize>>);

impl Sessions {
    /// Counts one more session, until the returned guard is dropped.
    pub fn enter(&self) -> Active {
        self.0.set(self.0.get() + 1);
        Active(self.0.clone())
    }

    /// Sessions running now.
    pub fn active(&self) -> usize {
        self.0.get()
    }
}

/// One running session, counted in [`Sessions`].
#[derive(Debug)]
pub struct Active(Rc<Cell<usize>>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Runs the session until its process has exited and its output is drained.
pub async fn run(
    link: Link,
    child: Spawned,
    exit: oneshot::Receiver<ExitStatus>,
    mut inbox: mpsc::UnboundedReceiver<Message>,
    _active: Active,
) {
    let pid = child.pid;
    if !link.send(Message::Started { pid: pid as u32 }).await {
        return;
    }
    let (exited_tx, exited) = watch::channel(false);
    let credit = Credit::default();
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let io = match SessionIo::new(child.io) {
        Ok(io) => io,
        Err(e) => {
            crate::log(&format!("session {}: {e}", link.id));
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            SessionIo {
                pumps: Vec::new(),
                input: None,
                pty: None,
            }
        }
    };
    let tasks: Vec<_> = io
        .pumps
        .into_iter()
        .map(|(fd, kind)| spawn_local(pump(fd, kind, credit.semaphore(kind), link.clone(), exited.clone())))
        .collect();
    let feeder = io.input.map(|fd| spawn_local(feed(fd, stdin_rx, link.clone())));
    let mut stdin_tx = Some(stdin_tx);
    let mut exit = std::pin::pin!(exit);
    let status = loop {
        tokio::select! {
            status = &mut exit => break status.unwrap_or(ExitStatus::Code(255)),
            msg = inbox.recv() => match msg {
                Some(Message::Stdin(data)) => { if let Some(tx) = &stdin_tx { let _ = tx.send(data); } }
                Some(Message::StdinEof) => stdin_tx = None,
                Some(Message::Signal(sig)) => {
                    if let Ok(sig) = Signal::try_from(sig) { let _ = kill(Pid::from_raw(pid), sig); }
                }
                Some(Message::Resize(size)) => {
                    if let Some(master) = &io.pty { set_winsize(master.get_ref(), size); }
                }
                Some(msg) => credit.apply(&msg),
                None => std::future::pending::<()>().await,
            },
        }
    };
    let _ = exited_tx.send(true);
    // Keep granting credit while the last output drains.
    let mut drain = std::pin::pin!(futures::future::join_all(tasks));
    loop {
        tokio::select! {
            _ = &mut drain => break,
            msg = inbox.recv() => match msg {
                Some(msg) => credit.apply(&msg),
                None => std::future::pending::<()>().await,
            },
        }
    }
    if let Some(f) = feeder {
        f.abort();
    }
    link.send(Message::Exited(status)).await;
}

/// Output credit the host has granted, per stream.
#[derive(Debug)]
pub struct Credit {
    stdout: Arc<Semaphore>,
    stderr: Arc<Semaphore>,
}

impl Default for Credit {
    fn default() -> Self {
        let window = || Arc::new(Semaphore::new(STREAM_WINDOW as usize));
        Credit {
            stdout: window(),
            stderr: window(),
        }
    }
}

impl Credit {
    /// The window of `kind`'s output.
    pub fn semaphore(&self, kind: StreamKind) -> Arc<Semaphore> {
        if kind == StreamKind::Stderr {
            self.stderr.clone()
        } else {
            self.stdout.clone()
        }
    }

    /// Adds the credit a `Credit` message grants; other messages are ignored.
    pub fn apply(&self, msg: &Message) {
        if let Message::Credit {
            stream: stream @ (StreamKind::Stdout | StreamKind::Stderr),
            bytes,
        } = msg
        {
            self.semaphore(*stream).add_permits(*bytes as usize);
        }
    }
}

/// The session's ends of the process's streams, registered with the reactor.
struct SessionIo {
    /// Output streams to copy to the host.
    pumps: Vec<(Rc<AsyncFd<OwnedFd>>, StreamKind)>,
    /// Where host input goes.
    input: Option<Rc<AsyncFd<OwnedFd>>>,
    /// The PTY master, for resizes.
    pty: Option<Rc<AsyncFd<OwnedFd>>>,
}

impl SessionIo {
    fn new(io: ChildIo) -> io::Result<SessionIo> {
        Ok(match io {
            ChildIo::Pipes { stdin, stdout, stderr } => SessionIo {
                pumps: vec![
                    (async_fd(stdout)?, StreamKind::Stdout),
                    (async_fd(stderr)?, StreamKind::Stderr),
                ],
                input: stdin.map(async_fd).transpose()?,
                pty: None,
            },
            ChildIo::Pty { master } => {
                let master = async_fd(master)?;
                SessionIo {
                    pumps: vec![(master.clone(), StreamKind::Stdout)],
                    input: Some(master.clone()),
                    pty: Some(master),
                }
            }
        })
    }
}

fn async_fd(fd: OwnedFd) -> io::Result<Rc<AsyncFd<OwnedFd>>> {
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
    // SAFETY: an OwnedFd is a valid open descriptor that nothing else closes; it lives inside
    // the AsyncFd and is closed only when the AsyncFd is dropped.
    let registered = unsafe { AsyncFd::register(fd) }?;
    Ok(Rc::new(registered))
}

/// One non-blocking read; `Ok(0)` is end of stream (EIO on a PTY master means the same).
fn read_now(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    match nix::unistd::read(fd.get_ref().as_raw_fd(), buf) {
        Ok(n) => Ok(n),
        Err(nix::errno::Errno::EIO) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Copies one output stream to the host. After the process exits it only drains what is
/// already buffered, so a background child holding the stream open cannot delay the exit.
async fn pump(
    fd: Rc<AsyncFd<OwnedFd>>,
    kind: StreamKind,
    credit: Arc<Semaphore>,
    link: Link,
    mut exited: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        let n = if *exited.borrow() {
            match read_now(&fd, &mut buf) {
                Ok(n) => n,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                guard = fd.readable() => {
                    let Ok(mut guard) = guard else { return };
                    match guard.try_io(|fd| read_now(fd, &mut buf)) {
                        Ok(Ok(n)) => n,
                        Ok(Err(_)) => return,
                        Err(_would_block) => continue,
                    }
                }
                _ = exited.wait_for(|e| *e) => continue,
            }
        };
        if n == 0 {
            return;
        }
        // n <= MAX_CHUNK < STREAM_WINDOW, so the wait always ends once the host consumes.
        match credit.acquire_many(n as u32).await {
            Ok(permits) => permits.forget(),
            Err(_) => return,
        }
        let data = buf[..n].to_vec();
        let msg = if kind == StreamKind::Stderr {
            Message::Stderr(data)
        } else {
            Message::Stdout(data)
        };
        if !link.send(msg).await {
            return;
        }
    }
}

/// Writes host input to the process and grants the host credit once it is written.
async fn feed(fd: Rc<AsyncFd<OwnedFd>>, mut rx: mpsc::UnboundedReceiver<Vec<u8>>, link: Link) {
    let mut broken = false;
    while let Some(data) = rx.recv().await {
        if !broken && write_all(&fd, &data).await.is_err() {
            // The process closed its stdin: discard further input but keep the host unblocked.
            broken = true;
        }
        let bytes = data.len() as u32;
        link.send(Message::Credit {
            stream: StreamKind::Stdin,
            bytes,
        })
        .await;
    }
    // Input ended; dropping our reference closes a pipe (a PTY master stays open for output).
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

fn set_winsize(master: &OwnedFd, size: msb_protocol::WindowSize) {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads a valid `winsize` from the pointer for the duration of the call.
    unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws as *const _);
    }
}

#[cfg(test)]
mod tests;
