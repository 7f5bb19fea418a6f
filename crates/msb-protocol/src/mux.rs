//! One connection carrying many sessions: a reader task routes incoming frames to their
//! session's channel, a writer task owns the write half. Used by exec clients and by the
//! supervisor, which relays sessions between its clients and the agent.

use crate::client::ClientError;
use crate::{Frame, FrameCodec, Message, StreamKind};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Where the frames of one session go.
struct Route {
    events: mpsc::UnboundedSender<Message>,
    /// When set, stdin credit from the peer is added here instead of being delivered.
    stdin_credit: Option<Arc<Semaphore>>,
    /// Output bytes (stdout, stderr) the peer may still send: the window plus the credit
    /// granted since, less what it sent. `None` on the control session, whose output
    /// (console lines while shutting down) is not flow-controlled.
    output_allowed: Option<[u64; 2]>,
}

impl Route {
    /// Takes `len` bytes of `stream`'s allowance; false when the peer sent more than it
    /// was granted (a hostile or broken peer: its channel would otherwise grow without bound).
    fn take_output(&mut self, stream: usize, len: usize) -> bool {
        let Some(allowed) = &mut self.output_allowed else {
            return true;
        };
        match allowed[stream].checked_sub(len as u64) {
            Some(left) => {
                allowed[stream] = left;
                true
            }
            None => false,
        }
    }
}

/// Index of an output stream in [`Route::output_allowed`].
fn output_index(stream: StreamKind) -> Option<usize> {
    match stream {
        StreamKind::Stdout => Some(0),
        StreamKind::Stderr => Some(1),
        StreamKind::Stdin => None,
    }
}

/// The sessions of a connection; `None` once the connection has closed, so a session
/// opened after that fails at once instead of waiting for frames that cannot come.
type Routes = Arc<Mutex<Option<HashMap<u32, Route>>>>;

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed it, or reading it failed (a VM going away mid-frame looks like this).
    Ended,
    /// The peer broke the protocol: a malformed frame, or a length over the limit. Nothing
    /// after it can be trusted to be framed, so the connection was dropped.
    Broken(String),
}

/// A multiplexed connection.
pub struct Mux {
    out: mpsc::Sender<Frame>,
    routes: Routes,
    next_id: AtomicU32,
    closed: watch::Receiver<Option<Closed>>,
}

impl std::fmt::Debug for Mux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux").finish_non_exhaustive()
    }
}

