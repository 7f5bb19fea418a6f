//! The host side of a TCP flow, one task each: connect the upstream, then relay between it
//! and the engine (or, under interception, between the engine and a local byte stream); or,
//! for DNS over TCP, answer length-prefixed messages locally.

use super::messages::{ConnectError, Event, FlowId, HostEnd, HostMsg};
use super::relay::CHUNK;
use crate::dns::Interceptor;
use crate::intercept::PlainGuard;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long an upstream may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before the host probes a quiet upstream, which finds dead peers.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// Connects `addr` for flow `flow` and reports how that went; the stream once connected.
pub(crate) async fn open(flow: FlowId, addr: SocketAddr, events: &mpsc::Sender<Event>) -> Option<TcpStream> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            let refused = matches!(
                error.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
            );
            let why = if refused {
                ConnectError::Refused
            } else {
                ConnectError::Unreachable
            };
            let _ = events.send(Event::ConnectFailed(flow, why)).await;
            return None;
        }
        Err(_) => {
            let _ = events.send(Event::ConnectFailed(flow, ConnectError::Unreachable)).await;
            return None;
        }
    };
    events.send(Event::Connected(flow)).await.ok()?;
    Some(stream)
}

/// Connects `addr` for flow `flow`, reports how that went, then relays (through `guard`,
/// when the guest's bytes are watched for placeholders).
pub(crate) async fn connect(
    flow: FlowId,
    addr: SocketAddr,
    initial: Vec<u8>,
    io: HostEnd,
    events: mpsc::Sender<Event>,
    guard: Option<PlainGuard>,
) {
    if let Some(stream) = open(flow, addr, &events).await {
        relay(flow, stream, initial, io, events, guard).await;
    }
}

/// How one direction of a relay ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Cleanly (EOF one way, FIN the other).
    Clean,
    /// The other side is gone or failed: reset the host connection.
    Reset,
}

/// Relays `stream` (the host side of `flow`) until both directions have ended.
pub(crate) async fn relay(
    flow: FlowId,
    stream: TcpStream,
    initial: Vec<u8>,
    io: HostEnd,
    events: mpsc::Sender<Event>,
    guard: Option<PlainGuard>,
) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let (mut reader, mut writer) = stream.into_split();
    if pump(flow, &mut reader, &mut writer, initial, io, &events, guard).await == End::Reset {
        // A reset on the guest side becomes a reset on the host side, not a quiet FIN.
        let _ = socket2::SockRef::from(writer.as_ref()).set_linger(Some(Duration::ZERO));
    }
}

/// Exposes the guest side of `flow` as the byte stream `stream` (one end of a duplex), for
/// a flow whose bytes are handled in this process (interception).
pub(crate) async fn bridge(
    flow: FlowId,
    stream: DuplexStream,
    initial: Vec<u8>,
    io: HostEnd,
    events: mpsc::Sender<Event>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    pump(flow, &mut reader, &mut writer, initial, io, &events, None).await;
}

/// Moves bytes both ways between `flow`'s channels and a host-side reader and writer until
/// both directions have ended.
async fn pump<R, W>(
    flow: FlowId,
    reader: &mut R,
    writer: &mut W,
    initial: Vec<u8>,
    io: HostEnd,
    events: &mpsc::Sender<Event>,
    guard: Option<PlainGuard>,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let HostEnd {
        from_guest,
        credits,
        wants_room,
    } = io;
    // The directions run side by side: an upstream that only reads after it has written
    // (an echo server) must not wait on a relay that only reads after it has written.
    let up = to_host(flow, writer, initial, from_guest, &wants_room, events, guard);
    let down = from_host(flow, reader, &credits, events);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    loop {
        tokio::select! {
            end = &mut up, if !up_done => {
                up_done = true;
                if end == End::Reset {
                    return End::Reset;
                }
            }
            end = &mut down, if !down_done => {
                down_done = true;
                if end == End::Reset {
                    return End::Reset;
                }
            }
        }
        if up_done && down_done {
            return End::Clean;
        }
    }
}

