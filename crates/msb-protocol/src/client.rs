//! Host side of the protocol: handshake, then many concurrent exec sessions over one channel.
//!
//! A reader task routes incoming frames to their session; a writer task owns the write half.
//! Output credit is granted back to the agent only as the caller consumes events, so a guest
//! that floods stdout is held back by the window instead of filling host memory.

use crate::codec::frame_len;
use crate::mux::Mux;
use crate::{
    ExecRequest, ExitStatus, Frame, FrameCodec, Hello, Message, ProtocolError, Ready, ShutdownRequest, SpawnFailure,
    StreamKind, WindowSize, CONTROL_SESSION, MAX_CHUNK, MAX_FRAME_LEN, PROTOCOL_VERSION, STREAM_WINDOW,
};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Where a resumed guest's host starts its session ids: from here, plus up to
/// [`RESUMED_FIRST_ID_SPAN`] drawn from the host's randomness.
const RESUMED_FIRST_ID: u32 = 1 << 31;
const RESUMED_FIRST_ID_SPAN: u32 = 1 << 30;

/// Errors seen by a host-side client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The wire protocol failed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The agent speaks another protocol version.
    #[error("guest agent speaks protocol v{agent}, this msb speaks v{host}: rebuild the agent (cargo xtask agent)")]
    VersionMismatch {
        /// Our version.
        host: u32,
        /// The agent's version.
        agent: u32,
    },
    /// The agent refused the request.
    #[error("guest agent: {0}")]
    Rejected(String),
    /// The channel closed before the exchange finished.
    #[error("the guest agent closed the connection (the VM may have stopped; see its console log)")]
    Disconnected,
    /// The agent sent something that makes no sense here.
    #[error("unexpected message from guest agent: {0}")]
    Unexpected(String),
    /// A file operation failed in the guest.
    #[error(transparent)]
    Fs(crate::FsFailure),
    /// A request does not fit in one frame.
    #[error("{what} take {size} bytes encoded; the limit is {} bytes (1 MiB): pass large data through stdin or a file instead", crate::MAX_FRAME_LEN)]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its encoded size.
        size: usize,
    },
}

/// What a running exec reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// The process started with this guest pid.
    Started(u32),
    /// Output on stdout (or the PTY).
    Stdout(Vec<u8>),
    /// Output on stderr.
    Stderr(Vec<u8>),
    /// The process ended; nothing follows.
    Exited(ExitStatus),
    /// The process could not be started; nothing follows.
    SpawnFailed(SpawnFailure),
}

/// A connection to a guest agent (directly, or through a sandbox's supervisor) that has
/// completed the handshake.
#[derive(Debug)]
pub struct AgentClient {
    mux: Arc<Mux>,
    ready: Ready,
}

