//! How a guest's TCP handshake is decided. The guest's SYN never reaches smoltcp until the
//! flow is decided: it is held while the policy is asked and the upstream connects, so a
//! refused or denied connection never looks open. Then a fresh smoltcp socket is made
//! listening on exactly the (address, port) the guest dialled and the saved SYN is fed to it
//! alone, so that socket, and no other, answers SYN-ACK. Sockets live only while their flow
//! does: no socket stays listening after its SYN, so a later SYN cannot be taken by a stale
//! one. When the policy needs the flow's name, or interception decides on it (a flow to one
//! of its ports), the handshake completes locally and the first bytes are read for it
//! (`sniffing`) before the policy is asked again; such a flow's refusal is a reset after the
//! handshake.

use super::{Flow, Phase, TcpTable, Tuple};
use crate::policy::{FlowName, Verdict};
use crate::stack::context::{Ctx, Net};
use crate::stack::messages::{ConnectError, FlowId, HostEnd, Request, Upstream};
use crate::stack::relay::GuestEnd;
use crate::stack::sniffing::Sniff;
use crate::stack::syn::Syn;
use msb_types::{Direction, Protocol};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use smoltcp::wire::{Icmpv4DstUnreachable, IpAddress, IpListenEndpoint};
use std::net::SocketAddr;

/// DNS over TCP: answered at the gateway whatever the destination.
const DNS_PORT: u16 = 53;
/// DNS over TLS: refused, so resolvers fall back to policed DNS.
const DOT_PORT: u16 = 853;

impl TcpTable {
    /// A guest SYN (no ACK): decide the flow, or drop a retransmission of one being decided.
    pub(crate) fn syn(&mut self, ctx: &mut Ctx, net: &mut Net, syn: Syn) {
        let tuple = Tuple {
            guest_port: syn.src.port(),
            remote: syn.dst,
        };
        if let Some(&id) = self.by_tuple.get(&tuple) {
            let reusable = self.flows.get(&id).and_then(|f| f.socket).map(|h| net.tcp(h).state());
            if !matches!(reusable, Some(State::TimeWait | State::Closed)) {
                return;
            }
            self.remove(ctx, net, id);
        }
        let port = syn.dst.port();
        if port == DOT_PORT || !ctx.admit() {
            ctx.out.refuse(&syn);
            return;
        }
        if port == DNS_PORT {
            let (guest, host) = GuestEnd::pair();
            self.accept(ctx, net, syn, Phase::Open(guest), Some((Upstream::Dns, host)));
            return;
        }
        match ctx.check(Direction::Egress, Protocol::Tcp, *syn.dst.ip(), port, FlowName::NotYet) {
            Verdict::Deny(rule) => {
                ctx.denied(Direction::Egress, Protocol::Tcp, *syn.dst.ip(), port, rule);
                ctx.out.refuse(&syn);
            }
            Verdict::Allow(_) if ctx.sniffs(port) => {
                let sniff = Sniff::new(ctx.now, port, true);
                self.accept(ctx, net, syn, Phase::Sniffing(sniff), None);
            }
            Verdict::Allow(_) => {
                let id = ctx.open_flow();
                let (guest, host) = GuestEnd::pair();
                let upstream = Upstream::Tcp(SocketAddr::from((ctx.host_ip(*syn.dst.ip()), port)));
                ctx.requests.push(Request::Connect {
                    flow: id,
                    upstream,
                    initial: Vec::new(),
                    name: None,
                    dst: syn.dst,
                    io: host,
                });
                self.insert(
                    id,
                    Flow {
                        tuple,
                        socket: None,
                        phase: Phase::Held(syn, guest),
                        dirty: false,
                    },
                );
            }
            Verdict::NeedName => {
                let sniff = Sniff::new(ctx.now, port, ctx.sniffs(port));
                self.accept(ctx, net, syn, Phase::Sniffing(sniff), None);
            }
        }
    }

    /// Completes the handshake for `syn` now, as a new flow in `phase`.
    fn accept(&mut self, ctx: &mut Ctx, net: &mut Net, syn: Syn, phase: Phase, connect: Option<(Upstream, HostEnd)>) {
        let Some(handle) = answer_syn(ctx, net, &syn) else {
            return;
        };
        let id = ctx.open_flow();
        if let Some((upstream, io)) = connect {
            ctx.requests.push(Request::Connect {
                flow: id,
                upstream,
                initial: Vec::new(),
                name: None,
                dst: syn.dst,
                io,
            });
        }
        let tuple = Tuple {
            guest_port: syn.src.port(),
            remote: syn.dst,
        };
        self.insert(
            id,
            Flow {
                tuple,
                socket: Some(handle),
                phase,
                dirty: false,
            },
        );
    }

