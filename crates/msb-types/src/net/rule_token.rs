//! The `--net-rule` syntax: `<allow|deny>[:<egress|ingress|any>]@<target>[:<proto>[:<ports>]]`,
//! several to an argument separated by commas, kept in order.

use super::suggest::{did_you_mean, nearest};
use super::{normalize_domain, Action, Cidr, Destination, Direction, Group, PortRange, Protocol, Rule};
use crate::{Field, SpecError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

const ACTIONS: [&str; 2] = ["allow", "deny"];
const DIRECTIONS: [&str; 3] = ["egress", "ingress", "any"];
const PROTOCOLS: [&str; 6] = ["any", "tcp", "udp", "icmpv4", "icmpv6", "icmp"];
/// Group names and the other one-word targets, for suggestions.
const TARGET_WORDS: [&str; 10] = [
    "any",
    "public",
    "private",
    "loopback",
    "link-local",
    "link_local",
    "meta",
    "metadata",
    "multicast",
    "host",
];
/// What a target may be, for errors that cannot guess.
const TARGET_FORMS: &str = "any, a group (public, private, loopback, link-local, meta, multicast, host), \
     an IPv4 address, [IPv6], a CIDR (10.0.0.0/8, [fd00::]/8), a name with a dot, domain=NAME or suffix=NAME";

impl Rule {
    /// Parses one `--net-rule` argument: comma-separated rules, in order. Targets are an
    /// address, `[IPv6]`, a CIDR, a group, `any`, a name with a dot, `domain=NAME`,
    /// `suffix=NAME` or `*.NAME`; the direction defaults to egress, protocol and ports to any.
    pub fn parse_list(text: &str) -> Result<Vec<Rule>, SpecError> {
        text.split(',')
            .map(str::trim)
            .map(|item| {
                parse_rule(item)
                    .map_err(|problem| SpecError::new(Field::NetPolicy, format!("rule '{item}': {problem}")))
            })
            .collect()
    }
}

impl FromStr for Action {
    type Err = SpecError;

    /// `allow` or `deny`.
    fn from_str(text: &str) -> Result<Action, SpecError> {
        parse_action(&text.trim().to_ascii_lowercase()).map_err(|problem| SpecError::new(Field::NetPolicy, problem))
    }
}

fn parse_rule(item: &str) -> Result<Rule, String> {
    if item.is_empty() {
        return Err("it is empty (a stray comma?)".into());
    }
    let item = item.to_ascii_lowercase();
    let (head, tail) = item
        .split_once('@')
        .ok_or("no '@': write ACTION@TARGET, e.g. allow@public or deny@domain=example.com")?;
    let (action, direction) = match head.split_once(':') {
        Some((action, direction)) => (parse_action(action)?, parse_direction(direction)?),
        None => (parse_action(head)?, Direction::Egress),
    };
    let (target, rest) = split_target(tail)?;
    let destination = parse_target(target)?;
    let mut fields = rest.map(|r| r.split(':'));
    let proto = fields.as_mut().and_then(Iterator::next);
    let ports = fields.as_mut().and_then(Iterator::next);
    if let Some(extra) = fields.as_mut().and_then(Iterator::next) {
        return Err(format!(
            "'{extra}' after the ports: a rule ends with TARGET:PROTO:PORTS"
        ));
    }
    let protocols = match proto {
        None => Vec::new(),
        Some(p) => parse_protocol(p, target)?,
    };
    let ports = match ports {
        None => Vec::new(),
        Some(p) => parse_ports(p)?,
    };
    let rule = Rule {
        action,
        direction,
        destination,
        protocols,
        ports,
    };
    rule.check()?;
    Ok(rule)
}

fn parse_action(word: &str) -> Result<Action, String> {
    match word {
        "allow" => Ok(Action::Allow),
        "deny" => Ok(Action::Deny),
        _ => Err(format!(
            "'{word}' is not an action: use allow or deny{}",
            did_you_mean(word, &ACTIONS)
        )),
    }
}

fn parse_direction(word: &str) -> Result<Direction, String> {
    match word {
        "egress" => Ok(Direction::Egress),
        "ingress" => Ok(Direction::Ingress),
        "any" => Ok(Direction::Any),
        _ => Err(format!(
            "'{word}' is not a direction: use egress, ingress or any{}",
            did_you_mean(word, &DIRECTIONS)
        )),
    }
}

/// Splits `TARGET[:PROTO[:PORTS]]` at the end of the target: IPv6 targets are bracketed
/// because their colons would read as separators.
fn split_target(tail: &str) -> Result<(&str, Option<&str>), String> {
    let end = if tail.starts_with('[') {
        let close = tail.find(']').ok_or("an IPv6 target needs its closing ']'")? + 1;
        match tail[close..].strip_prefix('/') {
            Some(prefix) => close + 1 + prefix.find(':').unwrap_or(prefix.len()),
            None => close,
        }
    } else {
        let address = tail.split('/').next().unwrap_or(tail);
        if address.parse::<Ipv6Addr>().is_ok() || looks_like_ipv6(tail) {
            return Err(format!(
                "write IPv6 targets in brackets: [{address}] (or [{address}]/PREFIX for a block)"
            ));
        }
        tail.find(':').unwrap_or(tail.len())
    };
    match tail[end..].strip_prefix(':') {
        Some(rest) => Ok((&tail[..end], Some(rest))),
        None if end == tail.len() => Ok((tail, None)),
        None => Err(format!("'{}' after the target: write TARGET:PROTO:PORTS", &tail[end..])),
    }
}

/// Whether `tail` reads as an unbracketed IPv6 address followed by more fields: more colons
/// than `TARGET:PROTO:PORTS` has, and hex (or nothing) before the first two.
fn looks_like_ipv6(tail: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut fields = tail.split(':');
    tail.matches(':').count() > 2 && fields.next().is_some_and(hex) && fields.next().is_some_and(hex)
}

fn parse_target(target: &str) -> Result<Destination, String> {
    if let Some(name) = target.strip_prefix("domain=") {
        return normalize_domain(name).map(Destination::Domain);
    }
    if let Some(name) = target.strip_prefix("suffix=") {
        let name = name
            .strip_prefix("*.")
            .or_else(|| name.strip_prefix('.'))
            .unwrap_or(name);
        return normalize_domain(name).map(Destination::DomainSuffix);
    }
    if let Some(name) = target.strip_prefix("*.") {
        return normalize_domain(name).map(Destination::DomainSuffix);
    }
    if let Some(bracketed) = target.strip_prefix('[') {
        let (address, prefix) = bracketed
            .split_once(']')
            .ok_or("an IPv6 target needs its closing ']'")?;
        let address: Ipv6Addr = address
            .parse()
            .map_err(|_| format!("'{address}' is not an IPv6 address"))?;
        return match prefix.strip_prefix('/') {
            Some(bits) => cidr(IpAddr::V6(address), bits),
            None if prefix.is_empty() => cidr(IpAddr::V6(address), "128"),
            None => Err(format!("'{prefix}' after ']': write [IPv6] or [IPv6]/PREFIX")),
        };
    }
    if let Some((address, bits)) = target.split_once('/') {
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("'{address}' is not an IPv4 address (write IPv6 blocks as [IPv6]/PREFIX)"))?;
        return cidr(IpAddr::V4(address), bits);
    }
    if let Ok(address) = target.parse::<Ipv4Addr>() {
        return cidr(IpAddr::V4(address), "32");
    }
    if let Some(group) = group(target) {
        return Ok(Destination::Group(group));
    }
    if target == "any" {
        return Ok(Destination::Any);
    }
    if target.is_empty() {
        return Err(format!("no target after '@': use {TARGET_FORMS}"));
    }
    if let Some((key, _)) = target.split_once('=') {
        return Err(format!(
            "'{key}=' is not a kind of target: use domain=NAME or suffix=NAME{}",
            did_you_mean(key, &["domain", "suffix"])
        ));
    }
    if target.contains('.') {
        let last_label = target.trim_end_matches('.').rsplit('.').next().unwrap_or_default();
        if !last_label.is_empty() && last_label.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("'{target}' is not an IPv4 address"));
        }
        return normalize_domain(target).map(Destination::Domain);
    }
    Err(single_label(target))
}

