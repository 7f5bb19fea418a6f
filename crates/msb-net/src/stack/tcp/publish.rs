//! Connections accepted on published TCP ports: smoltcp connects to the guest from a
//! gateway port, and the host side is relayed like any flow.

use super::{Flow, Phase, TcpTable, Tuple};
use crate::stack::context::{Ctx, Net};
use crate::stack::messages::{FlowId, HostEnd};
use crate::stack::relay::GuestEnd;
use smoltcp::wire::IpAddress;
use std::net::SocketAddrV4;

/// Gateway ports published connections come from.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

impl TcpTable {
    /// A connection accepted on a published port towards `guest_port`: smoltcp connects to
    /// the guest from the gateway; the caller relays the host side through the result.
    pub(crate) fn publish(&mut self, ctx: &mut Ctx, net: &mut Net, guest_port: u16) -> Option<(FlowId, HostEnd)> {
        let remote = self.free_port(ctx, guest_port)?;
        let mut sock = Net::socket();
        let guest = (IpAddress::Ipv4(ctx.cfg.guest_ip), guest_port);
        sock.connect(
            net.iface.context(),
            guest,
            (IpAddress::Ipv4(*remote.ip()), remote.port()),
        )
        .ok()?;
        let handle = net.sockets.add(sock);
        let id = ctx.open_flow();
        let (guest, host) = GuestEnd::pair();
        let tuple = Tuple { guest_port, remote };
        self.insert(
            id,
            Flow {
                tuple,
                socket: Some(handle),
                phase: Phase::Open(guest),
                dirty: false,
            },
        );
        Some((id, host))
    }

    /// A gateway port no flow to `guest_port` uses.
    fn free_port(&mut self, ctx: &Ctx, guest_port: u16) -> Option<SocketAddrV4> {
        for _ in 0..1024 {
            self.next_port = if EPHEMERAL.contains(&self.next_port) {
                self.next_port
            } else {
                *EPHEMERAL.start()
            };
            let remote = SocketAddrV4::new(ctx.cfg.gateway_ip, self.next_port);
            self.next_port = self.next_port.wrapping_add(1);
            if !self.by_tuple.contains_key(&Tuple { guest_port, remote }) {
                return Some(remote);
            }
        }
        None
    }
}
