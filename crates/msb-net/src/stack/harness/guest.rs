//! A stand-in guest: a smoltcp Ethernet interface with the guest's address and MAC on the
//! far end of the stream socket, speaking QEMU's framing. Tests drive it step by step; a
//! reader thread keeps draining the socket so the stack never blocks on a busy test.

use super::frames;
use super::link::{GuestLink, Seen};
use crate::stack::StackConfig;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use std::io;
use std::net::SocketAddrV4;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Polls per step at most.
const EGRESS_ROUNDS: usize = 4096;
/// Buffer size of the guest's TCP sockets (both directions).
const GUEST_BUFFER: usize = 1024 * 1024;

/// The guest end of the link.
pub struct Guest {
    iface: Interface,
    sockets: SocketSet<'static>,
    link: GuestLink,
    cfg: StackConfig,
    epoch: Instant,
    next_port: u16,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Guest {
    /// A guest configured as `cfg` describes, on `sock`.
    pub fn new(sock: UnixStream, cfg: &StackConfig) -> io::Result<Guest> {
        let mut link = GuestLink::new(sock, cfg.mtu)?;
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(cfg.guest_mac)));
        let mut iface = Interface::new(config, &mut link, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(cfg.guest_ip), 30));
        });
        iface
            .routes_mut()
            .add_default_ipv4_route(cfg.gateway_ip)
            .map_err(io::Error::other)?;
        let sockets = SocketSet::new(Vec::new());
        Ok(Guest {
            iface,
            sockets,
            link,
            cfg: cfg.clone(),
            epoch: Instant::now(),
            next_port: 40000,
        })
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    fn socket() -> tcp::Socket<'static> {
        let rx = tcp::SocketBuffer::new(vec![0; GUEST_BUFFER]);
        let tx = tcp::SocketBuffer::new(vec![0; GUEST_BUFFER]);
        tcp::Socket::new(rx, tx)
    }

    /// Opens a TCP connection to `dst` from a fresh local port.
    pub fn connect(&mut self, dst: SocketAddrV4) -> io::Result<SocketHandle> {
        self.next_port = if self.next_port >= 60000 {
            40000
        } else {
            self.next_port + 1
        };
        let mut sock = Guest::socket();
        sock.connect(self.iface.context(), dst, self.next_port)
            .map_err(io::Error::other)?;
        Ok(self.sockets.add(sock))
    }

    /// Listens for one TCP connection on `port`.
    pub fn listen(&mut self, port: u16) -> io::Result<SocketHandle> {
        let mut sock = Guest::socket();
        sock.listen(port).map_err(io::Error::other)?;
        Ok(self.sockets.add(sock))
    }

    /// The TCP socket `handle` names.
    pub fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Forgets socket `handle` (whatever its state).
    pub fn remove(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
    }

    /// Exchanges frames: sends what the guest has queued, waits up to `wait` for the stack,
    /// lets smoltcp take what arrived and answer.
    pub fn step(&mut self, wait: Duration) -> io::Result<()> {
        self.poll()?;
        let now = self.now();
        let delay = self
            .iface
            .poll_delay(now, &self.sockets)
            .map_or(wait, |d| Duration::from_micros(d.total_micros()));
        self.link.fill(wait.min(delay))?;
        self.poll()
    }

    /// Takes every frame that arrived, then lets smoltcp send until it has nothing more
    /// (one poll sends at most one segment per socket).
    fn poll(&mut self) -> io::Result<()> {
        for _ in 0..EGRESS_ROUNDS {
            let now = self.now();
            if self.iface.poll(now, &mut self.link, &mut self.sockets) == PollResult::None {
                break;
            }
        }
        self.link.flush()
    }

    /// Steps until `done` holds or `timeout` passes; whether it held.
    pub fn run_until(&mut self, timeout: Duration, mut done: impl FnMut(&mut Guest) -> bool) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(self) {
                return Ok(true);
            }
            self.step(Duration::from_millis(5))?;
        }
        Ok(done(self))
    }

    /// Writes raw bytes to the stream socket (framing included, or deliberately broken).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.link.send_raw(bytes)
    }

    /// Sends one Ethernet frame, length prefix added.
    pub fn send_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(frame);
        self.link.send_raw(&bytes)
    }

    /// Sends a UDP datagram from the guest's `src_port` to `dst`, to the gateway's MAC.
    pub fn send_udp(&mut self, src_port: u16, dst: SocketAddrV4, payload: &[u8]) -> io::Result<()> {
        let frame = frames::udp(&self.cfg, SocketAddrV4::new(self.cfg.guest_ip, src_port), dst, payload);
        self.send_frame(&frame)
    }

    /// Sends an ICMP echo request to `dst`.
    pub fn send_ping(&mut self, dst: Ipv4Address, ident: u16, seq: u16, data: &[u8]) -> io::Result<()> {
        let frame = frames::ping(&self.cfg, dst, ident, seq, data);
        self.send_frame(&frame)
    }

    /// Steps until a received non-TCP frame satisfies `wanted`, and returns it.
    pub fn wait_frame(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.link.inbox.iter().position(|f| wanted(f)) {
                return Ok(Some(self.link.inbox.remove(at)));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.step(Duration::from_millis(5))?;
        }
    }

    /// TCP segments with SYN, FIN or RST the guest has received, oldest first.
    pub fn seen(&self) -> &[Seen] {
        &self.link.seen
    }

    /// Closes the guest's end of the link.
    pub fn shutdown(&self) {
        self.link.shutdown();
    }
}
