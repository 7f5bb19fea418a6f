//! Host side of the protocol: handshake, then many concurrent exec sessions over one channel.
//!
//! A reader task routes incoming frames to their session; a writer task owns the write half.
//! Output credit is granted back to the agent only as the caller consumes events, so a guest
//! that floods stdout is held back by the window instead of filling host memory.

use crate::{
    ExecRequest, ExitStatus, Frame, FrameCodec, GuestConfig, Hello, Message, ProtocolError, Ready, SpawnFailure,
    StreamKind, WindowSize, CONTROL_SESSION, MAX_CHUNK, PROTOCOL_VERSION, STREAM_WINDOW,
};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

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

struct Route {
    events: mpsc::UnboundedSender<Message>,
    stdin_credit: Arc<Semaphore>,
}

type Routes = Arc<Mutex<HashMap<u32, Route>>>;

/// A connection to a guest agent that has completed the handshake.
#[derive(Debug)]
pub struct AgentClient {
    out: mpsc::Sender<Frame>,
    routes: Routes,
    next_id: AtomicU32,
    ready: Ready,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Route")
    }
}

impl AgentClient {
    /// Performs the handshake on `stream` and starts the routing tasks.
    pub async fn handshake<S>(stream: S, config: GuestConfig) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let mut reader = FramedRead::new(rd, FrameCodec);
        let mut writer = FramedWrite::new(wr, FrameCodec);
        let hello = Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            config,
        });
        writer.send(Frame::new(CONTROL_SESSION, hello)).await?;
        let ready = match reader.next().await.transpose()? {
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
        let (out, out_rx) = mpsc::channel(64);
        let routes: Routes = Arc::default();
        tokio::spawn(write_loop(writer, out_rx));
        tokio::spawn(read_loop(reader, routes.clone()));
        Ok(AgentClient {
            out,
            routes,
            next_id: AtomicU32::new(1),
            ready,
        })
    }

    /// The agent's handshake answer (version, boot timings).
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Starts a process in the guest.
    pub async fn exec(&self, req: ExecRequest) -> Result<ExecSession, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, events) = mpsc::unbounded_channel();
        let stdin_credit = Arc::new(Semaphore::new(STREAM_WINDOW as usize));
        let route = Route {
            events: tx,
            stdin_credit: stdin_credit.clone(),
        };
        self.routes
            .lock()
            .map_err(|_| ClientError::Disconnected)?
            .insert(id, route);
        let control = ExecControl {
            id,
            out: self.out.clone(),
            stdin_credit,
        };
        control.send(Message::Exec(req)).await?;
        Ok(ExecSession {
            events,
            control,
            unacked: [0, 0],
            finished: false,
        })
    }

    /// Asks the agent to stop all processes, sync and power the VM off.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        let frame = Frame::new(CONTROL_SESSION, Message::Shutdown);
        self.out.send(frame).await.map_err(|_| ClientError::Disconnected)
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut writer: FramedWrite<W, FrameCodec>, mut rx: mpsc::Receiver<Frame>) {
    while let Some(frame) = rx.recv().await {
        if let Err(e) = writer.send(frame).await {
            tracing::debug!("agent channel write failed: {e}");
            break;
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: FramedRead<R, FrameCodec>, routes: Routes) {
    while let Some(next) = reader.next().await {
        let frame = match next {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!("agent channel: {e}");
                break;
            }
        };
        let Ok(mut map) = routes.lock() else { break };
        let Some(route) = map.get(&frame.id) else {
            tracing::debug!("frame for unknown session {}: {:?}", frame.id, frame.msg);
            continue;
        };
        match frame.msg {
            Message::Credit {
                stream: StreamKind::Stdin,
                bytes,
            } => {
                route.stdin_credit.add_permits(bytes as usize);
            }
            msg => {
                let last = matches!(msg, Message::Exited(_) | Message::SpawnFailed(_) | Message::Error(_));
                let _ = route.events.send(msg);
                if last {
                    map.remove(&frame.id);
                }
            }
        }
    }
    // Dropping the routes closes every session's event channel: they see Disconnected.
    if let Ok(mut map) = routes.lock() {
        for (_, route) in map.drain() {
            route.stdin_credit.close();
        }
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
}

/// A running process in the guest: a stream of [`ExecEvent`]s plus its [`ExecControl`].
#[derive(Debug)]
pub struct ExecSession {
    events: mpsc::UnboundedReceiver<Message>,
    control: ExecControl,
    unacked: [u32; 2],
    finished: bool,
}

impl ExecSession {
    /// The input side, to be moved into another task.
    pub fn control(&self) -> ExecControl {
        self.control.clone()
    }

    /// The next event; `Ok(None)` after `Exited`/`SpawnFailed` has been returned.
    pub async fn next(&mut self) -> Result<Option<ExecEvent>, ClientError> {
        self.grant_credit().await?;
        if self.finished {
            return Ok(None);
        }
        let Some(msg) = self.events.recv().await else {
            return Err(ClientError::Disconnected);
        };
        let event = match msg {
            Message::Started { pid } => ExecEvent::Started(pid),
            Message::Stdout(data) => {
                self.unacked[0] += data.len() as u32;
                ExecEvent::Stdout(data)
            }
            Message::Stderr(data) => {
                self.unacked[1] += data.len() as u32;
                ExecEvent::Stderr(data)
            }
            Message::Exited(status) => ExecEvent::Exited(status),
            Message::SpawnFailed(f) => ExecEvent::SpawnFailed(f),
            Message::Error(e) => return Err(ClientError::Rejected(e)),
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        };
        self.finished = matches!(event, ExecEvent::Exited(_) | ExecEvent::SpawnFailed(_));
        Ok(Some(event))
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
