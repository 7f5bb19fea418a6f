//! What the synchronous [`Engine`](super::Engine) asks of the runtime around it
//! ([`Request`]) and what it is told back ([`Event`]). Bytes cross between the two only
//! through bounded channels, so neither side can make the other buffer without limit.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// Identifies one flow for its whole life; never reused, so a late event for a finished
/// flow cannot land on a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub(crate) u64);

/// Where a TCP flow's bytes go on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// A TCP connection to this address.
    Tcp(SocketAddr),
    /// The gateway's DNS: length-prefixed messages answered by the interceptor.
    Dns,
}

/// Bytes on their way to a TCP flow's host side.
#[derive(Debug, PartialEq, Eq)]
pub enum HostMsg {
    /// Guest bytes, in order.
    Data(Vec<u8>),
    /// The guest finished sending (FIN): shut down the host socket's write half.
    Fin,
}

/// The host half of a TCP flow's channels, owned by the task relaying it.
#[derive(Debug)]
pub struct HostEnd {
    /// Guest bytes to write to the host. Closed without a [`HostMsg::Fin`] first means the
    /// guest side was reset: reset the host connection too.
    pub from_guest: mpsc::Receiver<HostMsg>,
    /// One permit per chunk the task may read from the host and send as [`Event::HostData`];
    /// the engine returns a permit once the guest side has taken a chunk. Closed when the
    /// engine has forgotten the flow.
    pub credits: Arc<Semaphore>,
    /// Set by the engine when `from_guest` was full; the task clears it and sends
    /// [`Event::Drained`] after taking a message, so the engine reads the guest again.
    pub wants_room: Arc<AtomicBool>,
}

/// Why an upstream connect failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The host answered with a reset: the guest gets a RST.
    Refused,
    /// No answer in time, or no route: the guest gets ICMP host unreachable.
    Unreachable,
}

/// The identifying parts and data of an ICMP echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    /// Identifier chosen by the guest.
    pub ident: u16,
    /// Sequence number chosen by the guest.
    pub seq: u16,
    /// Data to echo.
    pub payload: Vec<u8>,
}

/// How an echo request the host sent on the guest's behalf ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingOutcome {
    /// The destination answered.
    Reply,
    /// The host may not send echo requests (no ICMP socket) or the destination is unreachable.
    Unreachable,
    /// No answer in time: the guest hears nothing, as with a lost ping.
    Timeout,
}

/// Work for the runtime around the engine.
#[derive(Debug)]
pub enum Request {
    /// Connect `upstream`, write `initial` first, then relay the flow through `io`
    /// (reporting [`Event::Connected`] or [`Event::ConnectFailed`] first).
    Connect {
        /// The flow.
        flow: FlowId,
        /// Where to.
        upstream: Upstream,
        /// Guest bytes already read (the first bytes a name was looked for in).
        initial: Vec<u8>,
        /// The name those bytes gave (TLS SNI or HTTP Host), normalized, if sniffed.
        name: Option<String>,
        /// The address and port the guest dialled.
        dst: SocketAddrV4,
        /// The flow's host-side channels.
        io: HostEnd,
    },
    /// Answer a DNS message the guest sent over UDP from `guest` to `server`.
    Dns {
        /// The guest's address.
        guest: SocketAddrV4,
        /// The address the guest sent to; the answer comes from it.
        server: SocketAddrV4,
        /// The message.
        query: Vec<u8>,
    },
    /// Open a UDP flow's host socket connected to `target` and send what arrives on
    /// `datagrams`, reporting replies as [`Event::UdpData`] until idle.
    Udp {
        /// The flow.
        flow: FlowId,
        /// Where to.
        target: SocketAddr,
        /// Guest datagrams to send.
        datagrams: mpsc::Receiver<Vec<u8>>,
    },
    /// Send an echo request to `target` for the guest's request to `dst`.
    Ping {
        /// The address the guest pinged.
        dst: Ipv4Addr,
        /// The address pinged on the host's side.
        target: Ipv4Addr,
        /// The request.
        echo: Echo,
    },
    /// Send `payload` from published UDP port number `port` (its index) to `peer`.
    PublishedUdp {
        /// Index of the published port.
        port: usize,
        /// The host peer.
        peer: SocketAddr,
        /// The guest's datagram.
        payload: Vec<u8>,
    },
}

/// News for the engine from the runtime around it.
#[derive(Debug)]
pub enum Event {
    /// A TCP flow's upstream is connected.
    Connected(FlowId),
    /// A TCP flow's upstream could not be connected.
    ConnectFailed(FlowId, ConnectError),
    /// Bytes from a TCP flow's host side (each one spent a credit).
    HostData(FlowId, Vec<u8>),
    /// The host side finished sending.
    HostEof(FlowId),
    /// The host side failed or was reset.
    HostReset(FlowId),
    /// The host side took a message after the engine found its channel full.
    Drained(FlowId),
    /// The answer to a [`Request::Dns`] (`None`: nothing to send back).
    DnsAnswer {
        /// The guest's address.
        guest: SocketAddrV4,
        /// The address the guest sent to.
        server: SocketAddrV4,
        /// The answer.
        answer: Option<Vec<u8>>,
    },
    /// A datagram from a UDP flow's upstream.
    UdpData(FlowId, Vec<u8>),
    /// The UDP flow's upstream port is closed (the host got ICMP port unreachable).
    UdpRefused(FlowId),
    /// A UDP flow's host socket is gone (idle or failed).
    UdpClosed(FlowId),
    /// How a [`Request::Ping`] ended.
    PingDone {
        /// The address the guest pinged.
        dst: Ipv4Addr,
        /// The guest's request (`payload` replaced by the reply's data on [`PingOutcome::Reply`]).
        echo: Echo,
        /// How it ended.
        outcome: PingOutcome,
    },
    /// A datagram arrived on published UDP port number `port` (its index) from `peer`.
    PublishedUdp {
        /// Index of the published port.
        port: usize,
        /// The host peer.
        peer: SocketAddr,
        /// The datagram.
        payload: Vec<u8>,
    },
}
