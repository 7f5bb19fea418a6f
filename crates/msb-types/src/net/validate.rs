//! Checking a network spec before it is stored: everything the CLI's parsers refuse is
//! refused here too, for specs that come from the SDK or from JSON.

use super::domain::check_canonical;
use super::{Destination, Direction, DnsSpec, NetPolicy, NetworkSpec, Protocol, Rule};
use crate::{Field, SpecError};
use std::net::{IpAddr, SocketAddr};

/// The DNS port, for nameservers given without one.
const DNS_PORT: u16 = 53;

impl NetworkSpec {
    /// Checks the flow limit, the published ports, the policy and the DNS settings.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.max_connections == 0 {
            return Err(SpecError::new(Field::MaxConnections, "must be at least 1"));
        }
        if !self.enabled && !self.ports.is_empty() {
            return Err(SpecError::new(
                Field::Ports,
                "a sandbox without a network cannot publish ports: drop the ports or --no-net",
            ));
        }
        for (i, port) in self.ports.iter().enumerate() {
            if port.host_port == 0 || port.guest_port == 0 {
                return Err(SpecError::new(Field::Ports, format!("{port}: ports are 1 to 65535")));
            }
            // A wildcard address takes the port on every address of its family.
            let clash = self.ports[..i].iter().any(|other| {
                other.host_port == port.host_port
                    && other.transport == port.transport
                    && other.host_ip.is_ipv4() == port.host_ip.is_ipv4()
                    && (other.host_ip == port.host_ip
                        || other.host_ip.is_unspecified()
                        || port.host_ip.is_unspecified())
            });
            if clash {
                return Err(SpecError::new(
                    Field::Ports,
                    format!("{port}: host port {} is published twice", port.host_port),
                ));
            }
        }
        if !self.enabled && !self.secrets.is_empty() {
            return Err(SpecError::new(
                Field::Secrets,
                "a sandbox without a network cannot use secrets: its requests are where they go",
            ));
        }
        self.policy.validate()?;
        self.dns.validate()?;
        super::secrets::validate(&self.secrets, &self.tls)
    }
}

impl NetPolicy {
    /// Checks every rule: canonical domain names, prefix lengths, port ranges, and that ICMP
    /// rules have neither ports nor an ingress side.
    pub fn validate(&self) -> Result<(), SpecError> {
        for (i, rule) in self.rules.iter().enumerate() {
            rule.check()
                .map_err(|problem| SpecError::new(Field::NetPolicy, format!("rule {}: {problem}", i + 1)))?;
        }
        Ok(())
    }
}

impl Rule {
    /// What is wrong with this rule, if anything.
    pub(crate) fn check(&self) -> Result<(), String> {
        match &self.destination {
            Destination::Cidr(cidr) => {
                let max = if cidr.addr.is_ipv4() { 32 } else { 128 };
                if cidr.prefix > max {
                    return Err(format!("/{} is longer than an address ({max} bits)", cidr.prefix));
                }
            }
            Destination::Domain(name) | Destination::DomainSuffix(name) => check_canonical(name)?,
            Destination::Any | Destination::Group(_) => {}
        }
        for range in &self.ports {
            if range.first == 0 || range.first > range.last {
                return Err(format!(
                    "{}-{} is not a port range: ports are 1 to 65535, the low one first",
                    range.first, range.last
                ));
            }
        }
        if self
            .protocols
            .iter()
            .any(|p| matches!(p, Protocol::Icmpv4 | Protocol::Icmpv6))
        {
            if !self.ports.is_empty() {
                return Err("ICMP has no ports: drop them, or name tcp or udp".into());
            }
            if self.direction != Direction::Egress {
                return Err("ICMP rules are egress only (only echo from the guest is carried)".into());
            }
        }
        Ok(())
    }
}

impl DnsSpec {
    /// Checks the blocked names, the nameservers and the query timeout.
    pub fn validate(&self) -> Result<(), SpecError> {
        for name in self.blocked_domains.iter().chain(&self.blocked_suffixes) {
            check_canonical(name).map_err(|problem| SpecError::new(Field::Dns, format!("blocked name: {problem}")))?;
        }
        for server in &self.nameservers {
            DnsSpec::nameserver_addr(server)?;
        }
        if self.query_timeout_ms == 0 {
            return Err(SpecError::new(Field::Dns, "the query timeout must be at least 1 ms"));
        }
        Ok(())
    }

    /// The address of a nameserver written `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 unless
    /// given).
    pub fn nameserver_addr(text: &str) -> Result<SocketAddr, SpecError> {
        let addr = text
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
            .or_else(|_| text.parse::<SocketAddr>())
            .map_err(|_| {
                SpecError::new(
                    Field::Dns,
                    format!("nameserver '{text}' is not IP, IP:PORT or [IPv6]:PORT"),
                )
            })?;
        if addr.port() == 0 {
            return Err(SpecError::new(
                Field::Dns,
                format!("nameserver '{text}': port 0 cannot be reached"),
            ));
        }
        Ok(addr)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Action, Cidr, PortRange, PublishedPort, Transport};

    fn check(f: impl FnOnce(&mut NetworkSpec)) -> Result<(), (Field, String)> {
        let mut spec = NetworkSpec::default();
        f(&mut spec);
        spec.validate().map_err(|e| (e.field, e.problem))
    }

    fn field(f: impl FnOnce(&mut NetworkSpec)) -> Option<Field> {
        check(f).err().map(|(field, _)| field)
    }

    fn port(text: &str) -> PublishedPort {
        PublishedPort::parse(text).unwrap()
    }

    fn rule(destination: Destination) -> Rule {
        Rule {
            action: Action::Allow,
            direction: Direction::Egress,
            destination,
            protocols: Vec::new(),
            ports: Vec::new(),
        }
    }

