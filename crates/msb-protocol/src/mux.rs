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
}

type Routes = Arc<Mutex<HashMap<u32, Route>>>;

/// A multiplexed connection.
pub struct Mux {
    out: mpsc::Sender<Frame>,
    routes: Routes,
    next_id: AtomicU32,
    closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for Mux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux").finish_non_exhaustive()
    }
}

impl Mux {
    /// Starts routing frames of an already opened (and handshaken) connection.
    pub fn start<R, W>(reader: FramedRead<R, FrameCodec>, writer: FramedWrite<W, FrameCodec>) -> Arc<Mux>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out, out_rx) = mpsc::channel(64);
        let routes: Routes = Arc::default();
        let (closed_tx, closed) = watch::channel(false);
        tokio::spawn(write_loop(writer, out_rx, routes.clone()));
        tokio::spawn(read_loop(reader, routes.clone(), closed_tx));
        Arc::new(Mux {
            out,
            routes,
            next_id: AtomicU32::new(1),
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
        let route = Route { events, stdin_credit };
        self.routes
            .lock()
            .map_err(|_| ClientError::Disconnected)?
            .insert(id, route);
        Ok((id, rx))
    }

    /// Receives the messages the peer sends on the control session (session 0) from now on.
    pub fn control_messages(&self) -> Result<mpsc::UnboundedReceiver<Message>, ClientError> {
        let (events, rx) = mpsc::unbounded_channel();
        let route = Route {
            events,
            stdin_credit: None,
        };
        self.routes
            .lock()
            .map_err(|_| ClientError::Disconnected)?
            .insert(crate::CONTROL_SESSION, route);
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

    /// Resolves once the peer has closed the connection (or it failed).
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: FramedWrite<W, FrameCodec>,
    mut rx: mpsc::Receiver<Frame>,
    routes: Routes,
) {
    while let Some(frame) = rx.recv().await {
        let id = frame.id;
        match writer.send(frame).await {
            Ok(()) => {}
            // Nothing was written: the connection is intact, only this session fails, and
            // it is told why.
            Err(e @ crate::ProtocolError::FrameTooLarge(_)) => {
                tracing::warn!("session {id}: {e}");
                if let Ok(mut map) = routes.lock() {
                    if let Some(route) = map.remove(&id) {
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
    closed: watch::Sender<bool>,
) {
    while let Some(next) = reader.next().await {
        let frame = match next {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!("channel: {e}");
                break;
            }
        };
        let Ok(mut map) = routes.lock() else { break };
        let Some(route) = map.get(&frame.id) else {
            tracing::debug!("frame for unknown session {}: {:?}", frame.id, frame.msg);
            continue;
        };
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
                    map.remove(&frame.id);
                }
            }
        }
    }
    // Dropping the routes closes every session's channel: they see Disconnected.
    if let Ok(mut map) = routes.lock() {
        for (_, route) in map.drain() {
            if let Some(credit) = route.stdin_credit {
                credit.close();
            }
        }
    }
    let _ = closed.send(true);
}
