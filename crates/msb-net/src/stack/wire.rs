//! Frames the stack writes itself (ARP, ICMP, UDP, RSTs), built in place in the output buffer
//! with full checksums: QEMU's stream backend offloads nothing.

use super::framing::PREFIX;
use super::syn::Syn;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetProtocol, Icmpv4DstUnreachable, Icmpv4Packet,
    Icmpv4Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Ethernet header length.
pub(crate) const ETH_HEADER: usize = 14;
/// IPv4 header length of every packet built here (no options).
const IP_HEADER: usize = 20;
/// Hop limit of packets built here.
const TTL: u8 = 64;
/// The largest UDP payload an IPv4 datagram can carry.
const MAX_UDP_PAYLOAD: usize = 65535 - IP_HEADER - 8;
/// Output is not grown past this by smoltcp's egress; the driver flushes it first.
const OUT_HIGH_WATER: usize = 1024 * 1024;

/// Framed bytes for the guest, ready to write to the stream socket as they are.
#[derive(Debug)]
pub(crate) struct Out {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written to the socket.
    sent: usize,
    guest_mac: EthernetAddress,
    gateway_mac: EthernetAddress,
    /// IPv4 identification for fragmented datagrams.
    ident: u16,
    /// Frames and frame bytes appended since the last [`take_counts`](Out::take_counts).
    frames: u64,
    frame_bytes: u64,
}

impl Out {
    pub(crate) fn new(guest_mac: [u8; 6], gateway_mac: [u8; 6]) -> Out {
        Out {
            buf: Vec::with_capacity(OUT_HIGH_WATER + 2 * super::framing::MAX_FRAME),
            sent: 0,
            guest_mac: EthernetAddress(guest_mac),
            gateway_mac: EthernetAddress(gateway_mac),
            ident: 0,
            frames: 0,
            frame_bytes: 0,
        }
    }

    /// Whether smoltcp may emit more before the driver flushes.
    pub(crate) fn has_room(&self) -> bool {
        self.len() < OUT_HIGH_WATER
    }

