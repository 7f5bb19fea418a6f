//! The synchronous core of the stack: Ethernet frames in, frames out, [`Request`]s for the
//! runtime around it and [`Event`]s back. Every call takes the time explicitly and nothing
//! here blocks or spawns, so a fuzz target or a test can drive it with a made-up clock.

use super::context::{Ctx, Net};
use super::counters::{Count, Counters, Traffic};
use super::icmp::Pings;
use super::messages::{Event, FlowId, HostEnd, Request};
use super::syn::Syn;
use super::tcp::{TcpTable, Tuple};
use super::udp::UdpTable;
use super::StackConfig;
use crate::dns::Pins;
use crate::intercept::Interception;
use crate::policy::{FlowName, Policy, Verdict};
use msb_types::{Direction, Protocol, PublishedPort, Transport};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpControl, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often every flow is looked at for timers of the stack's own (sniff deadlines, idle
/// published-port peers, smoltcp sockets that timed out).
const SWEEP: Duration = Duration::from_millis(200);

/// The stack's state for one guest link, driven by explicit calls.
#[derive(Debug)]
pub struct Engine {
    ctx: Ctx,
    net: Net,
    tcp: TcpTable,
    udp: UdpTable,
    pings: Pings,
    published: Vec<PublishedPort>,
    next_sweep: Instant,
    traffic: Traffic,
}

impl Engine {
    /// An engine for the link `cfg` describes, deciding flows with `policy`; `published` are
    /// the published ports in the order [`BoundPorts`](super::BoundPorts) holds them.
    pub fn new(
        cfg: StackConfig,
        policy: Arc<Policy>,
        pins: Arc<Pins>,
        counters: Arc<Counters>,
        published: Vec<PublishedPort>,
        intercept: Option<Arc<Interception>>,
        now: Instant,
    ) -> Engine {
        let mut ctx = Ctx::new(cfg, policy, pins, intercept, counters, now);
        let net = Net::new(&ctx.cfg, &mut ctx.out, now);
        Engine {
            ctx,
            net,
            tcp: TcpTable::default(),
            udp: UdpTable::default(),
            pings: Pings::default(),
            published,
            next_sweep: now,
            traffic: Traffic::default(),
        }
    }

    /// One Ethernet frame from the guest (anything malformed or unserved is dropped).
    pub fn guest_frame(&mut self, frame: &[u8], now: Instant) {
        self.ctx.now = now;
        self.traffic.packets_in += 1;
        self.traffic.bytes_in += frame.len() as u64;
        if !self.frame(frame) {
            self.ctx.counters.bump(Count::FrameDropped);
        }
    }

    /// Something the runtime reports.
    pub fn event(&mut self, event: Event, now: Instant) {
        self.ctx.now = now;
        let (ctx, net) = (&mut self.ctx, &mut self.net);
        match event {
            Event::Connected(id) => self.tcp.connected(ctx, net, id, Ok(())),
            Event::ConnectFailed(id, error) => self.tcp.connected(ctx, net, id, Err(error)),
            Event::HostData(id, data) => self.tcp.with_open(id, |guest| guest.host_data(data)),
            Event::HostEof(id) => self.tcp.with_open(id, |guest| guest.host_eof()),
            Event::HostReset(id) => self.tcp.with_open(id, |guest| guest.host_reset()),
            Event::Drained(id) => self.tcp.mark(id),
            Event::DnsAnswer { guest, server, answer } => self.udp.dns_answered(ctx, guest, server, answer),
            Event::UdpData(id, payload) => self.udp.reply(ctx, id, &payload),
            Event::UdpRefused(id) => self.udp.refused(ctx, id),
            Event::UdpClosed(id) => self.udp.closed(ctx, id),
            Event::PingDone { dst, echo, outcome } => self.pings.done(ctx, dst, &echo, outcome),
            Event::PublishedUdp { port, peer, payload } => {
                let Some(published) = self.published.get(port).filter(|p| p.transport == Transport::Udp) else {
                    return;
                };
                self.udp.published(ctx, port, published.guest_port, peer, &payload);
            }
        }
    }

    /// A connection accepted on published TCP port `port` (its index) from `peer`: the
    /// channels to relay its host side through, or `None` if it is refused (close it).
    pub fn published_tcp(&mut self, port: usize, peer: SocketAddr, now: Instant) -> Option<(FlowId, HostEnd)> {
        self.ctx.now = now;
        let guest_port = self
            .published
            .get(port)
            .filter(|p| p.transport == Transport::Tcp)?
            .guest_port;
        let ctx = &mut self.ctx;
        match ctx.check(
            Direction::Ingress,
            Protocol::Tcp,
            peer.ip(),
            guest_port,
            FlowName::Absent,
        ) {
            Verdict::Allow(_) => {}
            Verdict::Deny(rule) => {
                ctx.denied(Direction::Ingress, Protocol::Tcp, peer.ip(), guest_port, rule);
                return None;
            }
            Verdict::NeedName => {
                ctx.denied(Direction::Ingress, Protocol::Tcp, peer.ip(), guest_port, None);
                return None;
            }
        }
        if !ctx.admit() {
            return None;
        }
        let host = self.tcp.publish(ctx, &mut self.net, guest_port)?;
        ctx.counters.bump(Count::PublishedAccept);
        Some(host)
    }

