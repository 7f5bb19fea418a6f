//! Which named set ([`Group`]) an address belongs to.

use msb_types::Group;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The cloud metadata service (AWS, GCP, Azure, …).
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// AWS's IPv6 metadata service.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// The group of `ip` for a sandbox whose gateway is `gateway`.
///
/// The gateway is checked first: it sits in the guest's CGNAT subnet, which is otherwise
/// private. IPv4-mapped IPv6 addresses (and NAT64's `64:ff9b::/96`) count as the IPv4
/// address they carry. Two blocks that are not in the reference's list are placed by what a
/// flow to them reaches: `0.0.0.0/8` and `::` under loopback (Linux connects them to the
/// local host), the broadcast address `255.255.255.255` under multicast (one to many on the
/// local link). Everything else not in a group is public.
pub fn group_of(ip: IpAddr, gateway: IpAddr) -> Group {
    let ip = canonical(ip);
    if ip == canonical(gateway) {
        return Group::Host;
    }
    match ip {
        IpAddr::V4(v4) => group_v4(v4),
        IpAddr::V6(v6) => group_v6(v6),
    }
}

/// `ip`, with an IPv4-mapped IPv6 address turned into its IPv4 address.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn group_v4(ip: Ipv4Addr) -> Group {
    match ip.octets() {
        _ if ip == METADATA_V4 => Group::Metadata,
        [127 | 0, ..] => Group::Loopback,
        [169, 254, ..] => Group::LinkLocal,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] | [100, 64..=127, ..] => Group::Private,
        [224..=239, ..] | [255, 255, 255, 255] => Group::Multicast,
        _ => Group::Public,
    }
}

fn group_v6(ip: Ipv6Addr) -> Group {
    let first = ip.segments()[0];
    match ip.segments() {
        _ if ip == METADATA_V6 => Group::Metadata,
        _ if ip.is_loopback() || ip.is_unspecified() => Group::Loopback,
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => group_v4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))),
        _ if first & 0xffc0 == 0xfe80 => Group::LinkLocal,
        _ if first & 0xfe00 == 0xfc00 => Group::Private,
        _ if first & 0xff00 == 0xff00 => Group::Multicast,
        _ => Group::Public,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GATEWAY: &str = "100.96.0.1";

    fn group(ip: &str) -> Group {
        group_of(ip.parse().unwrap(), GATEWAY.parse().unwrap())
    }

    #[test]
    fn every_group_and_its_edges() {
        for (ip, expected) in [
            ("100.96.0.1", Group::Host),
            ("::ffff:100.96.0.1", Group::Host),
            ("100.96.0.2", Group::Private),
            ("169.254.169.254", Group::Metadata),
            ("::ffff:169.254.169.254", Group::Metadata),
            ("fd00:ec2::254", Group::Metadata),
            ("169.254.169.253", Group::LinkLocal),
            ("169.254.0.0", Group::LinkLocal),
            ("169.254.255.255", Group::LinkLocal),
            ("169.253.255.255", Group::Public),
            ("169.255.0.0", Group::Public),
            ("fe80::1", Group::LinkLocal),
            ("febf:ffff::1", Group::LinkLocal),
            ("fec0::1", Group::Public),
            ("127.0.0.1", Group::Loopback),
            ("127.255.255.255", Group::Loopback),
            ("::1", Group::Loopback),
            ("::ffff:127.0.0.1", Group::Loopback),
            ("0.0.0.0", Group::Loopback),
            ("0.255.255.255", Group::Loopback),
            ("::", Group::Loopback),
            ("10.0.0.0", Group::Private),
            ("10.255.255.255", Group::Private),
            ("11.0.0.0", Group::Public),
            ("9.255.255.255", Group::Public),
            ("172.16.0.0", Group::Private),
            ("172.31.255.255", Group::Private),
            ("172.15.255.255", Group::Public),
            ("172.32.0.0", Group::Public),
            ("192.168.0.1", Group::Private),
            ("192.169.0.1", Group::Public),
            ("100.64.0.0", Group::Private),
            ("100.127.255.255", Group::Private),
            ("100.63.255.255", Group::Public),
            ("100.128.0.0", Group::Public),
            ("fc00::1", Group::Private),
            ("fdff:ffff::1", Group::Private),
            ("fe00::1", Group::Public),
            ("224.0.0.1", Group::Multicast),
            ("239.255.255.255", Group::Multicast),
            ("240.0.0.1", Group::Public),
            ("255.255.255.255", Group::Multicast),
            ("ff02::1", Group::Multicast),
            ("64:ff9b::a00:1", Group::Private),
            ("64:ff9b::7f00:1", Group::Loopback),
            ("64:ff9b::808:808", Group::Public),
            ("203.0.113.10", Group::Public),
            ("8.8.8.8", Group::Public),
            ("2606:4700::1111", Group::Public),
        ] {
            assert_eq!(group(ip), expected, "{ip}");
        }
    }

    #[test]
    fn a_mapped_gateway_is_still_the_host() {
        let mapped = "::ffff:100.96.0.1".parse().unwrap();
        assert_eq!(group_of("100.96.0.1".parse().unwrap(), mapped), Group::Host);
    }
}
