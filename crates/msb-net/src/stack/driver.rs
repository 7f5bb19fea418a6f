//! The tokio loop around the [`Engine`]: owns the stream socket to QEMU, feeds it frames and
//! events, runs its requests as tasks, writes its output, and serves the published ports.

use super::counters::{Count, Counters};
use super::engine::Engine;
use super::framing::FrameReader;
use super::messages::{Event, Request, Upstream};
use super::ports::{Bound, BoundPorts};
use super::{tcp_host, udp_host, StackConfig};
use crate::dns::{Interceptor, Pins};
use crate::intercept::{intercept, Intercepted, Interception, PlainGuard};
use crate::policy::Policy;
use std::io;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Events queued from tasks to the engine.
const EVENT_QUEUE: usize = 1024;
/// Accepted published connections queued for the engine.
const ACCEPT_QUEUE: usize = 64;
/// Events and reads handled per loop turn, so one source cannot starve the others.
const BATCH: usize = 256;
const READS_PER_TURN: usize = 4;

/// Runs the stack for one guest link until the guest's end of `sock` closes. With
/// `intercept`, TLS flows to its hosts are intercepted and secrets substituted (see
/// [`crate::intercept`]); without, every flow is relayed as it is.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    sock: StdUnixStream,
    cfg: StackConfig,
    policy: Arc<Policy>,
    dns: Arc<Interceptor>,
    pins: Arc<Pins>,
    ports: BoundPorts,
    counters: Arc<Counters>,
    intercept: Option<Arc<Interception>>,
) -> io::Result<()> {
    sock.set_nonblocking(true)?;
    let sock = UnixStream::from_std(sock)?;
    let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let (accepted_tx, mut accepted) = mpsc::channel(ACCEPT_QUEUE);
    let published = ports.ports.clone();
    // Dropped (and so aborted) when the stack ends, closing the published ports.
    let mut listeners = JoinSet::new();
    let udp_ports = listen(ports, &mut listeners, &accepted_tx, &events_tx)?;
    let mut engine = Engine::new(
        cfg,
        policy,
        pins.clone(),
        counters.clone(),
        published,
        intercept.clone(),
        Instant::now(),
    );
    let mut reader = FrameReader::new();
    let host = Host {
        dns,
        pins,
        intercept,
        udp_ports,
    };
    let spawn = |request: Request| start(request, &events_tx, &host);
    loop {
        let now = Instant::now();
        for _ in 0..BATCH {
            let Ok(event) = events.try_recv() else { break };
            engine.event(event, now);
        }
        while let Ok((port, stream, peer)) = accepted.try_recv() {
            admit(&mut engine, port, stream, peer, &events_tx);
        }
        engine.poll(now);
        engine.take_requests().into_iter().for_each(spawn);
        let reading = engine.output_has_room();
        let interest = match (reading, engine.output().is_empty()) {
            (true, true) => Interest::READABLE,
            (true, false) => Interest::READABLE | Interest::WRITABLE,
            (false, _) => Interest::WRITABLE,
        };
        let deadline = tokio::time::Instant::from_std(engine.poll_at(now));
        tokio::select! {
            ready = sock.ready(interest) => {
                let ready = ready?;
                if ready.is_writable() {
                    write(&sock, &mut engine)?;
                }
                if ready.is_readable() && reading && !read(&sock, &mut reader, &mut engine, &counters)? {
                    return Ok(());
                }
            }
            Some(event) = events.recv(), if reading => engine.event(event, Instant::now()),
            Some((port, stream, peer)) = accepted.recv(), if reading => admit(&mut engine, port, stream, peer, &events_tx),
            // While the guest is not reading, only its reading wakes the loop.
            () = tokio::time::sleep_until(deadline), if reading => {}
        }
    }
}

