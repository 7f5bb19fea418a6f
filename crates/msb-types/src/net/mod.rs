//! A sandbox's network: whether it has one, its egress/ingress policy, DNS settings,
//! published ports and flow limit.

mod domain;
mod port;
mod rule_token;
mod secrets;
mod suggest;
mod validate;

pub use domain::{domain_matches, normalize_domain, suffix_matches};
pub use port::DEFAULT_PUBLISH_IP;
pub use secrets::{
    host_pattern_matches, normalize_host_pattern, InterceptCa, SecretInjection, SecretSpec, TlsSpec, ViolationAction,
    DEFAULT_INTERCEPT_PORT,
};

use crate::{Field, SpecError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Flows a sandbox may have open at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// How long a DNS query to the upstream may take unless told otherwise.
pub const DEFAULT_DNS_QUERY_TIMEOUT_MS: u64 = 5000;

/// The network of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Whether the guest has a network interface at all (`--network none` / `--no-net`: only `lo`).
    pub enabled: bool,
    /// What the guest may reach and what may reach it.
    pub policy: NetPolicy,
    /// How the gateway answers DNS.
    #[serde(default)]
    pub dns: DnsSpec,
    /// Host ports forwarded into the guest.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// Flows open at once; new ones past this are refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Secrets whose placeholders the guest holds (never their values).
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    /// TLS interception.
    #[serde(default)]
    pub tls: TlsSpec,
}

fn default_max_connections() -> u32 {
    DEFAULT_MAX_CONNECTIONS
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            enabled: true,
            policy: NetPolicy::public_only(),
            dns: DnsSpec::default(),
            ports: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            secrets: Vec::new(),
            tls: TlsSpec::default(),
        }
    }
}

impl NetworkSpec {
    /// Whether any TLS flow is intercepted: having secrets, or hosts named to intercept.
    pub fn intercepts(&self) -> bool {
        self.enabled && (!self.secrets.is_empty() || !self.tls.intercept.is_empty())
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Let the flow through.
    Allow,
    /// Refuse the flow.
    Deny,
}

/// Which flows a rule is about: those the guest opens, those opened towards it, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Guest → outside.
    Egress,
    /// Outside → guest (published ports).
    Ingress,
    /// Both.
    Any,
}

/// A transport a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (echo only).
    Icmpv4,
    /// ICMPv6 (echo only).
    Icmpv6,
}

/// Named sets of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Everything not in another group.
    Public,
    /// RFC 1918, CGNAT 100.64.0.0/10, ULA fc00::/7.
    Private,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16 and fe80::/10 except the metadata address.
    LinkLocal,
    /// The cloud metadata service, 169.254.169.254.
    Metadata,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// The sandbox's gateway (`host.microsandbox.internal`): the host's loopback services.
    Host,
}

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

/// Where a rule applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// Everywhere.
    Any,
    /// An address block (a single address is a /32 or /128).
    Cidr(Cidr),
    /// Exactly this name (lower case, no trailing dot).
    Domain(String),
    /// This name and every name under it, on label boundaries.
    DomainSuffix(String),
    /// A named set of addresses.
    Group(Group),
}

/// An inclusive port range (a single port has `first == last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// One policy rule: the first that matches a flow decides it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Allow or deny.
    pub action: Action,
    /// Which flows.
    pub direction: Direction,
    /// Where.
    pub destination: Destination,
    /// Which transports (empty: all).
    #[serde(default)]
    pub protocols: Vec<Protocol>,
    /// Which guest-side ports (empty: all).
    #[serde(default)]
    pub ports: Vec<PortRange>,
}

/// Ordered rules and the defaults for flows no rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetPolicy {
    /// For guest-opened flows no rule matches (missing: deny).
    #[serde(default = "deny")]
    pub default_egress: Action,
    /// For flows towards the guest no rule matches (missing: deny).
    #[serde(default = "deny")]
    pub default_ingress: Action,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn deny() -> Action {
    Action::Deny
}

/// How the gateway answers DNS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DnsSpec {
    /// Names answered NXDOMAIN (exact).
    #[serde(default)]
    pub blocked_domains: Vec<String>,
    /// Names answered NXDOMAIN with everything under them.
    #[serde(default)]
    pub blocked_suffixes: Vec<String>,
    /// Drop answers that point at private, loopback or link-local addresses.
    #[serde(default = "yes")]
    pub rebind_protection: bool,
    /// Upstream servers (`IP`, `IP:PORT`); empty: the host's resolv.conf.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// How long one upstream query may take.
    #[serde(default = "default_query_timeout")]
    pub query_timeout_ms: u64,
}

