//! What every part of the engine shares: the configuration, the policy, the output buffer,
//! the request queue and the counters ([`Ctx`]); and smoltcp's interface and sockets ([`Net`]).

use super::counters::{Count, Counters};
use super::link::Link;
use super::messages::{ConnectError, FlowId, Request};
use super::wire::Out;
use super::StackConfig;
use crate::dns::Pins;
use crate::intercept::Interception;
use crate::policy::{FlowName, FlowQuery, Policy, Verdict};
use crate::ratelimit::RateLimit;
use msb_types::{Direction, Protocol};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, Icmpv4DstUnreachable, IpAddress, IpCidr, Ipv4Repr};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Receive and send buffer of each guest-facing TCP socket: large enough that one flow can
/// keep a few Gbit/s in flight between polls, and a cap on what one flow can hold.
pub(crate) const SOCKET_BUFFER: usize = 256 * 1024;
/// A guest that stops acknowledging for this long loses the connection.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(120);
/// Egress rounds per poll at most (each sends at most one segment per socket).
const EGRESS_ROUNDS: usize = 4096;

/// Shared state of the engine.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cfg: StackConfig,
    policy: Arc<Policy>,
    pins: Arc<Pins>,
    intercept: Option<Arc<Interception>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) out: Out,
    pub(crate) requests: Vec<Request>,
    pub(crate) now: Instant,
    /// TCP and UDP flows open.
    pub(crate) open: usize,
    next_flow: u64,
    icmp_limit: RateLimit,
    log_limit: RateLimit,
}

impl Ctx {
    pub(crate) fn new(
        cfg: StackConfig,
        policy: Arc<Policy>,
        pins: Arc<Pins>,
        intercept: Option<Arc<Interception>>,
        counters: Arc<Counters>,
        now: Instant,
    ) -> Ctx {
        let out = Out::new(cfg.guest_mac, cfg.gateway_mac);
        Ctx {
            cfg,
            policy,
            pins,
            intercept,
            counters,
            out,
            requests: Vec::new(),
            now,
            open: 0,
            next_flow: 0,
            icmp_limit: RateLimit::new(100, 100),
            log_limit: RateLimit::new(10, 2),
        }
    }

    /// Asks the policy about a flow to or from `ip`.
    pub(crate) fn check(
        &self,
        direction: Direction,
        protocol: Protocol,
        ip: impl Into<IpAddr>,
        port: u16,
        name: FlowName<'_>,
    ) -> Verdict {
        let ip = ip.into();
        let pinned_names = self.pins.names(ip);
        self.policy.check(&FlowQuery {
            direction,
            protocol,
            ip,
            port,
            pinned_names: &pinned_names,
            name,
        })
    }

    /// Whether TCP flows to `port` are read for their name even when the policy does not
    /// need it: interception decides on the TLS name.
    pub(crate) fn sniffs(&self, port: u16) -> bool {
        self.intercept.as_ref().is_some_and(|i| i.sniffs(port))
    }

    /// Whether a UDP datagram to `ip`:`port` is dropped (QUIC to an intercepted host).
    pub(crate) fn drops_udp(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.intercept
            .as_ref()
            .is_some_and(|i| i.drops_udp(port, &self.pins.names(IpAddr::V4(ip))))
    }

    /// Whether one more flow may open; counts the refusal when not.
    pub(crate) fn admit(&mut self) -> bool {
        if self.open < self.cfg.max_connections as usize {
            return true;
        }
        self.counters.bump(Count::DeniedMaxConnections);
        if self.log_limit.allow(self.now) {
            tracing::warn!(max = self.cfg.max_connections, "flow refused: too many open");
        }
        false
    }

    /// A new flow, counted as open.
    pub(crate) fn open_flow(&mut self) -> FlowId {
        self.open += 1;
        self.next_flow += 1;
        FlowId(self.next_flow)
    }

