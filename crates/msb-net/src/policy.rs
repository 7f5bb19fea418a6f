//! Deciding flows: a sandbox's [`NetPolicy`] evaluated against one flow, first match wins.
//!
//! Rules are compiled once ([`Policy::new`]): split by direction, domain names normalised,
//! address blocks turned into masks, so [`Policy::check`] runs on every flow without
//! allocating.

mod group;
#[cfg(test)]
mod tests;

pub use group::group_of;

use msb_types::{
    domain_matches, suffix_matches, Action, Destination, Direction, Group, NetPolicy, PortRange, Protocol,
};
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
    /// Egress and any-direction rules, in order.
    egress: Vec<Compiled>,
    /// Ingress and any-direction rules, in order.
    ingress: Vec<Compiled>,
    default_egress: Action,
    default_ingress: Action,
    gateway: IpAddr,
}

/// A rule in the form `check` wants.
#[derive(Debug, Clone)]
struct Compiled {
    /// Its index in the policy's rules, for verdicts.
    index: usize,
    action: Action,
    target: Target,
    /// One bit per [`Protocol`]; 0: every protocol.
    protocols: u8,
    /// Empty: every port.
    ports: Box<[PortRange]>,
}

#[derive(Debug, Clone)]
enum Target {
    Any,
    V4 {
        net: u32,
        mask: u32,
    },
    V6 {
        net: u128,
        mask: u128,
    },
    Group(Group),
    /// Normalised: lower case, no trailing dot.
    Domain(Box<str>),
    /// Normalised: lower case, no trailing dot.
    Suffix(Box<str>),
}

/// Whether a rule matches a flow, when that can depend on a name not seen yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Yes,
    No,
    Unknown,
}

impl Policy {
    /// `policy` for a sandbox whose gateway (the `host` group) is `gateway`.
    pub fn new(policy: NetPolicy, gateway: IpAddr) -> Policy {
        let mut egress = Vec::new();
        let mut ingress = Vec::new();
        for (index, rule) in policy.rules.into_iter().enumerate() {
            let compiled = Compiled {
                index,
                action: rule.action,
                target: Target::new(rule.destination),
                protocols: rule.protocols.iter().fold(0, |bits, &p| bits | protocol_bit(p)),
                ports: rule.ports.into_boxed_slice(),
            };
            match rule.direction {
                Direction::Egress => egress.push(compiled),
                Direction::Ingress => ingress.push(compiled),
                Direction::Any => {
                    egress.push(compiled.clone());
                    ingress.push(compiled);
                }
            }
        }
        Policy {
            egress,
            ingress,
            default_egress: policy.default_egress,
            default_ingress: policy.default_ingress,
            gateway: group::canonical(gateway),
        }
    }

    /// Decides `flow`: the first rule of its direction that matches decides, else the
    /// direction's default. [`Verdict::NeedName`] when a rule before any match depends on
    /// the name in the flow's first bytes and they have not arrived.
    pub fn check(&self, flow: &FlowQuery<'_>) -> Verdict {
        let (rules, default) = match flow.direction {
            Direction::Ingress => (&self.ingress, self.default_ingress),
            // `Any` is not a flow's direction; egress is the stricter reading.
            Direction::Egress | Direction::Any => (&self.egress, self.default_egress),
        };
        let ip = group::canonical(flow.ip);
        let group = group_of(ip, self.gateway);
        // The host's own services are opened only by name: an allow rule for the `host`
        // group. Defaults, `any` and address blocks that happen to cover the gateway do not
        // (so `allow-all` reaches the internet, not the user's local databases).
        let host = group == Group::Host && flow.direction != Direction::Ingress;
        // The action of the first rule that may match once the name is known: the flow is
        // still decided now if everything after it comes to that same action anyway (a
        // flow that will be denied whatever its name is refused at the SYN).
        let mut undecided: Option<Action> = None;
        for rule in rules {
            if !rule.carries(flow.protocol, flow.port) {
                continue;
            }
            if host && rule.action == Action::Allow && !matches!(rule.target, Target::Group(Group::Host)) {
                continue;
            }
            match rule.target.matches(rule.action, ip, group, flow) {
                Match::Yes => return settle(undecided, rule.action, Some(rule.index)),
                Match::No => {}
                Match::Unknown => match undecided {
                    None => undecided = Some(rule.action),
                    Some(action) if action == rule.action => {}
                    Some(_) => return Verdict::NeedName,
                },
            }
        }
        let default = if host { Action::Deny } else { default };
        settle(undecided, default, None)
    }

    /// Whether DNS should answer `name` NXDOMAIN: a domain or suffix deny rule with no
    /// protocol or port restriction matches it before any allow rule could.
    pub fn denies_name(&self, name: &str) -> bool {
        for rule in &self.egress {
            let hit = match &rule.target {
                Target::Domain(domain) => domain_matches(name, domain),
                Target::Suffix(suffix) => suffix_matches(name, suffix),
                // Rules about addresses are decided per flow, once there is an address.
                Target::Any | Target::V4 { .. } | Target::V6 { .. } | Target::Group(_) => false,
            };
            if hit {
                return rule.action == Action::Deny && rule.protocols == 0 && rule.ports.is_empty();
            }
        }
        false
    }
}