/// Guest bytes to the host, then FIN; `Reset` if the guest side was reset, writing failed,
/// or `guard` found a placeholder (the chunk holding it is not written).
async fn to_host<W: AsyncWrite + Unpin>(
    flow: FlowId,
    writer: &mut W,
    initial: Vec<u8>,
    mut from_guest: mpsc::Receiver<HostMsg>,
    wants_room: &std::sync::atomic::AtomicBool,
    events: &mpsc::Sender<Event>,
    mut guard: Option<PlainGuard>,
) -> End {
    let mut passes = |bytes: &[u8]| guard.as_mut().is_none_or(|g| g.pass(bytes));
    if !initial.is_empty() && (!passes(&initial) || writer.write_all(&initial).await.is_err()) {
        let _ = events.send(Event::HostReset(flow)).await;
        return End::Reset;
    }
    loop {
        let msg = from_guest.recv().await;
        if wants_room.swap(false, Ordering::SeqCst) && events.send(Event::Drained(flow)).await.is_err() {
            return End::Reset;
        }
        let written = match msg {
            Some(HostMsg::Data(bytes)) if !passes(&bytes) => Err(io::ErrorKind::PermissionDenied.into()),
            Some(HostMsg::Data(bytes)) => writer.write_all(&bytes).await,
            Some(HostMsg::Fin) => {
                return if writer.shutdown().await.is_ok() {
                    End::Clean
                } else {
                    End::Reset
                }
            }
            None => return End::Reset,
        };
        if written.is_err() {
            let _ = events.send(Event::HostReset(flow)).await;
            return End::Reset;
        }
    }
}

/// Host bytes to the engine, one credit per chunk, then EOF; `Reset` if reading failed.
async fn from_host<R: AsyncRead + Unpin>(
    flow: FlowId,
    reader: &mut R,
    credits: &tokio::sync::Semaphore,
    events: &mpsc::Sender<Event>,
) -> End {
    loop {
        // Closed: the engine forgot the flow; the guest side decides how it ends.
        let Ok(permit) = credits.acquire().await else {
            return End::Clean;
        };
        permit.forget();
        let mut chunk = Vec::with_capacity(CHUNK);
        let event = match reader.read_buf(&mut chunk).await {
            Ok(0) => Event::HostEof(flow),
            Ok(_) => Event::HostData(flow, chunk),
            Err(_) => Event::HostReset(flow),
        };
        let end = match &event {
            Event::HostData(..) => None,
            Event::HostEof(_) => Some(End::Clean),
            _ => Some(End::Reset),
        };
        if events.send(event).await.is_err() {
            return End::Reset;
        }
        if let Some(end) = end {
            return end;
        }
    }
}

/// DNS over TCP for `flow`: length-prefixed queries answered by `dns`, answers sent back the
/// same way, until the guest finishes.
pub(crate) async fn dns(flow: FlowId, io: HostEnd, dns: Arc<Interceptor>, events: mpsc::Sender<Event>) {
    let HostEnd {
        mut from_guest,
        credits,
        wants_room,
    } = io;
    let mut pending = Vec::new();
    loop {
        let msg = from_guest.recv().await;
        if wants_room.swap(false, Ordering::SeqCst) && events.send(Event::Drained(flow)).await.is_err() {
            return;
        }
        match msg {
            Some(HostMsg::Data(bytes)) => pending.extend_from_slice(&bytes),
            Some(HostMsg::Fin) => {
                let _ = events.send(Event::HostEof(flow)).await;
                return;
            }
            None => return,
        }
        while let Some(query) = next_message(&mut pending) {
            let Some(answer) = dns.answer_tcp(&query).await else {
                continue;
            };
            let Ok(len) = u16::try_from(answer.len()) else { continue };
            let Ok(permit) = credits.acquire().await else { return };
            permit.forget();
            let mut framed = Vec::with_capacity(2 + answer.len());
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&answer);
            if events.send(Event::HostData(flow, framed)).await.is_err() {
                return;
            }
        }
    }
}

/// Takes one whole length-prefixed message off the front of `pending`, if there is one.
/// At most one message and one chunk are ever buffered (the prefix is 16 bits).
fn next_message(pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([*pending.first()?, *pending.get(1)?]));
    let message = pending.get(2..2 + len)?.to_vec();
    pending.drain(..2 + len);
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::next_message;

    #[test]
    fn messages_are_taken_whole_and_in_order() {
        let mut pending = vec![0, 2, b'a', b'b', 0, 3, b'c'];
        assert_eq!(next_message(&mut pending), Some(b"ab".to_vec()));
        assert_eq!(next_message(&mut pending), None);
        pending.extend_from_slice(b"de");
        assert_eq!(next_message(&mut pending), Some(b"cde".to_vec()));
        assert!(pending.is_empty());
        assert_eq!(next_message(&mut vec![0]), None);
    }
}
