//! The stack itself: frames from QEMU's stream socket into smoltcp, guest flows relayed over
//! host sockets once the policy allows them, published ports relayed in.
//!
//! How it fits together:
//! * [`run`] (driver) owns the stream socket and a tokio loop around the [`Engine`], the
//!   synchronous core that takes frames and [`Event`]s and gives frames and [`Request`]s.
//! * The engine answers ARP for the gateway and strips Ethernet itself; smoltcp sees plain
//!   IPv4 (no neighbour cache to fill) in any-IP mode, so it can terminate a TCP flow to any
//!   destination. smoltcp was chosen for a maintained, allocation-light TCP with window
//!   scaling and SACK that runs in our process without privileges.
//! * TCP: the guest's SYN is held until the policy and the upstream connect say yes (see
//!   `tcp`); bytes then move through bounded channels to one task per flow (`relay`,
//!   `tcp_host`). UDP and ICMP never touch smoltcp: the engine builds those frames itself.
//! * Nothing the guest sends can grow memory without bound: flows are capped by
//!   `max_connections`, every queue is bounded, and oversized frames are skipped.

mod context;
mod counters;
mod driver;
mod engine;
mod framing;
#[cfg(feature = "harness")]
pub mod harness;
mod icmp;
mod link;
mod messages;
mod ports;
mod relay;
mod sniffing;
mod syn;
mod tcp;
pub(crate) mod tcp_host;
mod udp;
mod udp_host;
mod wire;

pub use counters::{Counters, CountersSnapshot};
pub use driver::run;
pub use engine::Engine;
pub use framing::MAX_FRAME;
pub use messages::{ConnectError, Echo, Event, FlowId, HostEnd, HostMsg, PingOutcome, Request, Upstream};
pub use ports::{bind_ports, BoundPorts, PortError};

use std::net::Ipv4Addr;

/// The guest link's addresses and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackConfig {
    /// The guest's address.
    pub guest_ip: Ipv4Addr,
    /// The gateway's address: the guest's router, DNS server and `host.microsandbox.internal`.
    pub gateway_ip: Ipv4Addr,
    /// The guest's MAC (frames to the guest are sent to it).
    pub guest_mac: [u8; 6],
    /// The gateway's MAC (the guest sends its frames to it; ARP for the gateway answers it).
    pub gateway_mac: [u8; 6],
    /// The link MTU (IP packet size).
    pub mtu: usize,
    /// Flows (TCP and UDP) open at once; more are refused.
    pub max_connections: u32,
    /// Where flows to the gateway go on the host: its loopback address.
    pub host_loopback: Ipv4Addr,
}

impl Default for StackConfig {
    /// The first sandbox slot's /30: guest 100.96.0.2, gateway 100.96.0.1, MTU 1500.
    fn default() -> Self {
        StackConfig {
            guest_ip: Ipv4Addr::new(100, 96, 0, 2),
            gateway_ip: Ipv4Addr::new(100, 96, 0, 1),
            guest_mac: [0x02, 0x6d, 0x73, 0x62, 0x00, 0x02],
            gateway_mac: [0x02, 0x6d, 0x73, 0x62, 0x00, 0x01],
            mtu: 1500,
            max_connections: msb_types::DEFAULT_MAX_CONNECTIONS,
            host_loopback: Ipv4Addr::LOCALHOST,
        }
    }
}
