//! The host side of guest UDP and ICMP, one task each: a connected UDP socket per flow, a
//! DNS answer per query, an unprivileged ICMP socket per ping.

use super::messages::{Echo, Event, FlowId, PingOutcome};
use crate::dns::Interceptor;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A UDP flow with no datagram either way for this long is closed.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// How long a ping waits for its reply.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest datagram received (the IPv4 maximum).
const MAX_DATAGRAM: usize = 65535;

/// Relays UDP flow `flow`: guest datagrams to `target`, replies back, until idle.
pub(crate) async fn flow(
    flow: FlowId,
    target: SocketAddr,
    mut datagrams: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<Event>,
) {
    if let Ok(sock) = connected(target).await {
        let mut buf = vec![0; MAX_DATAGRAM];
        let mut idle_at = Instant::now() + UDP_IDLE;
        loop {
            let event = tokio::select! {
                datagram = datagrams.recv() => match datagram {
                    Some(datagram) => match sock.send(&datagram).await {
                        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => Some(Event::UdpRefused(flow)),
                        _ => None,
                    },
                    None => break,
                },
                received = sock.recv(&mut buf) => match received {
                    Ok(n) => Some(Event::UdpData(flow, buf[..n].to_vec())),
                    Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => Some(Event::UdpRefused(flow)),
                    Err(_) => break,
                },
                () = tokio::time::sleep_until(idle_at) => break,
            };
            idle_at = Instant::now() + UDP_IDLE;
            if let Some(event) = event {
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = events.send(Event::UdpClosed(flow)).await;
}

async fn connected(target: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    let sock = UdpSocket::bind(any).await?;
    sock.connect(target).await?;
    Ok(sock)
}

/// Answers one DNS query the guest sent from `guest` to `server`.
pub(crate) async fn dns(
    guest: SocketAddrV4,
    server: SocketAddrV4,
    query: Vec<u8>,
    dns: Arc<Interceptor>,
    events: mpsc::Sender<Event>,
) {
    let answer = dns.answer(&query).await;
    let _ = events.send(Event::DnsAnswer { guest, server, answer }).await;
}

/// Pings `target` for the guest's echo request to `dst`.
pub(crate) async fn ping(dst: Ipv4Addr, target: Ipv4Addr, mut echo: Echo, events: mpsc::Sender<Event>) {
    let outcome = match tokio::time::timeout(PING_TIMEOUT, ping_once(target, &echo)).await {
        Ok(Ok(payload)) => {
            echo.payload = payload;
            PingOutcome::Reply
        }
        Ok(Err(_)) => PingOutcome::Unreachable,
        Err(_) => PingOutcome::Timeout,
    };
    let _ = events.send(Event::PingDone { dst, echo, outcome }).await;
}

/// One echo through an unprivileged ICMP socket (`net.ipv4.ping_group_range`); the kernel
/// owns the identifier, so replies are matched by sequence number.
async fn ping_once(target: Ipv4Addr, echo: &Echo) -> io::Result<Vec<u8>> {
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::ICMPV4),
    )?;
    sock.set_nonblocking(true)?;
    let sock = UdpSocket::from_std(std::net::UdpSocket::from(sock))?;
    sock.connect((target, 0)).await?;
    let request = Icmpv4Repr::EchoRequest {
        ident: echo.ident,
        seq_no: echo.seq,
        data: &echo.payload,
    };
    let mut bytes = vec![0; request.buffer_len()];
    request.emit(
        &mut Icmpv4Packet::new_unchecked(&mut bytes[..]),
        &ChecksumCapabilities::default(),
    );
    sock.send(&bytes).await?;
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let n = sock.recv(&mut buf).await?;
        let Ok(packet) = Icmpv4Packet::new_checked(&buf[..n]) else {
            continue;
        };
        // The kernel has checked the checksum (and rewritten the identifier).
        if let Ok(Icmpv4Repr::EchoReply { seq_no, data, .. }) =
            Icmpv4Repr::parse(&packet, &ChecksumCapabilities::ignored())
        {
            if seq_no == echo.seq {
                return Ok(data.to_vec());
            }
        }
    }
}