    pub(crate) fn close_flow(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    /// Counts and (rate-limited) logs a flow the policy refused.
    pub(crate) fn denied(
        &mut self,
        direction: Direction,
        protocol: Protocol,
        ip: impl Into<IpAddr>,
        port: u16,
        rule: Option<usize>,
    ) {
        let ip = ip.into();
        self.counters.bump(Count::DeniedPolicy);
        if let Some(suppressed) = self.log_limit.admit(self.now) {
            tracing::info!(?direction, ?protocol, %ip, port, ?rule, suppressed, "flow denied by policy");
        }
    }

    /// Counts an upstream that could not be connected.
    pub(crate) fn upstream_failed(&self, error: ConnectError) {
        self.counters.bump(match error {
            ConnectError::Refused => Count::UpstreamRefused,
            ConnectError::Unreachable => Count::UpstreamUnreachable,
        });
    }

    /// Where a guest destination is reached from the host: the gateway means the host itself.
    pub(crate) fn host_ip(&self, dst: Ipv4Addr) -> Ipv4Addr {
        if dst == self.cfg.gateway_ip {
            self.cfg.host_loopback
        } else {
            dst
        }
    }

    /// ICMP destination unreachable from `src` about `quoted`, unless the guest has had too many.
    pub(crate) fn unreachable(&mut self, src: Ipv4Addr, reason: Icmpv4DstUnreachable, quoted: Ipv4Repr, data: &[u8]) {
        if self.icmp_limit.allow(self.now) {
            self.out.unreachable(src, reason, quoted, data);
        }
    }
}

/// smoltcp's interface (any-IP, so it terminates flows to every address) and its sockets.
pub(crate) struct Net {
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    epoch: Instant,
    mtu: usize,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("sockets", &self.sockets.iter().count())
            .finish_non_exhaustive()
    }
}

impl Net {
    pub(crate) fn new(cfg: &StackConfig, out: &mut Out, now: Instant) -> Net {
        let mut config = Config::new(HardwareAddress::Ip);
        // Seeds the initial sequence numbers; only the guest sees them.
        config.random_seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let mut link = Link::new(None, out, cfg.mtu);
        let mut iface = Interface::new(config, &mut link, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(cfg.gateway_ip), 30));
        });
        // Any-IP with a default route through our own address: smoltcp accepts segments to
        // every destination, so a socket can listen on exactly the address the guest dialled.
        let _ = iface.routes_mut().add_default_ipv4_route(cfg.gateway_ip);
        iface.set_any_ip(true);
        Net {
            iface,
            sockets: SocketSet::new(Vec::new()),
            epoch: now,
            mtu: cfg.mtu,
        }
    }

    pub(crate) fn stamp(&self, now: Instant) -> smoltcp::time::Instant {
        let micros = now.saturating_duration_since(self.epoch).as_micros();
        smoltcp::time::Instant::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// A guest-facing TCP socket, not yet listening or connecting.
    pub(crate) fn socket() -> tcp::Socket<'static> {
        let rx = tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]);
        let tx = tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]);
        let mut socket = tcp::Socket::new(rx, tx);
        // Bytes are relayed as they come; Nagle would only add latency on top of the host's.
        socket.set_nagle_enabled(false);
        socket.set_timeout(Some(smoltcp::time::Duration::from_micros(
            SOCKET_TIMEOUT.as_micros() as u64
        )));
        socket
    }

    pub(crate) fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Hands one IPv4 packet from the guest to smoltcp.
    pub(crate) fn ingest(&mut self, packet: &[u8], out: &mut Out, now: Instant) {
        let stamp = self.stamp(now);
        let mut link = Link::new(Some(packet), out, self.mtu);
        self.iface.poll_ingress_single(stamp, &mut link, &mut self.sockets);
    }

    /// Lets every socket send what it can, until nothing is left or the output is full.
    pub(crate) fn egress(&mut self, out: &mut Out, now: Instant) {
        let stamp = self.stamp(now);
        for _ in 0..EGRESS_ROUNDS {
            let mut link = Link::new(None, out, self.mtu);
            let sent = self.iface.poll_egress(stamp, &mut link, &mut self.sockets);
            if sent == smoltcp::iface::PollResult::None || !out.has_room() {
                break;
            }
        }
    }

    /// When smoltcp next needs a poll (timers: retransmission, delayed ACK, TIME-WAIT).
    pub(crate) fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let at = self.iface.poll_at(self.stamp(now), &self.sockets)?;
        Some(self.epoch + Duration::from_micros(at.total_micros().max(0) as u64))
    }
}