impl Compiled {
    /// Whether the rule is about this protocol and port. ICMP flows have no port (0), so a
    /// rule with ports never carries them.
    fn carries(&self, protocol: Protocol, port: u16) -> bool {
        let protocol_ok = self.protocols == 0 || self.protocols & protocol_bit(protocol) != 0;
        let port_ok = self.ports.is_empty()
            || (!matches!(protocol, Protocol::Icmpv4 | Protocol::Icmpv6)
                && self.ports.iter().any(|r| (r.first..=r.last).contains(&port)));
        protocol_ok && port_ok
    }
}

impl Target {
    fn new(destination: Destination) -> Target {
        match destination {
            Destination::Any => Target::Any,
            Destination::Group(group) => Target::Group(group),
            Destination::Domain(name) => Target::Domain(normalize(name)),
            Destination::DomainSuffix(name) => Target::Suffix(normalize(name)),
            Destination::Cidr(cidr) => match (cidr.addr, group::canonical(cidr.addr)) {
                (IpAddr::V4(v4), _) => Target::v4(v4, cidr.prefix),
                // A block inside the IPv4-mapped range is that IPv4 block: flows are canonical.
                (IpAddr::V6(_), IpAddr::V4(v4)) if cidr.prefix >= 96 => Target::v4(v4, cidr.prefix - 96),
                (IpAddr::V6(v6), _) => {
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(cidr.prefix.min(128)))
                        .unwrap_or(0);
                    Target::V6 {
                        net: u128::from(v6) & mask,
                        mask,
                    }
                }
            },
        }
    }

    fn v4(addr: std::net::Ipv4Addr, prefix: u8) -> Target {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
        Target::V4 {
            net: u32::from(addr) & mask,
            mask,
        }
    }

    /// Whether this target (of a rule with `action`) matches the flow to `ip` in `group`.
    fn matches(&self, action: Action, ip: IpAddr, group: Group, flow: &FlowQuery<'_>) -> Match {
        match (self, ip) {
            (Target::Any, _) => Match::Yes,
            (Target::Group(g), _) => yes_if(*g == group),
            (Target::V4 { net, mask }, IpAddr::V4(v4)) => yes_if(u32::from(v4) & mask == *net),
            (Target::V6 { net, mask }, IpAddr::V6(v6)) => yes_if(u128::from(v6) & mask == *net),
            (Target::V4 { .. } | Target::V6 { .. }, _) => Match::No,
            (Target::Domain(domain), _) => by_name(action, flow, |n| domain_matches(n, domain)),
            (Target::Suffix(suffix), _) => by_name(action, flow, |n| suffix_matches(n, suffix)),
        }
    }
}

/// The verdict of the rule (or default) that matched, given the action of an earlier rule
/// that may match once the name is known: the same action either way decides now.
fn settle(undecided: Option<Action>, action: Action, rule: Option<usize>) -> Verdict {
    match undecided {
        Some(earlier) if earlier != action => Verdict::NeedName,
        _ => verdict(action, rule),
    }
}

/// Whether a domain rule matches, from the names DNS pinned to the flow's address and the
/// name in its first bytes.
///
/// An allow rule needs the address pinned to a matching name, and a name in the first bytes
/// (if any) that matches too: a spoofed SNI must not ride on a pinned address. A deny rule
/// matches a matching name in the first bytes, an address pinned to a matching name when
/// the first bytes carry no name, and also an address pinned to a matching name whose first
/// bytes name something it was never resolved for (a spoofed SNI must not lift a deny).
fn by_name(action: Action, flow: &FlowQuery<'_>, matches: impl Fn(&str) -> bool) -> Match {
    let pinned = flow.pinned_names.iter().any(|n| matches(n));
    match (action, flow.name) {
        (Action::Allow, _) if !pinned => Match::No,
        (_, FlowName::NotYet) => Match::Unknown,
        (Action::Allow, FlowName::Absent) => Match::Yes,
        (Action::Allow, FlowName::Name(name)) => yes_if(matches(name)),
        (Action::Deny, FlowName::Absent) => yes_if(pinned),
        (Action::Deny, FlowName::Name(name)) => {
            let resolved_for_it = flow.pinned_names.iter().any(|n| domain_matches(name, n));
            yes_if(matches(name) || (pinned && !resolved_for_it))
        }
    }
}

fn yes_if(hit: bool) -> Match {
    if hit {
        Match::Yes
    } else {
        Match::No
    }
}

fn verdict(action: Action, index: Option<usize>) -> Verdict {
    match action {
        Action::Allow => Verdict::Allow(index),
        Action::Deny => Verdict::Deny(index),
    }
}

fn protocol_bit(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 1,
        Protocol::Udp => 2,
        Protocol::Icmpv4 => 4,
        Protocol::Icmpv6 => 8,
    }
}

/// A rule's name as flows' names are compared with it (specs are validated canonical; this
/// keeps an unvalidated policy from matching nothing).
fn normalize(name: String) -> Box<str> {
    name.trim_end_matches('.').to_ascii_lowercase().into_boxed_str()
}
