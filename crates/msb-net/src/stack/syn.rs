//! A guest's SYN as the stack keeps it while the flow is decided: parsed, payload dropped,
//! re-emitted as a packet for smoltcp, quoted in ICMP errors.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr};
use std::net::SocketAddrV4;

/// IPv4 header length of the packet built here (no options).
const IP_HEADER: usize = 20;
/// Hop limit of the packet built here.
const TTL: u8 = 64;

/// A guest's SYN, kept (without any payload) until the stack decides to answer it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syn {
    pub(crate) src: SocketAddrV4,
    pub(crate) dst: SocketAddrV4,
    pub(crate) repr: TcpRepr<'static>,
}

impl Syn {
    /// The SYN in `repr` (a parsed segment) from `src` to `dst`, its payload dropped: data
    /// on a SYN (TCP Fast Open) is not acknowledged, so the guest sends it again.
    pub(crate) fn new(src: SocketAddrV4, dst: SocketAddrV4, repr: &TcpRepr<'_>) -> Syn {
        let repr = TcpRepr {
            src_port: repr.src_port,
            dst_port: repr.dst_port,
            control: TcpControl::Syn,
            seq_number: repr.seq_number,
            ack_number: None,
            window_len: repr.window_len,
            window_scale: repr.window_scale,
            max_seg_size: repr.max_seg_size,
            sack_permitted: repr.sack_permitted,
            sack_ranges: [None, None, None],
            timestamp: repr.timestamp,
            payload: &[],
        };
        Syn { src, dst, repr }
    }

    /// An empty segment from the destination back to the guest.
    pub(crate) fn reply_ports(&self) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.repr.dst_port,
            dst_port: self.repr.src_port,
            ..self.repr
        }
    }

    /// The SYN as an IPv4 packet, to hand to smoltcp.
    pub(crate) fn packet(&self) -> Vec<u8> {
        let len = self.repr.buffer_len();
        let ip = Ipv4Repr {
            src_addr: *self.src.ip(),
            dst_addr: *self.dst.ip(),
            next_header: IpProtocol::Tcp,
            payload_len: len,
            hop_limit: TTL,
        };
        let mut buf = vec![0; IP_HEADER + len];
        let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.emit(&mut packet, &ChecksumCapabilities::default());
        let (s, d) = (IpAddress::Ipv4(*self.src.ip()), IpAddress::Ipv4(*self.dst.ip()));
        self.repr.emit(
            &mut TcpPacket::new_unchecked(packet.payload_mut()),
            &s,
            &d,
            &ChecksumCapabilities::default(),
        );
        buf
    }

    /// The IPv4 header the SYN came with, for ICMP errors quoting it.
    pub(crate) fn ip_repr(&self) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: *self.src.ip(),
            dst_addr: *self.dst.ip(),
            next_header: IpProtocol::Tcp,
            payload_len: self.repr.buffer_len(),
            hop_limit: TTL,
        }
    }

    /// The first 8 bytes of the SYN's TCP header (ports and sequence number), for ICMP quotes.
    pub(crate) fn quote(&self) -> [u8; 8] {
        let mut q = [0; 8];
        q[..2].copy_from_slice(&self.repr.src_port.to_be_bytes());
        q[2..4].copy_from_slice(&self.repr.dst_port.to_be_bytes());
        q[4..].copy_from_slice(&self.repr.seq_number.0.to_be_bytes());
        q
    }
}
