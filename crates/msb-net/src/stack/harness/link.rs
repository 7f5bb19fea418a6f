//! The guest's side of the stream socket as a smoltcp device: a reader thread drains the
//! socket into a queue, frames are cut from it in place; TCP and ARP go to the guest's
//! smoltcp, UDP and ICMP to an inbox the test reads (and TCP control segments are noted).

use crate::stack::framing::PREFIX;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// A TCP segment carrying SYN, FIN or RST that reached the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Who sent it (as the guest sees it).
    pub from: SocketAddrV4,
    /// The guest port it went to.
    pub to_port: u16,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// RST flag.
    pub rst: bool,
    /// FIN flag.
    pub fin: bool,
}

/// Bytes taken from the reader thread per fill at most.
const FILL_LIMIT: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct GuestLink {
    sock: UnixStream,
    chunks: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    start: usize,
    out: Vec<u8>,
    mtu: usize,
    pub(crate) seen: Vec<Seen>,
    pub(crate) inbox: Vec<Vec<u8>>,
}

impl GuestLink {
    pub(crate) fn new(sock: UnixStream, mtu: usize) -> io::Result<GuestLink> {
        let mut reader = sock.try_clone()?;
        let (tx, chunks) = mpsc::channel();
        std::thread::Builder::new()
            .name("guest-link-reader".into())
            .spawn(move || {
                let mut buf = vec![0; 256 * 1024];
                while let Ok(n @ 1..) = reader.read(&mut buf) {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(GuestLink {
            sock,
            chunks,
            pending: Vec::new(),
            start: 0,
            out: Vec::new(),
            mtu,
            seen: Vec::new(),
            inbox: Vec::new(),
        })
    }

    /// Waits up to `wait` for bytes from the stack, then takes whatever else has arrived.
    pub(crate) fn fill(&mut self, wait: Duration) -> io::Result<()> {
        if self.start > 0 {
            self.pending.drain(..self.start);
            self.start = 0;
        }
        let first = match self.chunks.recv_timeout(wait) {
            Ok(chunk) => chunk,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Err(io::ErrorKind::UnexpectedEof.into()),
        };
        self.pending.extend_from_slice(&first);
        while self.pending.len() < FILL_LIMIT {
            let Ok(chunk) = self.chunks.try_recv() else { break };
            self.pending.extend_from_slice(&chunk);
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.sock.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.sock.write_all(bytes)
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// The next whole frame's range in `pending`.
    fn next_frame(&mut self) -> Option<(usize, usize)> {
        let prefix = self.pending.get(self.start..self.start + PREFIX)?;
        let len = u32::from_be_bytes(prefix.try_into().ok()?) as usize;
        let body = self.start + PREFIX;
        if self.pending.len() < body + len {
            return None;
        }
        self.start = body + len;
        Some((body, body + len))
    }
}

/// Whether smoltcp should see `frame` (TCP and ARP); notes TCP control segments.
fn for_smoltcp(frame: &[u8], seen: &mut Vec<Seen>) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => true,
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return false;
            };
            if ip.next_header() != IpProtocol::Tcp {
                return false;
            }
            if let Ok(tcp) = TcpPacket::new_checked(ip.payload()) {
                if tcp.syn() || tcp.fin() || tcp.rst() {
                    let from = SocketAddrV4::new(ip.src_addr(), tcp.src_port());
                    let (syn, ack, rst, fin) = (tcp.syn(), tcp.ack(), tcp.rst(), tcp.fin());
                    seen.push(Seen {
                        from,
                        to_port: tcp.dst_port(),
                        syn,
                        ack,
                        rst,
                        fin,
                    });
                }
            }
            true
        }
        _ => false,
    }
}

pub(crate) struct Rx<'a>(&'a [u8]);
pub(crate) struct Tx<'a>(&'a mut Vec<u8>);

impl Device for GuestLink {
    type RxToken<'a>
        = Rx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        loop {
            let (from, to) = self.next_frame()?;
            let frame = &self.pending[from..to];
            if for_smoltcp(frame, &mut self.seen) {
                if EthernetFrame::new_checked(frame).is_ok_and(|e| e.ethertype() == EthernetProtocol::Arp) {
                    self.inbox.push(frame.to_vec());
                }
                return Some((Rx(&self.pending[from..to]), Tx(&mut self.out)));
            }
            self.inbox.push(frame.to_vec());
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.out))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        caps
    }
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let start = self.0.len();
        self.0.extend_from_slice(&(len as u32).to_be_bytes());
        self.0.resize(start + PREFIX + len, 0);
        f(&mut self.0[start + PREFIX..])
    }
}
