//! Guest UDP. DNS is answered at the gateway; every other datagram is checked against the
//! policy and relayed through one connected host socket per (guest port, destination).
//! Datagrams to published UDP ports reach the guest from a gateway port mapped to their host
//! peer, so the guest's replies find their way back. A refused datagram always gets an ICMP
//! port unreachable (rate-limited), never silence.

use super::context::Ctx;
use super::messages::{FlowId, Request};
use super::tcp::Tuple;
use crate::policy::{FlowName, Verdict};
use msb_types::{Direction, Protocol};
use smoltcp::wire::{Icmpv4DstUnreachable, IpProtocol, Ipv4Repr};
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// DNS: answered at the gateway whatever the destination.
const DNS_PORT: u16 = 53;
/// DNS over QUIC: refused, so resolvers fall back to policed DNS.
const DOQ_PORT: u16 = 853;
/// DNS queries being answered at once; more are dropped (the guest retries).
const MAX_DNS_IN_FLIGHT: usize = 256;
/// Datagrams queued towards one flow's host socket; more are dropped, as UDP may.
const FLOW_DEPTH: usize = 64;
/// Host peers of published UDP ports remembered at once, and for how long unheard.
const MAX_PEERS: usize = 1024;
const PEER_IDLE: Duration = Duration::from_secs(60);
/// Gateway ports published datagrams come from.
const PEER_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

#[derive(Debug)]
struct Peer {
    port: usize,
    addr: SocketAddr,
    last: Instant,
}

/// Every UDP flow and published-port peer of the sandbox.
#[derive(Debug, Default)]
pub(crate) struct UdpTable {
    flows: HashMap<FlowId, (Tuple, mpsc::Sender<Vec<u8>>)>,
    by_tuple: HashMap<Tuple, FlowId>,
    peers: HashMap<(usize, SocketAddr), u16>,
    by_gateway_port: HashMap<u16, Peer>,
    next_port: u16,
    dns_in_flight: usize,
}