    /// Moves bytes, runs timers and lets smoltcp send; call after any batch of the above.
    pub fn poll(&mut self, now: Instant) {
        self.ctx.now = now;
        if now >= self.next_sweep {
            self.tcp.mark_all();
            self.udp.sweep(now);
            self.next_sweep = now + SWEEP;
        }
        self.tcp.pump(&mut self.ctx, &mut self.net);
        self.net.egress(&mut self.ctx.out, now);
        self.tcp.reap(&mut self.ctx, &mut self.net);
        let (frames, bytes) = self.ctx.out.take_counts();
        self.traffic.packets_out += frames;
        self.traffic.bytes_out += bytes;
        self.ctx.counters.add_traffic(&self.traffic.take());
        self.ctx.counters.set_flows_open(self.ctx.open);
    }

    /// When [`poll`](Self::poll) is next needed if nothing else happens.
    pub fn poll_at(&mut self, now: Instant) -> Instant {
        self.net
            .poll_at(now)
            .map_or(self.next_sweep, |at| at.min(self.next_sweep))
    }

    /// Framed bytes for the guest (each a 4-byte big-endian length and a frame) not yet written.
    pub fn output(&self) -> &[u8] {
        self.ctx.out.bytes()
    }

    /// Marks the first `n` bytes of [`output`](Self::output) as written.
    pub fn output_written(&mut self, n: usize) {
        self.ctx.out.consume(n);
    }

    /// Whether the output is short enough to take more frames from the guest.
    pub fn output_has_room(&self) -> bool {
        self.ctx.out.has_room()
    }

    /// Work for the runtime, oldest first.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.ctx.requests)
    }

    /// TCP and UDP flows open now.
    pub fn flows_open(&self) -> usize {
        debug_assert_eq!(self.ctx.open, self.tcp.len() + self.udp.len());
        self.ctx.open
    }

    fn frame(&mut self, frame: &[u8]) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        let to = eth.dst_addr();
        if to != EthernetAddress(self.ctx.cfg.gateway_mac) && !to.is_broadcast() {
            return false;
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                let Ok(packet) = ArpPacket::new_checked(eth.payload()) else {
                    return false;
                };
                let Ok(arp) = ArpRepr::parse(&packet) else { return false };
                let gateway = self.ctx.cfg.gateway_ip;
                self.ctx.out.arp_reply(&arp, gateway);
                true
            }
            EthernetProtocol::Ipv4 => self.ipv4(eth.payload()),
            // IPv6 is off: the guest has no address for it.
            _ => false,
        }
    }

    fn ipv4(&mut self, bytes: &[u8]) -> bool {
        let Ok(packet) = Ipv4Packet::new_checked(bytes) else {
            return false;
        };
        let Ok(ip) = Ipv4Repr::parse(&packet, &ChecksumCapabilities::default()) else {
            return false;
        };
        let dst = ip.dst_addr;
        let odd = dst.is_broadcast() || dst.is_multicast() || dst.is_unspecified() || dst == self.ctx.cfg.guest_ip;
        if ip.src_addr != self.ctx.cfg.guest_ip || odd {
            return false;
        }
        let whole = &bytes[..usize::from(packet.total_len()).min(bytes.len())];
        let payload = packet.payload();
        match ip.next_header {
            IpProtocol::Tcp => self.tcp(&ip, whole, payload),
            IpProtocol::Udp => self.udp(&ip, payload),
            IpProtocol::Icmp => self.pings.packet(&mut self.ctx, &ip, payload),
            _ => false,
        }
    }

    fn tcp(&mut self, ip: &Ipv4Repr, whole: &[u8], payload: &[u8]) -> bool {
        let Ok(segment) = TcpPacket::new_checked(payload) else {
            return false;
        };
        let guest = SocketAddrV4::new(ip.src_addr, segment.src_port());
        let remote = SocketAddrV4::new(ip.dst_addr, segment.dst_port());
        let (ctx, net) = (&mut self.ctx, &mut self.net);
        if segment.syn() && !segment.ack() {
            let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
            let Ok(repr) = TcpRepr::parse(&segment, &src, &dst, &ChecksumCapabilities::default()) else {
                return false;
            };
            if repr.control != TcpControl::Syn {
                return false;
            }
            self.tcp.syn(ctx, net, Syn::new(guest, remote, &repr));
        } else {
            self.tcp.segment(
                ctx,
                net,
                Tuple {
                    guest_port: guest.port(),
                    remote,
                },
                whole,
            );
        }
        true
    }

    fn udp(&mut self, ip: &Ipv4Repr, payload: &[u8]) -> bool {
        let Ok(datagram) = UdpPacket::new_checked(payload) else {
            return false;
        };
        let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
        let Ok(repr) = UdpRepr::parse(&datagram, &src, &dst, &ChecksumCapabilities::default()) else {
            return false;
        };
        let head = &payload[..payload.len().min(8)];
        let ports = (repr.src_port, repr.dst_port);
        self.udp.datagram(&mut self.ctx, ip, head, ports, datagram.payload());
        true
    }
}

#[cfg(all(test, feature = "harness"))]
#[path = "engine_tests.rs"]
mod tests;
