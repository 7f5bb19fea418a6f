//! Guest ICMP: echo only. The gateway answers its own pings; other destinations are pinged
//! from the host (an unprivileged ICMP socket) when the policy allows, and otherwise the
//! guest hears "administratively prohibited".

use super::context::Ctx;
use super::messages::{Echo, PingOutcome, Request};
use crate::policy::{FlowName, Verdict};
use msb_types::{Direction, Protocol};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Repr};
use std::net::Ipv4Addr;

/// Echo requests the host sends at once on the guest's behalf; more are dropped.
const MAX_PINGS_IN_FLIGHT: usize = 64;

/// The guest's pings in progress.
#[derive(Debug, Default)]
pub(crate) struct Pings {
    in_flight: usize,
}

impl Pings {
    /// An ICMP packet from the guest; `ip` is its IPv4 header.
    pub(crate) fn packet(&mut self, ctx: &mut Ctx, ip: &Ipv4Repr, payload: &[u8]) -> bool {
        let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
            return false;
        };
        let Ok(Icmpv4Repr::EchoRequest { ident, seq_no, data }) =
            Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
        else {
            return false;
        };
        let dst = ip.dst_addr;
        if dst == ctx.cfg.gateway_ip {
            let guest = ctx.cfg.guest_ip;
            ctx.out.icmp(dst, guest, &Icmpv4Repr::EchoReply { ident, seq_no, data });
            return true;
        }
        match ctx.check(Direction::Egress, Protocol::Icmpv4, dst, 0, FlowName::Absent) {
            Verdict::Allow(_) => {
                if self.in_flight < MAX_PINGS_IN_FLIGHT {
                    self.in_flight += 1;
                    let echo = Echo {
                        ident,
                        seq: seq_no,
                        payload: data.to_vec(),
                    };
                    let target = ctx.host_ip(dst);
                    ctx.requests.push(Request::Ping { dst, target, echo });
                }
            }
            Verdict::Deny(rule) => {
                ctx.denied(Direction::Egress, Protocol::Icmpv4, dst, 0, rule);
                prohibited(ctx, ip, payload);
            }
            Verdict::NeedName => {
                ctx.denied(Direction::Egress, Protocol::Icmpv4, dst, 0, None);
                prohibited(ctx, ip, payload);
            }
        }
        true
    }

    /// How a ping sent from the host ended.
    pub(crate) fn done(&mut self, ctx: &mut Ctx, dst: Ipv4Addr, echo: &Echo, outcome: PingOutcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let guest = ctx.cfg.guest_ip;
        let (ident, seq_no) = (echo.ident, echo.seq);
        match outcome {
            PingOutcome::Reply => ctx.out.icmp(
                dst,
                guest,
                &Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data: &echo.payload,
                },
            ),
            PingOutcome::Unreachable => {
                let request = Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data: &echo.payload,
                };
                let mut head = vec![0; request.buffer_len()];
                request.emit(
                    &mut Icmpv4Packet::new_unchecked(&mut head[..]),
                    &ChecksumCapabilities::default(),
                );
                let quoted = Ipv4Repr {
                    src_addr: guest,
                    dst_addr: dst,
                    next_header: IpProtocol::Icmp,
                    payload_len: head.len(),
                    hop_limit: 64,
                };
                let gateway = ctx.cfg.gateway_ip;
                ctx.unreachable(gateway, Icmpv4DstUnreachable::HostUnreachable, quoted, &head);
            }
            PingOutcome::Timeout => {}
        }
    }
}

fn prohibited(ctx: &mut Ctx, ip: &Ipv4Repr, payload: &[u8]) {
    let gateway = ctx.cfg.gateway_ip;
    ctx.unreachable(gateway, Icmpv4DstUnreachable::CommProhibited, *ip, payload);
}