fn yes() -> bool {
    true
}

fn default_query_timeout() -> u64 {
    DEFAULT_DNS_QUERY_TIMEOUT_MS
}

impl Default for DnsSpec {
    fn default() -> Self {
        DnsSpec {
            blocked_domains: Vec::new(),
            blocked_suffixes: Vec::new(),
            rebind_protection: true,
            nameservers: Vec::new(),
            query_timeout_ms: DEFAULT_DNS_QUERY_TIMEOUT_MS,
        }
    }
}

/// TCP or UDP, for published ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A host port forwarded to a guest port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    /// Host address listened on (default 127.0.0.1).
    pub host_ip: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Guest port.
    pub guest_port: u16,
    /// TCP or UDP.
    pub transport: Transport,
}

impl NetworkSpec {
    /// No network interface at all (only `lo` in the guest), and a policy that lets nothing
    /// through should one be asked for anyway.
    pub fn disabled() -> NetworkSpec {
        NetworkSpec {
            enabled: false,
            policy: NetPolicy::none(),
            ..NetworkSpec::default()
        }
    }
}

/// The presets' names, as `--network` spells them.
const PRESETS: [&str; 4] = ["none", "public-only", "non-local", "allow-all"];

impl NetPolicy {
    /// The preset `name` names: `none`, `public-only`, `non-local` or `allow-all` (`_` for
    /// `-` too).
    pub fn preset(name: &str) -> Result<NetPolicy, SpecError> {
        let spelled = name.trim().to_ascii_lowercase().replace('_', "-");
        match spelled.as_str() {
            "none" => Ok(NetPolicy::none()),
            "public-only" => Ok(NetPolicy::public_only()),
            "non-local" => Ok(NetPolicy::non_local()),
            "allow-all" => Ok(NetPolicy::allow_all()),
            _ => Err(SpecError::new(
                Field::NetPolicy,
                format!(
                    "'{name}' is not a network preset: use one of {}{}",
                    PRESETS.join(", "),
                    suggest::did_you_mean(&spelled, &PRESETS)
                ),
            )),
        }
    }

    /// The policy front ends' flags ask for. With a `preset`, `rules` come before its rules
    /// and the defaults given replace its defaults. Without one, `rules` alone, with egress
    /// denied and ingress allowed unless the defaults given say otherwise (the reference's
    /// meaning of bare rule flags). With nothing given: [`NetPolicy::public_only`].
    pub fn compose(
        preset: Option<NetPolicy>,
        rules: Vec<Rule>,
        default_egress: Option<Action>,
        default_ingress: Option<Action>,
    ) -> NetPolicy {
        let base = match preset {
            Some(preset) => preset,
            None if rules.is_empty() && default_egress.is_none() && default_ingress.is_none() => {
                return NetPolicy::public_only()
            }
            None => NetPolicy {
                default_egress: Action::Deny,
                default_ingress: Action::Allow,
                rules: Vec::new(),
            },
        };
        let mut all = rules;
        all.extend(base.rules);
        NetPolicy {
            default_egress: default_egress.unwrap_or(base.default_egress),
            default_ingress: default_ingress.unwrap_or(base.default_ingress),
            rules: all,
        }
    }

    /// Nothing in or out.
    pub fn none() -> NetPolicy {
        NetPolicy {
            default_egress: Action::Deny,
            default_ingress: Action::Deny,
            rules: Vec::new(),
        }
    }

    /// Everything in and out.
    pub fn allow_all() -> NetPolicy {
        NetPolicy {
            default_egress: Action::Allow,
            default_ingress: Action::Allow,
            rules: Vec::new(),
        }
    }

    /// Out to public addresses only; in from anywhere (the default).
    pub fn public_only() -> NetPolicy {
        NetPolicy {
            default_egress: Action::Deny,
            default_ingress: Action::Allow,
            rules: vec![Rule::egress_group(Group::Public)],
        }
    }

    /// Out to public and private addresses; in from anywhere.
    pub fn non_local() -> NetPolicy {
        NetPolicy {
            default_egress: Action::Deny,
            default_ingress: Action::Allow,
            rules: vec![Rule::egress_group(Group::Public), Rule::egress_group(Group::Private)],
        }
    }
}

impl Rule {
    /// Allow egress to `group`, any protocol and port.
    fn egress_group(group: Group) -> Rule {
        Rule {
            action: Action::Allow,
            direction: Direction::Egress,
            destination: Destination::Group(group),
            protocols: Vec::new(),
            ports: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