impl AgentClient {
    /// Performs the agent handshake on `stream` (sending the guest's configuration and the
    /// host's clock) and starts the routing tasks.
    pub async fn handshake<S>(stream: S, hello: Hello) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        // A guest resumed from a snapshot still runs the sessions of the host that saved
        // it (their ids counted from 1): this host's ids start far from those, somewhere
        // the saved host's did not reach, so no old session's output lands in a new one.
        let first_id = match hello.resumed {
            true => {
                let seed = hello.entropy.iter().take(4).fold(0u32, |n, b| n << 8 | u32::from(*b));
                RESUMED_FIRST_ID + seed % RESUMED_FIRST_ID_SPAN
            }
            false => 1,
        };
        Self::open(stream, Message::Hello(hello), first_id).await
    }

    /// Connects to a sandbox's supervisor on `stream`; with `owner`, the sandbox stops when
    /// this client goes away.
    pub async fn connect<S>(stream: S, owner: bool) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let connect = Message::Connect {
            version: PROTOCOL_VERSION,
            owner,
        };
        Self::open(stream, connect, 1).await
    }

    async fn open<S>(stream: S, first: Message, first_id: u32) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let mut reader = FramedRead::new(rd, FrameCodec);
        let mut writer = FramedWrite::new(wr, FrameCodec);
        writer.send(Frame::new(CONTROL_SESSION, first)).await?;
        // A resumed guest's old sessions may speak first; only the control session answers.
        let mut answer = reader.next().await.transpose()?;
        while answer.as_ref().is_some_and(|f| f.id != CONTROL_SESSION) {
            answer = reader.next().await.transpose()?;
        }
        let ready = match answer {
            Some(Frame {
                msg: Message::Ready(ready),
                ..
            }) => ready,
            Some(Frame {
                msg: Message::Error(e), ..
            }) => return Err(ClientError::Rejected(e)),
            Some(other) => return Err(ClientError::Unexpected(format!("{:?}", other.msg))),
            None => return Err(ClientError::Disconnected),
        };
        if ready.version != PROTOCOL_VERSION {
            return Err(ClientError::VersionMismatch {
                host: PROTOCOL_VERSION,
                agent: ready.version,
            });
        }
        Ok(AgentClient {
            mux: Mux::start(reader, writer, first_id),
            ready,
        })
    }

    /// The connection's multiplexer, for relaying raw sessions.
    pub fn mux(&self) -> &Arc<Mux> {
        &self.mux
    }

    /// The agent's handshake answer (version, boot timings).
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Starts a process in the guest. A request too big for one frame (a huge argv or
    /// environment) is refused here, before anything is sent.
    pub async fn exec(&self, req: ExecRequest) -> Result<ExecSession, ClientError> {
        let stream = self
            .open_stream(Message::Exec(req), "the command's arguments and environment")
            .await?;
        Ok(ExecSession {
            stream,
            finished: false,
        })
    }

    /// Opens a session with stdin credit and sends `msg` on it (size-checked as `what`).
    pub(crate) async fn open_stream(&self, msg: Message, what: &'static str) -> Result<SessionStream, ClientError> {
        let size = frame_len(&msg)?;
        if size > MAX_FRAME_LEN {
            return Err(ClientError::TooLarge { what, size });
        }
        let stdin_credit = Arc::new(Semaphore::new(STREAM_WINDOW as usize));
        let (id, events) = self.mux.open(Some(stdin_credit.clone()))?;
        let control = ExecControl {
            id,
            out: self.mux.sender(),
            stdin_credit,
        };
        control.send(msg).await?;
        Ok(SessionStream {
            events,
            control,
            unacked: [0, 0],
        })
    }

    /// Sends `msg` on a session of its own and returns the one answer.
    pub async fn request(&self, msg: Message) -> Result<Message, ClientError> {
        let (id, mut answers) = self.mux.open(None)?;
        self.mux.send(id, msg).await?;
        match answers.recv().await {
            Some(Message::Error(e)) => Err(ClientError::Rejected(e)),
            Some(answer) => Ok(answer),
            None => Err(ClientError::Disconnected),
        }
    }

    /// Asks the agent to stop all processes (`request.signal`, then SIGKILL after the grace
    /// period), sync and freeze its filesystems, and power the VM off. The receiver gets the
    /// agent's `ShutdownComplete` once it is done.
    pub async fn shutdown(&self, request: ShutdownRequest) -> Result<mpsc::UnboundedReceiver<Message>, ClientError> {
        let progress = self.mux.control_messages()?;
        self.mux.send(CONTROL_SESSION, Message::Shutdown(request)).await?;
        Ok(progress)
    }

    /// Whether the agent answers a ping within `within`.
    pub async fn ping(&self, within: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.request(Message::Ping)).await,
            Ok(Ok(Message::Pong))
        )
    }
}

/// Input side of an exec session; cheap to clone and usable from another task.
#[derive(Debug, Clone)]
pub struct ExecControl {
    id: u32,
    out: mpsc::Sender<Frame>,
    stdin_credit: Arc<Semaphore>,
}