/// Reads what the guest sent; `false` once it has closed.
fn read(sock: &UnixStream, reader: &mut FrameReader, engine: &mut Engine, counters: &Counters) -> io::Result<bool> {
    for _ in 0..READS_PER_TURN {
        match sock.try_read(reader.spare()) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                reader.filled(n);
                let now = Instant::now();
                let dropped = reader.drain(|frame| engine.guest_frame(frame, now));
                (0..dropped).for_each(|_| counters.bump(Count::FrameDropped));
                if !engine.output_has_room() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn write(sock: &UnixStream, engine: &mut Engine) -> io::Result<()> {
    while !engine.output().is_empty() {
        match sock.try_write(engine.output()) {
            Ok(n) => engine.output_written(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Hands a published-port connection to the engine; dropping it (refused) closes it.
fn admit(engine: &mut Engine, port: usize, stream: TcpStream, peer: SocketAddr, events: &mpsc::Sender<Event>) {
    if let Some((flow, io)) = engine.published_tcp(port, peer, Instant::now()) {
        tokio::spawn(tcp_host::relay(flow, stream, Vec::new(), io, events.clone(), None));
    }
}

/// What the tasks for engine requests need from the host side.
struct Host {
    dns: Arc<Interceptor>,
    pins: Arc<Pins>,
    intercept: Option<Arc<Interception>>,
    /// The published UDP sockets, indexed like the ports, for replies.
    udp_ports: Vec<Option<Arc<UdpSocket>>>,
}

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 22;

/// Runs one engine request as a task (or, for a published UDP reply, a send).
fn start(request: Request, events: &mpsc::Sender<Event>, host: &Host) {
    let events = events.clone();
    let (dns, udp_ports) = (&host.dns, &host.udp_ports);
    match request {
        Request::Connect {
            flow,
            upstream: Upstream::Tcp(addr),
            initial,
            name,
            dst,
            io,
        } => match (&host.intercept, name) {
            (Some(interception), Some(sni))
                if initial.first() == Some(&TLS_HANDSHAKE) && interception.intercepts(&sni, dst.port()) =>
            {
                let target = Intercepted {
                    sni,
                    dst,
                    interception: interception.clone(),
                    pins: host.pins.clone(),
                };
                tokio::spawn(async move {
                    if let Some(stream) = tcp_host::open(flow, addr, &events).await {
                        intercept(flow, stream, initial, io, events, target).await;
                    }
                });
            }
            (intercept, name) => {
                let guard = intercept
                    .as_ref()
                    .and_then(|i| PlainGuard::new(i, name.unwrap_or_else(|| dst.ip().to_string())));
                tokio::spawn(tcp_host::connect(flow, addr, initial, io, events, guard));
            }
        },
        Request::Connect {
            flow,
            upstream: Upstream::Dns,
            io,
            ..
        } => {
            tokio::spawn(tcp_host::dns(flow, io, dns.clone(), events));
        }
        Request::Dns { guest, server, query } => {
            tokio::spawn(udp_host::dns(guest, server, query, dns.clone(), events));
        }
        Request::Udp {
            flow,
            target,
            datagrams,
        } => {
            tokio::spawn(udp_host::flow(flow, target, datagrams, events));
        }
        Request::Ping { dst, target, echo } => {
            tokio::spawn(udp_host::ping(dst, target, echo, events));
        }
        Request::PublishedUdp { port, peer, payload } => {
            if let Some(Some(sock)) = udp_ports.get(port) {
                // A full socket buffer loses the datagram, as UDP may.
                let _ = sock.try_send_to(&payload, peer);
            }
        }
    }
}

/// Starts accepting on every published port; the UDP sockets, indexed like the ports, for replies.
fn listen(
    ports: BoundPorts,
    tasks: &mut JoinSet<()>,
    accepted: &mpsc::Sender<(usize, TcpStream, SocketAddr)>,
    events: &mpsc::Sender<Event>,
) -> io::Result<Vec<Option<Arc<UdpSocket>>>> {
    let mut udp_ports = Vec::new();
    for (port, bound) in ports.sockets.into_iter().enumerate() {
        match bound {
            Bound::Tcp(listener) => {
                tasks.spawn(accept(port, TcpListener::from_std(listener)?, accepted.clone()));
                udp_ports.push(None);
            }
            Bound::Udp(sock) => {
                let sock = Arc::new(UdpSocket::from_std(sock)?);
                tasks.spawn(receive(port, sock.clone(), events.clone()));
                udp_ports.push(Some(sock));
            }
        }
    }
    Ok(udp_ports)
}

async fn accept(port: usize, listener: TcpListener, accepted: mpsc::Sender<(usize, TcpStream, SocketAddr)>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if accepted.send((port, stream, peer)).await.is_err() {
                    return;
                }
            }
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

async fn receive(port: usize, sock: Arc<UdpSocket>, events: mpsc::Sender<Event>) {
    let mut buf = vec![0; 65535];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                let event = Event::PublishedUdp {
                    port,
                    peer,
                    payload: buf[..n].to_vec(),
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
            // An ICMP error from an earlier reply and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}