    /// The upstream of a held flow answered (or a relayed one's failed).
    pub(crate) fn connected(&mut self, ctx: &mut Ctx, net: &mut Net, id: FlowId, result: Result<(), ConnectError>) {
        let Some(flow) = self.flows.get_mut(&id) else { return };
        let phase = std::mem::replace(&mut flow.phase, Phase::Closing);
        match (phase, result) {
            (Phase::Held(syn, guest), Ok(())) => match answer_syn(ctx, net, &syn) {
                Some(handle) => {
                    flow.socket = Some(handle);
                    flow.phase = Phase::Open(guest);
                    self.mark(id);
                }
                None => self.remove(ctx, net, id),
            },
            (Phase::Held(syn, _), Err(error)) => {
                ctx.upstream_failed(error);
                match error {
                    ConnectError::Refused => ctx.out.refuse(&syn),
                    ConnectError::Unreachable => {
                        let gateway = ctx.cfg.gateway_ip;
                        ctx.unreachable(
                            gateway,
                            Icmpv4DstUnreachable::HostUnreachable,
                            syn.ip_repr(),
                            &syn.quote(),
                        );
                    }
                }
                self.remove(ctx, net, id);
            }
            // A sniffed flow relays already; bytes the guest sent meanwhile can go now.
            (phase, Ok(())) => {
                flow.phase = phase;
                self.mark(id);
            }
            (_, Err(error)) => {
                ctx.upstream_failed(error);
                if let Some(handle) = flow.socket {
                    net.tcp(handle).abort();
                }
                self.mark(id);
            }
        }
    }
}

/// Creates a socket listening on exactly where `syn` goes and feeds it `syn`; the socket if
/// it answered (it is then in SYN-RECEIVED).
fn answer_syn(ctx: &mut Ctx, net: &mut Net, syn: &Syn) -> Option<SocketHandle> {
    let mut sock = Net::socket();
    let endpoint = IpListenEndpoint {
        addr: Some(IpAddress::Ipv4(*syn.dst.ip())),
        port: syn.dst.port(),
    };
    sock.listen(endpoint).ok()?;
    let handle = net.sockets.add(sock);
    net.ingest(&syn.packet(), &mut ctx.out, ctx.now);
    if net.tcp(handle).state() == State::SynReceived {
        return Some(handle);
    }
    net.sockets.remove(handle);
    None
}

/// The policy's second look at a sniffed flow, now that its name (or its lack) is known.
pub(super) fn decide(ctx: &mut Ctx, net: &mut Net, id: FlowId, flow: &mut Flow, name: Option<String>) {
    let dst = flow.tuple.remote;
    let seen = name.as_deref().map_or(FlowName::Absent, FlowName::Name);
    let Phase::Sniffing(sniff) = std::mem::replace(&mut flow.phase, Phase::Closing) else {
        return;
    };
    match ctx.check(Direction::Egress, Protocol::Tcp, *dst.ip(), dst.port(), seen) {
        Verdict::Allow(_) => {
            let (guest, host) = GuestEnd::pair();
            let upstream = Upstream::Tcp(SocketAddr::from((ctx.host_ip(*dst.ip()), dst.port())));
            let initial = sniff.into_bytes();
            ctx.requests.push(Request::Connect {
                flow: id,
                upstream,
                initial,
                name,
                dst,
                io: host,
            });
            flow.phase = Phase::Open(guest);
        }
        Verdict::Deny(rule) => {
            ctx.denied(Direction::Egress, Protocol::Tcp, *dst.ip(), dst.port(), rule);
            abort(net, flow);
        }
        Verdict::NeedName => {
            ctx.denied(Direction::Egress, Protocol::Tcp, *dst.ip(), dst.port(), None);
            abort(net, flow);
        }
    }
}

fn abort(net: &mut Net, flow: &Flow) {
    if let Some(handle) = flow.socket {
        net.tcp(handle).abort();
    }
}
