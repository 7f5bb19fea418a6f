//! Frames a test guest sends by hand (UDP, ICMP, ARP, TCP segments) and reads back, built
//! and parsed with smoltcp's wire types and full checksums.

use crate::stack::{Engine, StackConfig, MAX_FRAME};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Message,
    Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, UdpPacket,
    UdpRepr,
};
use std::net::SocketAddrV4;

/// What a received frame is, as far as the tests care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An ARP reply: who has which MAC.
    ArpReply {
        /// The address answered for.
        ip: Ipv4Address,
        /// Its MAC.
        mac: [u8; 6],
    },
    /// A UDP datagram (unfragmented).
    Udp {
        /// Sender.
        src: SocketAddrV4,
        /// Receiver.
        dst: SocketAddrV4,
        /// Data.
        payload: Vec<u8>,
    },
    /// An ICMP echo reply.
    EchoReply {
        /// Who answered.
        src: Ipv4Address,
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data.
        data: Vec<u8>,
    },
    /// An ICMP destination unreachable.
    Unreachable {
        /// Who sent it.
        src: Ipv4Address,
        /// The ICMP code (3 port, 1 host, 13 administratively prohibited, …).
        code: u8,
    },
    /// Anything else.
    Other,
}

/// Parses a frame the guest received (checksums verified).
pub fn parse(frame: &[u8]) -> Received {
    parse_checked(frame).unwrap_or(Received::Other)
}

fn parse_checked(frame: &[u8]) -> Option<Received> {
    let caps = ChecksumCapabilities::default();
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() == EthernetProtocol::Arp {
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
        let ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr,
            source_protocol_addr,
            ..
        } = arp
        else {
            return None;
        };
        return Some(Received::ArpReply {
            ip: source_protocol_addr,
            mac: source_hardware_addr.0,
        });
    }
    let packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv4Repr::parse(&packet, &caps).ok()?;
    match ip.next_header {
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(packet.payload()).ok()?;
            let (s, d) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
            let repr = UdpRepr::parse(&udp, &s, &d, &caps).ok()?;
            let src = SocketAddrV4::new(ip.src_addr, repr.src_port);
            let dst = SocketAddrV4::new(ip.dst_addr, repr.dst_port);
            Some(Received::Udp {
                src,
                dst,
                payload: udp.payload().to_vec(),
            })
        }
        IpProtocol::Icmp => {
            let icmp = Icmpv4Packet::new_checked(packet.payload()).ok()?;
            // smoltcp's parser wants the whole quoted packet; an error quotes only its start.
            if icmp.msg_type() == Icmpv4Message::DstUnreachable && icmp.verify_checksum() {
                return Some(Received::Unreachable {
                    src: ip.src_addr,
                    code: icmp.msg_code(),
                });
            }
            match Icmpv4Repr::parse(&icmp, &caps).ok()? {
                Icmpv4Repr::EchoReply { ident, seq_no, data } => Some(Received::EchoReply {
                    src: ip.src_addr,
                    ident,
                    seq: seq_no,
                    data: data.to_vec(),
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An Ethernet frame from the guest to the gateway's MAC carrying `ip` and its payload.
fn ipv4(cfg: &StackConfig, ip: Ipv4Repr, payload: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let eth = EthernetRepr {
        src_addr: EthernetAddress(cfg.guest_mac),
        dst_addr: EthernetAddress(cfg.gateway_mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut frame = vec![0; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    let mut eth_frame = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut eth_frame);
    let mut packet = Ipv4Packet::new_unchecked(eth_frame.payload_mut());
    ip.emit(&mut packet, &ChecksumCapabilities::default());
    payload(packet.payload_mut());
    frame
}

/// A UDP datagram frame from `src` to `dst`.
pub fn udp(cfg: &StackConfig, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    let ip = Ipv4Repr {
        src_addr: *src.ip(),
        dst_addr: *dst.ip(),
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let (s, d) = (IpAddress::Ipv4(*src.ip()), IpAddress::Ipv4(*dst.ip()));
    ipv4(cfg, ip, |buf| {
        let fill = |p: &mut [u8]| p.copy_from_slice(payload);
        udp.emit(
            &mut UdpPacket::new_unchecked(buf),
            &s,
            &d,
            payload.len(),
            fill,
            &ChecksumCapabilities::default(),
        )
    })
}

/// An ICMP echo request frame from the guest to `dst`.
pub fn ping(cfg: &StackConfig, dst: Ipv4Address, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident,
        seq_no: seq,
        data,
    };
    let ip = Ipv4Repr {
        src_addr: cfg.guest_ip,
        dst_addr: dst,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    ipv4(cfg, ip, |buf| {
        icmp.emit(&mut Icmpv4Packet::new_unchecked(buf), &ChecksumCapabilities::default())
    })
}

/// A broadcast ARP request from the guest for `ip`.
pub fn arp_request(cfg: &StackConfig, ip: Ipv4Address) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(cfg.guest_mac),
        source_protocol_addr: cfg.guest_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ip,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(cfg.guest_mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut frame = vec![0; eth.buffer_len() + arp.buffer_len()];
    let mut eth_frame = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut eth_frame);
    arp.emit(&mut ArpPacket::new_unchecked(eth_frame.payload_mut()));
    frame
}

/// A TCP segment frame from the guest's port `repr.src_port` to `dst` (`repr.dst_port` is
/// taken from `dst`).
pub fn tcp(cfg: &StackConfig, dst: Ipv4Address, repr: &TcpRepr<'_>) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: cfg.guest_ip,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: repr.buffer_len(),
        hop_limit: 64,
    };
    let (s, d) = (IpAddress::Ipv4(cfg.guest_ip), IpAddress::Ipv4(dst));
    ipv4(cfg, ip, |buf| {
        repr.emit(
            &mut TcpPacket::new_unchecked(buf),
            &s,
            &d,
            &ChecksumCapabilities::default(),
        )
    })
}

/// The TCP segment in a frame the guest received (checksums verified), as a repr with an
/// owned copy of its payload.
pub fn tcp_segment(frame: &[u8]) -> Option<(TcpRepr<'static>, Vec<u8>)> {
    let caps = ChecksumCapabilities::default();
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv4Repr::parse(&packet, &caps).ok()?;
    let tcp = TcpPacket::new_checked(packet.payload()).ok()?;
    let (s, d) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
    let repr = TcpRepr::parse(&tcp, &s, &d, &caps).ok()?;
    let payload = repr.payload.to_vec();
    Some((TcpRepr { payload: &[], ..repr }, payload))
}

/// The frames in the engine's output, which must be whole and of plausible lengths
/// (panics otherwise), and marks the output written.
pub fn take_output(engine: &mut Engine) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut rest = engine.output();
    while !rest.is_empty() {
        assert!(rest.len() >= 4, "a partial length prefix");
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!((14..=MAX_FRAME).contains(&len), "frame length {len}");
        assert!(rest.len() >= 4 + len, "a partial frame");
        frames.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    let n = engine.output().len();
    engine.output_written(n);
    frames
}
