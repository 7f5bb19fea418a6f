//! The network part of a boot plan: the guest's addresses on its one interface, and what the
//! supervisor's stack needs to serve it.

use msb_protocol::GuestNetwork;
use msb_types::NetworkSpec;
use msb_vmm::NetDevice;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The guest's address. Every sandbox has the same: each has a stack of its own, so no two
/// ever meet on one link. In CGNAT space (100.64.0.0/10), as the reference's, so it never
/// shadows a LAN the guest might be allowed to reach.
const GUEST_IP: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 2);
/// The gateway: the supervisor's stack, DNS server and `host.microsandbox.internal`.
const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 1);
/// A /30: the guest and the gateway.
const PREFIX_LEN: u8 = 30;
/// Locally administered MACs (the 0x02 bit) spelling "msb".
const GUEST_MAC: [u8; 6] = [0x02, 0x6d, 0x73, 0x62, 0x00, 0x02];
const GATEWAY_MAC: [u8; 6] = [0x02, 0x6d, 0x73, 0x62, 0x00, 0x01];
/// Ethernet's MTU: what every path beyond the host takes without fragmenting.
const MTU: u16 = 1500;

/// How a sandbox's network is wired: addresses on both ends of the link and the policy,
/// DNS and ports its supervisor enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// What the user asked for.
    pub spec: NetworkSpec,
    /// The guest's address.
    pub guest_ip: Ipv4Addr,
    /// The gateway's address.
    pub gateway_ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The guest's MAC.
    pub guest_mac: [u8; 6],
    /// The gateway's MAC.
    pub gateway_mac: [u8; 6],
    /// The link's MTU.
    pub mtu: u16,
}

impl NetworkPlan {
    /// The wiring of a sandbox whose network is `spec`; `None` when it has none.
    pub fn of(spec: &NetworkSpec) -> Option<NetworkPlan> {
        spec.enabled.then(|| NetworkPlan {
            spec: spec.clone(),
            guest_ip: GUEST_IP,
            gateway_ip: GATEWAY_IP,
            prefix_len: PREFIX_LEN,
            guest_mac: GUEST_MAC,
            gateway_mac: GATEWAY_MAC,
            mtu: MTU,
        })
    }

    /// The VM's network device.
    pub fn device(&self) -> NetDevice {
        NetDevice { mac: self.guest_mac }
    }

    /// What the agent configures.
    pub fn guest(&self) -> GuestNetwork {
        GuestNetwork {
            mac: self.guest_mac,
            address: self.guest_ip.octets(),
            prefix_len: self.prefix_len,
            gateway: self.gateway_ip.octets(),
            mtu: self.mtu,
        }
    }
}
