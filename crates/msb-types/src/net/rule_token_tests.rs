//! The `--net-rule` grammar: what it accepts and how it refuses the rest.

#![allow(clippy::unwrap_used)]

use super::*;

fn one(text: &str) -> Rule {
    let mut rules = Rule::parse_list(text).unwrap();
    assert_eq!(rules.len(), 1, "{text}");
    rules.remove(0)
}

fn target(text: &str) -> Destination {
    one(&format!("allow@{text}")).destination
}

fn problem(text: &str) -> String {
    let err = Rule::parse_list(text).unwrap_err();
    assert_eq!(err.field, Field::NetPolicy);
    err.problem
}

fn block(addr: &str, prefix: u8) -> Destination {
    Destination::Cidr(Cidr {
        addr: addr.parse().unwrap(),
        prefix,
    })
}

#[test]
fn a_full_rule_parses() {
    assert_eq!(
        one("deny:ingress@10.0.0.0/8:tcp:8000-8080"),
        Rule {
            action: Action::Deny,
            direction: Direction::Ingress,
            destination: block("10.0.0.0", 8),
            protocols: vec![Protocol::Tcp],
            ports: vec![PortRange {
                first: 8000,
                last: 8080
            }],
        }
    );
    let short = one("allow@public");
    assert_eq!((short.action, short.direction), (Action::Allow, Direction::Egress));
    assert!(short.protocols.is_empty() && short.ports.is_empty());
    let any = one("ALLOW:Any@Any:any:any");
    assert_eq!((any.direction, any.destination), (Direction::Any, Destination::Any));
    assert!(any.protocols.is_empty() && any.ports.is_empty());
    assert_eq!(one("allow@host:udp:53").ports, vec![PortRange { first: 53, last: 53 }]);
}

#[test]
fn lists_keep_their_order() {
    let rules = Rule::parse_list("deny@domain=evil.com, allow@public ,allow@host:tcp:443").unwrap();
    let targets: Vec<_> = rules.into_iter().map(|r| r.destination).collect();
    assert_eq!(
        targets,
        vec![
            Destination::Domain("evil.com".into()),
            Destination::Group(Group::Public),
            Destination::Group(Group::Host),
        ]
    );
    assert!(problem("allow@public,").contains("empty"));
}

#[test]
fn every_kind_of_target() {
    for (text, group) in [
        ("public", Group::Public),
        ("private", Group::Private),
        ("loopback", Group::Loopback),
        ("link-local", Group::LinkLocal),
        ("link_local", Group::LinkLocal),
        ("meta", Group::Metadata),
        ("metadata", Group::Metadata),
        ("multicast", Group::Multicast),
        ("host", Group::Host),
    ] {
        assert_eq!(target(text), Destination::Group(group), "{text}");
    }
    assert_eq!(target("203.0.113.10"), block("203.0.113.10", 32));
    assert_eq!(target("10.1.2.3/8"), block("10.0.0.0", 8));
    assert_eq!(target("0.0.0.0/0"), block("0.0.0.0", 0));
    assert_eq!(target("[2001:DB8::1]"), block("2001:db8::1", 128));
    assert_eq!(target("[fd00::1]/8:tcp:443"), block("fd00::", 8));
    assert_eq!(target("[::]/0"), block("::", 0));
    assert_eq!(
        target("API.Example.com."),
        Destination::Domain("api.example.com".into())
    );
    assert_eq!(target("domain=localhost"), Destination::Domain("localhost".into()));
    for suffix in [
        "suffix=example.com",
        "suffix=*.example.com",
        "*.example.com",
        "suffix=.Example.COM",
    ] {
        assert_eq!(
            target(suffix),
            Destination::DomainSuffix("example.com".into()),
            "{suffix}"
        );
    }
    assert_eq!(
        one("allow@example.com:tcp:443").destination,
        Destination::Domain("example.com".into())
    );
}

#[test]
fn protocols_and_ports() {
    let protocols = |p: &str| one(&format!("allow@public:{p}")).protocols;
    assert_eq!(protocols("tcp"), vec![Protocol::Tcp]);
    assert_eq!(protocols("udp"), vec![Protocol::Udp]);
    assert_eq!(protocols("icmp"), vec![Protocol::Icmpv4]);
    assert_eq!(protocols("icmpv4"), vec![Protocol::Icmpv4]);
    assert_eq!(protocols("icmpv6"), vec![Protocol::Icmpv6]);
    assert_eq!(protocols("any"), vec![]);
    let range = one("allow@public:tcp:1-65535").ports;
    assert_eq!(range, vec![PortRange { first: 1, last: 65535 }]);
}

#[test]
fn mistakes_get_clear_errors() {
    for (text, fragment) in [
        ("allow@host:443", "write host:tcp:443"),
        ("allow@example.com:8000-8080", "write example.com:tcp:8000-8080"),
        ("allow@localhost", "loopback group"),
        ("allow@foo", "domain=foo"),
        ("allow@pubic", "did you mean 'public'"),
        ("allow@hots", "domain=hots; or did you mean 'host'"),
        ("alow@public", "did you mean 'allow'"),
        ("allow:egres@public", "did you mean 'egress'"),
        ("allow:sideways@public", "egress, ingress or any"),
        ("allow@public:tpc", "did you mean 'tcp'"),
        ("allow@public:tcp:0", "not a port range"),
        ("allow@public:tcp:90-80", "not a port range"),
        ("allow@public:tcp:http", "not a port"),
        ("allow@public:tcp:1-2-3", "not a port"),
        ("allow@public:tcp:70000", "not a port"),
        ("allow@public:icmp:80", "ICMP has no ports"),
        ("allow:ingress@public:icmp", "egress only"),
        ("allow:any@public:icmpv6", "egress only"),
        ("allow@public:tcp:80:x", "after the ports"),
        ("allow@example.com:tcp:80:x", "after the ports"),
        ("allow", "no '@'"),
        ("allow@", "no target"),
        ("allow@::1", "[::1]"),
        ("allow@2001:db8::/32", "brackets"),
        ("allow@fe80::1:tcp:22", "brackets"),
        ("allow@[::1", "']'"),
        ("allow@[::1]x", "after the target"),
        ("allow@[zz]", "not an IPv6"),
        ("allow@10.0.0.0/33", "0 to 32"),
        ("allow@[::]/129", "0 to 128"),
        ("allow@10.0.0/8", "not an IPv4"),
        ("allow@300.1.1.1", "not an IPv4"),
        ("allow@1.2.3", "not an IPv4"),
        ("allow@domian=x.com", "did you mean 'domain'"),
        ("allow@exa mple.com", "' '"),
        ("allow@suffix=", "empty"),
    ] {
        let got = problem(text);
        assert!(got.contains(fragment), "{text}: {got}");
        assert!(got.starts_with(&format!("rule '{text}'")), "{text}: {got}");
    }
}

#[test]
fn actions_parse_from_text() {
    assert_eq!(" Allow ".parse::<Action>().unwrap(), Action::Allow);
    assert_eq!("deny".parse::<Action>().unwrap(), Action::Deny);
    assert!("dney".parse::<Action>().unwrap_err().problem.contains("'deny'"));
}