impl ExecControl {
    async fn send(&self, msg: Message) -> Result<(), ClientError> {
        self.out
            .send(Frame::new(self.id, msg))
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    /// Sends stdin bytes, waiting for credit when the guest has not consumed earlier input.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), ClientError> {
        for chunk in data.chunks(MAX_CHUNK) {
            // MAX_CHUNK fits in u32; the permits are consumed, the agent grants them back.
            let permits = self
                .stdin_credit
                .acquire_many(chunk.len() as u32)
                .await
                .map_err(|_| ClientError::Disconnected)?;
            permits.forget();
            self.send(Message::Stdin(chunk.to_vec())).await?;
        }
        Ok(())
    }

    /// Signals end of input.
    pub async fn close_stdin(&self) -> Result<(), ClientError> {
        self.send(Message::StdinEof).await
    }

    /// Delivers a signal to the process.
    pub async fn signal(&self, signal: i32) -> Result<(), ClientError> {
        self.send(Message::Signal(signal)).await
    }

    /// Tells the guest PTY its new size.
    pub async fn resize(&self, size: WindowSize) -> Result<(), ClientError> {
        self.send(Message::Resize(size)).await
    }

    /// Lets go of the process: it runs on in the guest, its output discarded, and no longer
    /// ends when this connection closes. No more events arrive for the session.
    pub async fn release(&self) -> Result<(), ClientError> {
        self.send(Message::Release).await
    }
}

/// The incoming side of a session with output streams: messages as they come, output
/// credit granted back to the agent as the caller takes them.
#[derive(Debug)]
pub(crate) struct SessionStream {
    events: mpsc::UnboundedReceiver<Message>,
    pub(crate) control: ExecControl,
    unacked: [u32; 2],
}

impl SessionStream {
    /// The next message, after granting back the credit of what was taken before.
    pub(crate) async fn recv(&mut self) -> Result<Message, ClientError> {
        self.grant_credit().await?;
        let msg = self.events.recv().await.ok_or(ClientError::Disconnected)?;
        match msg.output_len() {
            Some((StreamKind::Stderr, len)) => self.unacked[1] += len,
            Some((_, len)) => self.unacked[0] += len,
            None => {}
        }
        Ok(msg)
    }

    /// Returns consumed output credit to the agent, batched unless the queue has run dry.
    async fn grant_credit(&mut self) -> Result<(), ClientError> {
        let idle = self.events.is_empty();
        for (i, stream) in [StreamKind::Stdout, StreamKind::Stderr].into_iter().enumerate() {
            let bytes = self.unacked[i];
            if bytes > 0 && (idle || bytes >= STREAM_WINDOW / 4) {
                self.unacked[i] = 0;
                self.control.send(Message::Credit { stream, bytes }).await?;
            }
        }
        Ok(())
    }
}

/// A running process in the guest: a stream of [`ExecEvent`]s plus its [`ExecControl`].
#[derive(Debug)]
pub struct ExecSession {
    stream: SessionStream,
    finished: bool,
}

impl ExecSession {
    /// The input side, to be moved into another task.
    pub fn control(&self) -> ExecControl {
        self.stream.control.clone()
    }

    /// The next event; `Ok(None)` after `Exited`/`SpawnFailed` has been returned.
    pub async fn next(&mut self) -> Result<Option<ExecEvent>, ClientError> {
        if self.finished {
            // What was taken last is still granted back.
            self.stream.grant_credit().await?;
            return Ok(None);
        }
        let event = match self.stream.recv().await? {
            Message::Started { pid } => ExecEvent::Started(pid),
            Message::Stdout(data) => ExecEvent::Stdout(data),
            Message::Stderr(data) => ExecEvent::Stderr(data),
            Message::Exited(status) if status.is_possible() => ExecEvent::Exited(status),
            Message::Exited(status) => {
                self.finished = true;
                return Err(ClientError::Unexpected(format!(
                    "the guest reported an impossible exit status ({status:?})"
                )));
            }
            Message::SpawnFailed(f) => ExecEvent::SpawnFailed(f),
            Message::Error(e) => return Err(ClientError::Rejected(e)),
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        };
        self.finished = matches!(event, ExecEvent::Exited(_) | ExecEvent::SpawnFailed(_));
        Ok(Some(event))
    }
}