impl Mux {
    /// Starts routing frames of an already opened (and handshaken) connection; its
    /// sessions get ids from `first_id` on.
    pub fn start<R, W>(reader: FramedRead<R, FrameCodec>, writer: FramedWrite<W, FrameCodec>, first_id: u32) -> Arc<Mux>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out, out_rx) = mpsc::channel(64);
        let routes: Routes = Arc::new(Mutex::new(Some(HashMap::new())));
        let (closed_tx, closed) = watch::channel(None);
        tokio::spawn(write_loop(writer, out_rx, routes.clone()));
        tokio::spawn(read_loop(reader, routes.clone(), closed_tx));
        Arc::new(Mux {
            out,
            routes,
            next_id: AtomicU32::new(first_id.max(1)),
            closed,
        })
    }

    /// Opens a new session: a fresh id and the channel its incoming messages arrive on.
    pub fn open(
        &self,
        stdin_credit: Option<Arc<Semaphore>>,
    ) -> Result<(u32, mpsc::UnboundedReceiver<Message>), ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events, rx) = mpsc::unbounded_channel();
        let window = u64::from(crate::STREAM_WINDOW);
        let route = Route {
            events,
            stdin_credit,
            output_allowed: Some([window; 2]),
        };
        self.add_route(id, route)?;
        Ok((id, rx))
    }

    fn add_route(&self, id: u32, route: Route) -> Result<(), ClientError> {
        let mut routes = self.routes.lock().map_err(|_| ClientError::Disconnected)?;
        routes.as_mut().ok_or(ClientError::Disconnected)?.insert(id, route);
        Ok(())
    }

    /// Receives the messages the peer sends on the control session (session 0) from now on.
    pub fn control_messages(&self) -> Result<mpsc::UnboundedReceiver<Message>, ClientError> {
        let (events, rx) = mpsc::unbounded_channel();
        let route = Route {
            events,
            stdin_credit: None,
            output_allowed: None,
        };
        self.add_route(crate::CONTROL_SESSION, route)?;
        Ok(rx)
    }

    /// Sends `msg` on session `id`.
    pub async fn send(&self, id: u32, msg: Message) -> Result<(), ClientError> {
        self.out
            .send(Frame::new(id, msg))
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    /// A sender for frames on this connection.
    pub fn sender(&self) -> mpsc::Sender<Frame> {
        self.out.clone()
    }

    /// Resolves once the peer has closed the connection (or it failed), saying how.
    pub async fn closed(&self) -> Closed {
        let mut closed = self.closed.clone();
        let how = match closed.wait_for(Option::is_some).await {
            Ok(how) => how.clone().unwrap_or(Closed::Ended),
            // The reader task is gone without a word: the connection is over all the same.
            Err(_) => Closed::Ended,
        };
        how
    }

    /// How the connection ended, if it has.
    pub fn closed_yet(&self) -> Option<Closed> {
        self.closed.borrow().clone()
    }

    /// Resolves only if the peer breaks the protocol, with what it did; never when the
    /// connection merely ends.
    pub async fn broken(&self) -> String {
        match self.closed().await {
            Closed::Broken(what) => what,
            Closed::Ended => std::future::pending().await,
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: FramedWrite<W, FrameCodec>,
    mut rx: mpsc::Receiver<Frame>,
    routes: Routes,
) {
    while let Some(frame) = rx.recv().await {
        let id = frame.id;
        // Output credit we grant is counted before the peer can act on it.
        if let Message::Credit { stream, bytes } = frame.msg {
            if let Some(i) = output_index(stream) {
                let mut map = routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(allowed) = map
                    .as_mut()
                    .and_then(|m| m.get_mut(&id))
                    .and_then(|r| r.output_allowed.as_mut())
                {
                    allowed[i] = allowed[i].saturating_add(u64::from(bytes));
                }
            }
        }
        match writer.send(frame).await {
            Ok(()) => {}
            // Nothing was written: the connection is intact, only this session fails, and
            // it is told why.
            Err(e @ crate::ProtocolError::FrameTooLarge(_)) => {
                tracing::warn!("session {id}: {e}");
                if let Ok(mut map) = routes.lock() {
                    if let Some(route) = map.as_mut().and_then(|map| map.remove(&id)) {
                        let _ = route.events.send(Message::Error(e.to_string()));
                    }
                }
            }
            Err(e) => {
                tracing::debug!("channel write failed: {e}");
                return;
            }
        }
    }
    // Every sender is gone: tell the peer we are done (it reads end of file) even while
    // the read half lives on in the reader task.
    let _ = writer.close().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: FramedRead<R, FrameCodec>,
    routes: Routes,
    closed: watch::Sender<Option<Closed>>,
) {
    let mut how = Closed::Ended;
    while let Some(next) = reader.next().await {
        let frame = match next {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!("channel: {e}");
                if e.is_protocol_violation() {
                    how = Closed::Broken(e.to_string());
                }
                break;
            }
        };
        let Ok(mut map) = routes.lock() else { break };
        let Some(map) = map.as_mut() else { break };
        let Some(route) = map.get_mut(&frame.id) else {
            tracing::debug!("frame for unknown session {}: {:?}", frame.id, frame.msg);
            continue;
        };
        let output = frame.msg.output_len().map(|(stream, len)| match stream {
            StreamKind::Stderr => (1, len as usize),
            _ => (0, len as usize),
        });
        if let Some((stream, len)) = output {
            if !route.take_output(stream, len) {
                tracing::warn!(
                    "session {}: the peer sent output beyond the credit it was granted",
                    frame.id
                );
                let _ = route.events.send(Message::Error(
                    "the guest sent more output than it was granted credit for; the session was ended".into(),
                ));
                map.remove(&frame.id);
                continue;
            }
        }
        match (&frame.msg, &route.stdin_credit) {
            (
                Message::Credit {
                    stream: StreamKind::Stdin,
                    bytes,
                },
                Some(credit),
            ) => credit.add_permits(*bytes as usize),
            _ => {
                let last = frame.msg.ends_session();
                let _ = route.events.send(frame.msg);
                if last {
                    // A writer waiting for stdin credit learns that the session is over.
                    if let Some(credit) = map.remove(&frame.id).and_then(|r| r.stdin_credit) {
                        credit.close();
                    }
                }
            }
        }
    }
    // Said first, so whoever sees a session fail can already tell why.
    let _ = closed.send(Some(how));
    // Dropping the routes closes every session's channel: they see Disconnected; no new
    // route can be added from now on.
    if let Some(map) = routes.lock().ok().and_then(|mut map| map.take()) {
        for (_, route) in map {
            if let Some(credit) = route.stdin_credit {
                credit.close();
            }
        }
    }
}
