//! Deciding flows: a sandbox's [`NetPolicy`] evaluated against one flow, first match wins.

use msb_types::{Direction, NetPolicy, Protocol};
use std::net::IpAddr;

/// What is known of the name a flow's first bytes carry (TLS SNI or HTTP Host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowName<'a> {
    /// The first bytes have not arrived yet (at the SYN).
    NotYet,
    /// They arrived and carry no name (or the flow has none: UDP, ICMP, a server-first protocol).
    Absent,
    /// They name this host (lower case, no trailing dot).
    Name(&'a str),
}

/// One flow to decide.
#[derive(Debug, Clone, Copy)]
pub struct FlowQuery<'a> {
    /// Egress (the guest opens it) or ingress (towards the guest); never `Any`.
    pub direction: Direction,
    /// Its transport.
    pub protocol: Protocol,
    /// The remote address (egress: the destination; ingress: the peer).
    pub ip: IpAddr,
    /// The guest-side port... for egress the destination port, for ingress the guest port.
    pub port: u16,
    /// Names this sandbox's DNS answered with `ip` (pins), lower case.
    pub pinned_names: &'a [String],
    /// The name in the flow's first bytes.
    pub name: FlowName<'a>,
}

/// How a flow is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through; the index of the rule that matched, `None` for the default.
    Allow(Option<usize>),
    /// Refuse it; the index of the rule that matched, `None` for the default.
    Deny(Option<usize>),
    /// A rule may or may not match depending on the name in the first bytes: ask again then.
    NeedName,
}

/// A sandbox's policy, ready to decide flows.
#[derive(Debug, Clone)]
pub struct Policy {
    policy: NetPolicy,
    gateway: IpAddr,
}

impl Policy {
    /// `policy` for a sandbox whose gateway (the `host` group) is `gateway`.
    pub fn new(policy: NetPolicy, gateway: IpAddr) -> Policy {
        Policy { policy, gateway }
    }

    /// Decides `flow`.
    pub fn check(&self, flow: &FlowQuery<'_>) -> Verdict {
        let _ = (flow, &self.policy, self.gateway);
        unimplemented!("filled in by the policy work")
    }

    /// Whether DNS should answer `name` NXDOMAIN: a domain or suffix deny rule with no
    /// protocol or port restriction matches it before any allow rule could.
    pub fn denies_name(&self, name: &str) -> bool {
        let _ = name;
        unimplemented!("filled in by the policy work")
    }
}