    /// The bytes not yet written to the socket.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Marks `n` more bytes as written; the buffer is reset (not shifted) once all are.
    pub(crate) fn consume(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.buf.len());
        if self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
        } else if self.sent > OUT_HIGH_WATER {
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Frames and bytes appended since the last call.
    pub(crate) fn take_counts(&mut self) -> (u64, u64) {
        (std::mem::take(&mut self.frames), std::mem::take(&mut self.frame_bytes))
    }

    /// Appends one frame of `ethertype` whose payload (`len` bytes) `fill` writes.
    pub(crate) fn frame<R>(&mut self, ethertype: EthernetProtocol, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> R {
        let start = self.buf.len();
        let total = ETH_HEADER + len;
        self.buf.extend_from_slice(&(total as u32).to_be_bytes());
        self.buf.extend_from_slice(self.guest_mac.as_bytes());
        self.buf.extend_from_slice(self.gateway_mac.as_bytes());
        self.buf.extend_from_slice(&u16::from(ethertype).to_be_bytes());
        self.buf.resize(start + PREFIX + total, 0);
        self.frames += 1;
        self.frame_bytes += total as u64;
        fill(&mut self.buf[start + PREFIX + ETH_HEADER..])
    }

    /// The reply to an ARP request for `gateway_ip`, if `request` is one.
    pub(crate) fn arp_reply(&mut self, request: &ArpRepr, gateway_ip: Ipv4Addr) {
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = *request
        else {
            return;
        };
        if operation != ArpOperation::Request || target_protocol_addr != gateway_ip {
            return;
        }
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.gateway_mac,
            source_protocol_addr: gateway_ip,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        self.frame(EthernetProtocol::Arp, reply.buffer_len(), |buf| {
            reply.emit(&mut ArpPacket::new_unchecked(buf))
        });
    }

    /// An IPv4 packet from `src` to `dst` whose payload `fill` writes (`len` bytes, ≤ MTU).
    fn ipv4(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, len: usize, fill: impl FnOnce(&mut [u8])) {
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: proto,
            payload_len: len,
            hop_limit: TTL,
        };
        self.frame(EthernetProtocol::Ipv4, IP_HEADER + len, |buf| {
            let mut packet = Ipv4Packet::new_unchecked(buf);
            repr.emit(&mut packet, &ChecksumCapabilities::default());
            fill(packet.payload_mut());
        });
    }

    /// An ICMP message from `src` to `dst`.
    pub(crate) fn icmp(&mut self, src: Ipv4Addr, dst: Ipv4Addr, icmp: &Icmpv4Repr<'_>) {
        self.ipv4(src, dst, IpProtocol::Icmp, icmp.buffer_len(), |buf| {
            icmp.emit(&mut Icmpv4Packet::new_unchecked(buf), &ChecksumCapabilities::default())
        });
    }

    /// ICMP destination unreachable for a packet `quoted` (its IPv4 header) that carried
    /// `data` (at least its first 8 payload bytes), sent from `src`.
    pub(crate) fn unreachable(&mut self, src: Ipv4Addr, reason: Icmpv4DstUnreachable, quoted: Ipv4Repr, data: &[u8]) {
        let data = &data[..data.len().min(8)];
        let icmp = Icmpv4Repr::DstUnreachable {
            reason,
            header: quoted,
            data,
        };
        self.icmp(src, quoted.src_addr, &icmp);
    }

    /// A UDP datagram, fragmented when it does not fit in `mtu`.
    pub(crate) fn udp(&mut self, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8], mtu: usize) {
        if payload.len() > MAX_UDP_PAYLOAD {
            return;
        }
        let repr = UdpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
        };
        let len = repr.header_len() + payload.len();
        let (s, d) = (IpAddress::Ipv4(*src.ip()), IpAddress::Ipv4(*dst.ip()));
        let emit = |buf: &mut [u8]| {
            let mut packet = UdpPacket::new_unchecked(buf);
            repr.emit(
                &mut packet,
                &s,
                &d,
                payload.len(),
                |p| p.copy_from_slice(payload),
                &ChecksumCapabilities::default(),
            );
        };
        if IP_HEADER + len <= mtu {
            self.ipv4(*src.ip(), *dst.ip(), IpProtocol::Udp, len, emit);
            return;
        }
        let mut datagram = vec![0; len];
        emit(&mut datagram);
        self.fragments(*src.ip(), *dst.ip(), &datagram, mtu);
    }

    /// `datagram` (a UDP header and payload) as IPv4 fragments of at most `mtu` bytes.
    fn fragments(&mut self, src: Ipv4Addr, dst: Ipv4Addr, datagram: &[u8], mtu: usize) {
        self.ident = self.ident.wrapping_add(1);
        let ident = self.ident;
        let step = (mtu.saturating_sub(IP_HEADER) / 8).max(1) * 8;
        for (i, piece) in datagram.chunks(step).enumerate() {
            let offset = i * step;
            let more = offset + piece.len() < datagram.len();
            let repr = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: IpProtocol::Udp,
                payload_len: piece.len(),
                hop_limit: TTL,
            };
            self.frame(EthernetProtocol::Ipv4, IP_HEADER + piece.len(), |buf| {
                let mut packet = Ipv4Packet::new_unchecked(buf);
                repr.emit(&mut packet, &ChecksumCapabilities::ignored());
                packet.set_ident(ident);
                packet.set_dont_frag(false);
                packet.set_more_frags(more);
                packet.set_frag_offset(offset as u16);
                packet.fill_checksum();
                packet.payload_mut().copy_from_slice(piece);
            });
        }
    }

    /// A RST|ACK refusing the connection `syn` asked for.
    pub(crate) fn refuse(&mut self, syn: &Syn) {
        let rst = TcpRepr {
            control: TcpControl::Rst,
            seq_number: smoltcp::wire::TcpSeqNumber(0),
            ack_number: Some(syn.repr.seq_number + 1),
            window_len: 0,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            timestamp: None,
            ..syn.reply_ports()
        };
        let (s, d) = (IpAddress::Ipv4(*syn.dst.ip()), IpAddress::Ipv4(*syn.src.ip()));
        self.ipv4(*syn.dst.ip(), *syn.src.ip(), IpProtocol::Tcp, rst.buffer_len(), |buf| {
            rst.emit(
                &mut TcpPacket::new_unchecked(buf),
                &s,
                &d,
                &ChecksumCapabilities::default(),
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 packets in `out`, Ethernet headers and length prefixes removed.
    fn packets(out: &Out) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        let mut rest = out.bytes();
        while let Some(prefix) = rest.get(..PREFIX) {
            let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
            packets.push(rest[PREFIX + ETH_HEADER..PREFIX + len].to_vec());
            rest = &rest[PREFIX + len..];
        }
        packets
    }

    #[test]
    fn a_datagram_larger_than_the_mtu_is_sent_as_fragments_that_reassemble() {
        let mut out = Out::new([2; 6], [4; 6]);
        let (src, dst) = (
            SocketAddrV4::new([100, 96, 0, 1].into(), 53),
            SocketAddrV4::new([100, 96, 0, 2].into(), 999),
        );
        let payload: Vec<u8> = (0..4000u32).map(|i| (i * 7) as u8).collect();
        out.udp(src, dst, &payload, 1500);
        let mut datagram = vec![0; 8 + payload.len()];
        let mut ends = Vec::new();
        for bytes in packets(&out) {
            let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            assert!(packet.verify_checksum());
            assert!(bytes.len() <= 1500);
            let at = usize::from(packet.frag_offset());
            datagram[at..at + packet.payload().len()].copy_from_slice(packet.payload());
            ends.push((at + packet.payload().len(), packet.more_frags()));
        }
        assert_eq!(ends, vec![(1480, true), (2960, true), (4008, false)]);
        let udp = UdpPacket::new_checked(&datagram[..]).unwrap();
        assert!(udp.verify_checksum(&IpAddress::Ipv4(*src.ip()), &IpAddress::Ipv4(*dst.ip())));
        assert_eq!(udp.payload(), &payload[..]);
    }

    #[test]
    fn an_arp_request_for_another_address_gets_no_reply() {
        let mut out = Out::new([2; 6], [4; 6]);
        let request = |target: [u8; 4]| ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2; 6]),
            source_protocol_addr: [100, 96, 0, 2].into(),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target.into(),
        };
        out.arp_reply(&request([100, 96, 0, 3]), [100, 96, 0, 1].into());
        assert_eq!(out.len(), 0);
        out.arp_reply(&request([100, 96, 0, 1]), [100, 96, 0, 1].into());
        assert_eq!(out.len(), PREFIX + ETH_HEADER + 28);
    }
}