impl UdpTable {
    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }

    /// A datagram from the guest; `ip` is its IPv4 header, `head` its first 8 payload bytes.
    pub(crate) fn datagram(&mut self, ctx: &mut Ctx, ip: &Ipv4Repr, head: &[u8], ports: (u16, u16), payload: &[u8]) {
        let guest = SocketAddrV4::new(ip.src_addr, ports.0);
        let dst = SocketAddrV4::new(ip.dst_addr, ports.1);
        if ip.dst_addr == ctx.cfg.gateway_ip {
            if let Some(peer) = self.by_gateway_port.get_mut(&ports.1) {
                peer.last = ctx.now;
                let (port, peer) = (peer.port, peer.addr);
                ctx.requests.push(Request::PublishedUdp {
                    port,
                    peer,
                    payload: payload.to_vec(),
                });
                return;
            }
        }
        if ports.1 == DNS_PORT {
            if self.dns_in_flight < MAX_DNS_IN_FLIGHT {
                self.dns_in_flight += 1;
                ctx.requests.push(Request::Dns {
                    guest,
                    server: dst,
                    query: payload.to_vec(),
                });
            }
            return;
        }
        let refuse = |ctx: &mut Ctx| ctx.unreachable(ip.dst_addr, Icmpv4DstUnreachable::PortUnreachable, *ip, head);
        if ports.1 == DOQ_PORT {
            return refuse(ctx);
        }
        match ctx.check(Direction::Egress, Protocol::Udp, ip.dst_addr, ports.1, FlowName::Absent) {
            Verdict::Allow(_) => {}
            Verdict::Deny(rule) => {
                ctx.denied(Direction::Egress, Protocol::Udp, ip.dst_addr, ports.1, rule);
                return refuse(ctx);
            }
            Verdict::NeedName => {
                ctx.denied(Direction::Egress, Protocol::Udp, ip.dst_addr, ports.1, None);
                return refuse(ctx);
            }
        }
        if ctx.drops_udp(ip.dst_addr, ports.1) {
            // Dropped, not refused: the client falls back to TCP, where interception applies.
            return;
        }
        let tuple = Tuple {
            guest_port: ports.0,
            remote: dst,
        };
        if let Some((_, tx)) = self.by_tuple.get(&tuple).and_then(|id| self.flows.get(id)) {
            // A full queue or a socket just closed loses the datagram, as UDP may.
            let _ = tx.try_send(payload.to_vec());
            return;
        }
        if !ctx.admit() {
            return refuse(ctx);
        }
        let flow = ctx.open_flow();
        let (tx, datagrams) = mpsc::channel(FLOW_DEPTH);
        let _ = tx.try_send(payload.to_vec());
        let target = SocketAddr::from((ctx.host_ip(ip.dst_addr), ports.1));
        ctx.requests.push(Request::Udp {
            flow,
            target,
            datagrams,
        });
        self.by_tuple.insert(tuple, flow);
        self.flows.insert(flow, (tuple, tx));
    }

    /// The answer to a DNS query, sent back from the address it went to.
    pub(crate) fn dns_answered(
        &mut self,
        ctx: &mut Ctx,
        guest: SocketAddrV4,
        server: SocketAddrV4,
        answer: Option<Vec<u8>>,
    ) {
        self.dns_in_flight = self.dns_in_flight.saturating_sub(1);
        if let Some(answer) = answer {
            let mtu = ctx.cfg.mtu;
            ctx.out.udp(server, guest, &answer, mtu);
        }
    }

    /// A datagram from a flow's upstream, to the guest from the address it wrote to.
    pub(crate) fn reply(&mut self, ctx: &mut Ctx, id: FlowId, payload: &[u8]) {
        let Some((tuple, _)) = self.flows.get(&id) else { return };
        let guest = SocketAddrV4::new(ctx.cfg.guest_ip, tuple.guest_port);
        let mtu = ctx.cfg.mtu;
        ctx.out.udp(tuple.remote, guest, payload, mtu);
    }

    /// A flow's upstream port is closed: port unreachable, quoting a datagram of the flow.
    pub(crate) fn refused(&mut self, ctx: &mut Ctx, id: FlowId) {
        let Some((tuple, _)) = self.flows.get(&id) else { return };
        let quoted = Ipv4Repr {
            src_addr: ctx.cfg.guest_ip,
            dst_addr: *tuple.remote.ip(),
            next_header: IpProtocol::Udp,
            payload_len: 8,
            hop_limit: 64,
        };
        let mut head = [0u8; 8];
        head[..2].copy_from_slice(&tuple.guest_port.to_be_bytes());
        head[2..4].copy_from_slice(&tuple.remote.port().to_be_bytes());
        head[4..6].copy_from_slice(&8u16.to_be_bytes());
        ctx.unreachable(*tuple.remote.ip(), Icmpv4DstUnreachable::PortUnreachable, quoted, &head);
    }

    /// A flow's host socket is gone.
    pub(crate) fn closed(&mut self, ctx: &mut Ctx, id: FlowId) {
        if let Some((tuple, _)) = self.flows.remove(&id) {
            self.by_tuple.remove(&tuple);
            ctx.close_flow();
        }
    }

    /// A datagram from `peer` on published port `port` (index), for `guest_port`.
    pub(crate) fn published(&mut self, ctx: &mut Ctx, port: usize, guest_port: u16, peer: SocketAddr, payload: &[u8]) {
        match ctx.check(
            Direction::Ingress,
            Protocol::Udp,
            peer.ip(),
            guest_port,
            FlowName::Absent,
        ) {
            Verdict::Allow(_) => {}
            Verdict::Deny(rule) => return ctx.denied(Direction::Ingress, Protocol::Udp, peer.ip(), guest_port, rule),
            Verdict::NeedName => return ctx.denied(Direction::Ingress, Protocol::Udp, peer.ip(), guest_port, None),
        }
        let Some(gateway_port) = self.peer_port(port, peer, ctx.now) else {
            return;
        };
        let from = SocketAddrV4::new(ctx.cfg.gateway_ip, gateway_port);
        let to = SocketAddrV4::new(ctx.cfg.guest_ip, guest_port);
        let mtu = ctx.cfg.mtu;
        ctx.out.udp(from, to, payload, mtu);
    }

    /// The gateway port standing for `peer` of published port `port`, mapped on first use.
    fn peer_port(&mut self, port: usize, addr: SocketAddr, now: Instant) -> Option<u16> {
        if let Some(&gateway_port) = self.peers.get(&(port, addr)) {
            if let Some(peer) = self.by_gateway_port.get_mut(&gateway_port) {
                peer.last = now;
            }
            return Some(gateway_port);
        }
        if self.peers.len() >= MAX_PEERS {
            return None;
        }
        for _ in 0..PEER_PORTS.len() {
            let candidate = if PEER_PORTS.contains(&self.next_port) {
                self.next_port
            } else {
                *PEER_PORTS.start()
            };
            self.next_port = candidate.wrapping_add(1);
            if !self.by_gateway_port.contains_key(&candidate) {
                self.peers.insert((port, addr), candidate);
                self.by_gateway_port.insert(candidate, Peer { port, addr, last: now });
                return Some(candidate);
            }
        }
        None
    }

    /// Forgets published-port peers unheard for a while.
    pub(crate) fn sweep(&mut self, now: Instant) {
        let peers = &mut self.peers;
        self.by_gateway_port.retain(|_, peer| {
            let keep = now.saturating_duration_since(peer.last) < PEER_IDLE;
            if !keep {
                peers.remove(&(peer.port, peer.addr));
            }
            keep
        });
    }
}
