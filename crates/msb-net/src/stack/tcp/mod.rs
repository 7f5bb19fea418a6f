//! Guest TCP flows: one record per flow from its SYN to its last segment, the smoltcp
//! socket it owns (if any), and the relay or first-bytes state it is in. How a handshake is
//! decided is in `handshake`; connections from published ports in `publish`.

mod handshake;
mod publish;

use super::context::{Ctx, Net};
use super::messages::FlowId;
use super::relay::GuestEnd;
use super::sniffing::Sniff;
use super::syn::Syn;
use handshake::decide;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use std::collections::HashMap;
use std::net::SocketAddrV4;

/// A flow's addresses as the guest sees them: its port, and the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Tuple {
    pub(crate) guest_port: u16,
    pub(crate) remote: SocketAddrV4,
}

#[derive(Debug)]
enum Phase {
    /// SYN held while the upstream connects.
    Held(Syn, GuestEnd),
    /// Handshake done locally; reading the first bytes for a name.
    Sniffing(Sniff),
    /// Relaying.
    Open(GuestEnd),
    /// Refused after the handshake; gone once smoltcp has sent its RST.
    Closing,
}

#[derive(Debug)]
struct Flow {
    tuple: Tuple,
    socket: Option<SocketHandle>,
    phase: Phase,
    dirty: bool,
}

/// Every TCP flow of the sandbox.
#[derive(Debug, Default)]
pub(crate) struct TcpTable {
    flows: HashMap<FlowId, Flow>,
    by_tuple: HashMap<Tuple, FlowId>,
    dirty: Vec<FlowId>,
    /// Flows pumped this poll, to be checked for the end once their segments are out.
    pumped: Vec<FlowId>,
    next_port: u16,
}

impl TcpTable {
    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }

    fn insert(&mut self, id: FlowId, flow: Flow) {
        self.by_tuple.insert(flow.tuple, id);
        self.flows.insert(id, flow);
        self.mark(id);
    }

    /// A guest segment other than a SYN: to smoltcp, then a look at the flow it belongs to.
    pub(crate) fn segment(&mut self, ctx: &mut Ctx, net: &mut Net, tuple: Tuple, packet: &[u8]) {
        net.ingest(packet, &mut ctx.out, ctx.now);
        let Some(&id) = self.by_tuple.get(&tuple) else { return };
        // A RST in SYN-RECEIVED puts a smoltcp socket back to listening: end it before it
        // could take another flow's SYN.
        let listening = self
            .flows
            .get(&id)
            .and_then(|f| f.socket)
            .is_some_and(|h| net.tcp(h).is_listening());
        if listening {
            self.remove(ctx, net, id);
        } else {
            self.mark(id);
        }
    }

    /// Runs `f` on an open flow's channels and schedules a pump.
    pub(crate) fn with_open(&mut self, id: FlowId, f: impl FnOnce(&mut GuestEnd)) {
        if let Some(Flow {
            phase: Phase::Open(guest),
            ..
        }) = self.flows.get_mut(&id)
        {
            f(guest);
            self.mark(id);
        }
    }

    pub(crate) fn mark(&mut self, id: FlowId) {
        if let Some(flow) = self.flows.get_mut(&id) {
            if !flow.dirty {
                flow.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// Schedules every flow for a pump (timers: sniff deadlines, smoltcp timeouts).
    pub(crate) fn mark_all(&mut self) {
        let ids: Vec<FlowId> = self.flows.keys().copied().collect();
        ids.into_iter().for_each(|id| self.mark(id));
    }

    /// Moves bytes for every flow that had news.
    pub(crate) fn pump(&mut self, ctx: &mut Ctx, net: &mut Net) {
        let dirty = std::mem::take(&mut self.dirty);
        for id in dirty {
            let Some(flow) = self.flows.get_mut(&id) else { continue };
            flow.dirty = false;
            let Some(handle) = flow.socket else { continue };
            self.pumped.push(id);
            let sock = net.tcp(handle);
            match &mut flow.phase {
                Phase::Open(guest) => guest.pump(sock),
                Phase::Sniffing(sniff) => {
                    if let Some(name) = sniff.step(sock, ctx.now) {
                        decide(ctx, net, id, flow, name);
                    }
                }
                Phase::Held(..) | Phase::Closing => {}
            }
        }
    }

    /// Removes the flows pumped this poll that have ended, once their last segments are out.
    pub(crate) fn reap(&mut self, ctx: &mut Ctx, net: &mut Net) {
        for id in std::mem::take(&mut self.pumped) {
            let Some(flow) = self.flows.get(&id) else { continue };
            let Some(handle) = flow.socket else { continue };
            let sock = net.tcp(handle);
            let state = sock.state();
            if state == State::Closed && sock.remote_endpoint().is_some() {
                continue;
            }
            let done = match &flow.phase {
                Phase::Open(guest) => guest.finished(state),
                _ => matches!(state, State::Listen | State::Closed | State::TimeWait),
            };
            if done {
                self.remove(ctx, net, id);
            }
        }
    }

    fn remove(&mut self, ctx: &mut Ctx, net: &mut Net, id: FlowId) {
        let Some(flow) = self.flows.remove(&id) else { return };
        self.by_tuple.remove(&flow.tuple);
        if let Some(handle) = flow.socket {
            net.sockets.remove(handle);
        }
        ctx.close_flow();
    }
}