    #[test]
    fn defaults_and_presets_are_valid() {
        assert_eq!(check(|_| {}), Ok(()));
        assert_eq!(check(|s| *s = NetworkSpec::disabled()), Ok(()));
        for preset in [NetPolicy::none(), NetPolicy::allow_all(), NetPolicy::non_local()] {
            assert_eq!(check(|s| s.policy = preset), Ok(()));
        }
    }

    #[test]
    fn limits_and_ports() {
        assert_eq!(field(|s| s.max_connections = 0), Some(Field::MaxConnections));
        assert_eq!(field(|s| s.max_connections = 1), None);
        let disabled_with_ports = |s: &mut NetworkSpec| {
            *s = NetworkSpec::disabled();
            s.ports.push(port("8080:80"));
        };
        assert_eq!(field(disabled_with_ports), Some(Field::Ports));
        assert_eq!(
            field(|s| s.ports.push(PublishedPort::new(0, 80, Transport::Tcp))),
            Some(Field::Ports)
        );
        assert_eq!(
            field(|s| s.ports.push(PublishedPort::new(80, 0, Transport::Tcp))),
            Some(Field::Ports)
        );
    }

    #[test]
    fn one_host_port_is_published_once() {
        let ports = |list: &[&str]| check(|s| s.ports = list.iter().map(|p| port(p)).collect());
        assert_eq!(
            ports(&["8080:80", "8081:80", "8080:80/udp", "10.0.0.1:8080:80"]),
            Ok(())
        );
        assert_eq!(ports(&["[::1]:8080:80", "0.0.0.0:8081:80", "[::]:8081:80"]), Ok(()));
        let (_, problem) = ports(&["8080:80", "8080:81"]).unwrap_err();
        assert!(
            problem.contains("127.0.0.1:8080:81/tcp") && problem.contains("twice"),
            "{problem}"
        );
        assert!(ports(&["0.0.0.0:8080:80", "127.0.0.1:8080:81"]).is_err());
        assert!(ports(&["[::1]:53:53/udp", "[::]:53:53/udp"]).is_err());
    }

    #[test]
    fn rules_are_checked() {
        let policy = |rules: Vec<Rule>| {
            check(|s| s.policy.rules = rules).map_err(|(field, problem)| {
                assert_eq!(field, Field::NetPolicy);
                problem
            })
        };
        assert!(policy(vec![rule(Destination::Domain("Example.com".into()))])
            .unwrap_err()
            .contains("'example.com'"));
        assert!(policy(vec![rule(Destination::DomainSuffix("a..b".into()))]).is_err());
        let cidr = |prefix| {
            Destination::Cidr(Cidr {
                addr: "10.0.0.0".parse().unwrap(),
                prefix,
            })
        };
        assert_eq!(policy(vec![rule(cidr(32))]), Ok(()));
        assert!(policy(vec![rule(cidr(33))]).unwrap_err().starts_with("rule 1:"));
        let ports = |first, last| Rule {
            ports: vec![PortRange { first, last }],
            ..rule(Destination::Any)
        };
        assert_eq!(policy(vec![ports(1, 1), ports(1, 65535)]), Ok(()));
        assert!(policy(vec![ports(1, 1), ports(2, 1)])
            .unwrap_err()
            .starts_with("rule 2:"));
        assert!(policy(vec![ports(0, 10)]).is_err());
        let icmp = |direction, ports: Vec<PortRange>| Rule {
            direction,
            protocols: vec![Protocol::Udp, Protocol::Icmpv4],
            ports,
            ..rule(Destination::Any)
        };
        assert_eq!(policy(vec![icmp(Direction::Egress, vec![])]), Ok(()));
        assert!(policy(vec![icmp(Direction::Ingress, vec![])]).is_err());
        assert!(policy(vec![icmp(Direction::Any, vec![])]).is_err());
        assert!(policy(vec![icmp(Direction::Egress, vec![PortRange { first: 1, last: 1 }])]).is_err());
    }

    #[test]
    fn dns_settings_are_checked() {
        let dns = |f: fn(&mut DnsSpec)| field(|s| f(&mut s.dns));
        assert_eq!(dns(|d| d.query_timeout_ms = 0), Some(Field::Dns));
        assert_eq!(dns(|d| d.blocked_domains = vec!["ads.example.com".into()]), None);
        assert_eq!(
            dns(|d| d.blocked_domains = vec!["ADS.example.com".into()]),
            Some(Field::Dns)
        );
        assert_eq!(dns(|d| d.blocked_suffixes = vec!["bad name".into()]), Some(Field::Dns));
        assert_eq!(
            dns(|d| d.nameservers = vec!["1.1.1.1".into(), "[::1]:5353".into()]),
            None
        );
        assert_eq!(dns(|d| d.nameservers = vec!["dns.google".into()]), Some(Field::Dns));
        assert_eq!(dns(|d| d.nameservers = vec!["1.1.1.1:0".into()]), Some(Field::Dns));
    }

    #[test]
    fn nameservers_parse() {
        let addr = |t: &str| DnsSpec::nameserver_addr(t).map(|a| a.to_string());
        assert_eq!(addr("1.1.1.1").unwrap(), "1.1.1.1:53");
        assert_eq!(addr("1.1.1.1:5353").unwrap(), "1.1.1.1:5353");
        assert_eq!(addr("2606:4700::1111").unwrap(), "[2606:4700::1111]:53");
        assert_eq!(addr("[::1]:54").unwrap(), "[::1]:54");
        assert!(addr("1.1.1.1:x").unwrap_err().problem.contains("IP:PORT"));
    }
}