/// Why a one-word target that is no keyword is refused: it could be a typo of a group or a
/// host name without a dot, and guessing wrong would open or close the wrong thing.
fn single_label(word: &str) -> String {
    if word == "localhost" {
        return "'localhost' is ambiguous: use the loopback group for the guest's own loopback, or \
                domain=localhost for the name"
            .into();
    }
    let guess = match nearest(word, &TARGET_WORDS) {
        Some(near) => format!("; or did you mean '{near}'?"),
        None => String::new(),
    };
    format!("'{word}' is ambiguous: a name without a dot is written domain={word}{guess}")
}

fn group(word: &str) -> Option<Group> {
    Some(match word {
        "public" => Group::Public,
        "private" => Group::Private,
        "loopback" => Group::Loopback,
        "link-local" | "link_local" => Group::LinkLocal,
        "meta" | "metadata" => Group::Metadata,
        "multicast" => Group::Multicast,
        "host" => Group::Host,
        _ => return None,
    })
}

/// `address/bits`, with the bits below the prefix cleared so the block reads as written.
fn cidr(address: IpAddr, bits: &str) -> Result<Destination, String> {
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = bits
        .parse::<u8>()
        .ok()
        .filter(|&p| p <= max)
        .ok_or_else(|| format!("'/{bits}' is not a prefix length: use 0 to {max}"))?;
    let addr = match address {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
            u32::from(a) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0),
        )),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
            u128::from(a) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0),
        )),
    };
    Ok(Destination::Cidr(Cidr { addr, prefix }))
}

fn parse_protocol(word: &str, target: &str) -> Result<Vec<Protocol>, String> {
    Ok(vec![match word {
        "any" => return Ok(Vec::new()),
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmpv4" | "icmp" => Protocol::Icmpv4,
        "icmpv6" => Protocol::Icmpv6,
        _ if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit() || b == b'-') => {
            return Err(format!(
                "'{word}' is a port where the protocol goes: write {target}:tcp:{word} (or udp, or any)"
            ))
        }
        _ => {
            return Err(format!(
                "'{word}' is not a protocol: use any, tcp, udp, icmpv4 or icmpv6{}",
                did_you_mean(word, &PROTOCOLS)
            ))
        }
    }])
}

fn parse_ports(text: &str) -> Result<Vec<PortRange>, String> {
    if text == "any" {
        return Ok(Vec::new());
    }
    let number = |n: &str| {
        n.parse::<u16>()
            .map_err(|_| format!("'{text}' is not a port: use any, N or LOW-HIGH with ports 1 to 65535"))
    };
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (number(first)?, number(last)?),
        None => (number(text)?, number(text)?),
    };
    Ok(vec![PortRange { first, last }])
}

#[cfg(test)]
#[path = "rule_token_tests.rs"]
mod tests;
