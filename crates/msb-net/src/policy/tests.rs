//! The policy's decisions: groups, presets, rule order, protocols and ports, directions, and
//! the three-valued matching of domain rules.

#![allow(clippy::unwrap_used)]

use super::*;
use msb_types::Rule;

const GATEWAY: &str = "100.96.0.1";
const PUBLIC: &str = "203.0.113.10";

fn policy(p: NetPolicy) -> Policy {
    Policy::new(p, GATEWAY.parse().unwrap())
}

/// A policy of `--net-rule` text, egress denied and ingress allowed by default.
fn rules(text: &str) -> Policy {
    policy(NetPolicy::compose(None, Rule::parse_list(text).unwrap(), None, None))
}

fn flow<'a>(direction: Direction, protocol: Protocol, ip: &str, port: u16) -> FlowQuery<'a> {
    FlowQuery {
        direction,
        protocol,
        ip: ip.parse().unwrap(),
        port,
        pinned_names: &[],
        name: FlowName::Absent,
    }
}

fn tcp_out<'a>(ip: &str, port: u16) -> FlowQuery<'a> {
    flow(Direction::Egress, Protocol::Tcp, ip, port)
}

fn allowed(p: &Policy, f: FlowQuery<'_>) -> bool {
    match p.check(&f) {
        Verdict::Allow(_) => true,
        Verdict::Deny(_) => false,
        Verdict::NeedName => panic!("{f:?} needs a name"),
    }
}

const EVERY_GROUP: [(&str, Group); 8] = [
    ("100.96.0.1", Group::Host),
    ("169.254.169.254", Group::Metadata),
    ("169.254.1.1", Group::LinkLocal),
    ("127.0.0.1", Group::Loopback),
    ("10.1.2.3", Group::Private),
    ("224.0.0.251", Group::Multicast),
    ("0.0.0.0", Group::Loopback),
    (PUBLIC, Group::Public),
];

#[test]
fn none_blocks_everything() {
    let p = policy(NetPolicy::none());
    for (ip, _) in EVERY_GROUP {
        assert!(!allowed(&p, tcp_out(ip, 443)), "{ip}");
        assert!(!allowed(&p, flow(Direction::Ingress, Protocol::Tcp, ip, 80)), "{ip}");
    }
}

#[test]
fn allow_all_allows_everything_but_the_host() {
    let p = policy(NetPolicy::allow_all());
    for (ip, group) in EVERY_GROUP {
        assert_eq!(allowed(&p, tcp_out(ip, 443)), group != Group::Host, "{ip}");
        assert!(allowed(&p, flow(Direction::Ingress, Protocol::Udp, ip, 53)), "{ip}");
    }
}

#[test]
fn only_a_host_rule_opens_the_host() {
    for text in [
        "allow@any",
        "allow@100.96.0.0/30",
        "allow@100.64.0.0/10:tcp:8080",
        "allow@private",
    ] {
        let p = rules(text);
        assert!(!allowed(&p, tcp_out("100.96.0.1", 8080)), "{text}");
    }
    let p = rules("allow@host:tcp:8080");
    assert!(allowed(&p, tcp_out("100.96.0.1", 8080)));
    assert!(!allowed(&p, tcp_out("100.96.0.1", 8081)));
    // A deny still denies, whatever the allow rules after it say.
    let p = rules("deny@any,allow@host");
    assert!(!allowed(&p, tcp_out("100.96.0.1", 8080)));
}

#[test]
fn public_only_reaches_public_addresses_only() {
    let p = policy(NetPolicy::public_only());
    for (ip, group) in EVERY_GROUP {
        assert_eq!(allowed(&p, tcp_out(ip, 443)), group == Group::Public, "{ip}");
        assert!(allowed(&p, flow(Direction::Ingress, Protocol::Tcp, ip, 80)), "{ip}");
    }
    assert_eq!(p.check(&tcp_out(PUBLIC, 443)), Verdict::Allow(Some(0)));
    assert_eq!(p.check(&tcp_out("10.0.0.1", 443)), Verdict::Deny(None));
    assert!(allowed(&p, flow(Direction::Egress, Protocol::Icmpv4, "8.8.8.8", 0)));
    assert!(allowed(&p, tcp_out("2606:4700::1111", 443)));
    assert!(!allowed(&p, tcp_out("::ffff:127.0.0.1", 443)));
    assert!(!allowed(&p, tcp_out("fd00:ec2::254", 80)));
}

#[test]
fn non_local_adds_private_addresses() {
    let p = policy(NetPolicy::non_local());
    for (ip, group) in EVERY_GROUP {
        let expected = matches!(group, Group::Public | Group::Private);
        assert_eq!(allowed(&p, tcp_out(ip, 443)), expected, "{ip}");
    }
    assert!(allowed(&p, tcp_out("fd12::1", 22)));
}

#[test]
fn the_first_matching_rule_wins() {
    let p = rules("deny@10.1.0.0/16,allow@private,allow@host:tcp:8080");
    assert_eq!(p.check(&tcp_out("10.1.2.3", 80)), Verdict::Deny(Some(0)));
    assert_eq!(p.check(&tcp_out("10.2.0.1", 80)), Verdict::Allow(Some(1)));
    assert_eq!(p.check(&tcp_out(GATEWAY, 8080)), Verdict::Allow(Some(2)));
    assert_eq!(p.check(&tcp_out(GATEWAY, 8081)), Verdict::Deny(None));
    assert_eq!(p.check(&tcp_out(PUBLIC, 80)), Verdict::Deny(None));

    let reversed = rules("allow@private,deny@10.1.0.0/16");
    assert_eq!(reversed.check(&tcp_out("10.1.2.3", 80)), Verdict::Allow(Some(0)));
}

#[test]
fn addresses_and_blocks() {
    let p = rules("allow@198.51.100.7,allow@[2001:db8::]/32,allow@[::ffff:192.0.2.0]/120");
    assert!(allowed(&p, tcp_out("198.51.100.7", 1)));
    assert!(!allowed(&p, tcp_out("198.51.100.8", 1)));
    assert!(allowed(&p, tcp_out("::ffff:198.51.100.7", 1)));
    assert!(allowed(&p, tcp_out("2001:db8:ffff::1", 1)));
    assert!(!allowed(&p, tcp_out("2001:db9::1", 1)));
    assert!(allowed(&p, tcp_out("192.0.2.200", 1)));
    assert!(!allowed(&p, tcp_out("192.0.3.1", 1)));
    let everything_v4 = rules("allow@0.0.0.0/0");
    assert!(allowed(&everything_v4, tcp_out("127.0.0.1", 1)));
    assert!(!allowed(&everything_v4, tcp_out("::1", 1)));
}

#[test]
fn protocols_and_port_ranges() {
    let p = rules("allow@public:tcp:8000-8080,allow@public:udp:53,allow@public:icmp,deny@public:any:22");
    assert!(allowed(&p, tcp_out(PUBLIC, 8000)));
    assert!(allowed(&p, tcp_out(PUBLIC, 8080)));
    assert!(!allowed(&p, tcp_out(PUBLIC, 7999)));
    assert!(!allowed(&p, tcp_out(PUBLIC, 8081)));
    assert!(!allowed(&p, tcp_out(PUBLIC, 53)));
    assert!(allowed(&p, flow(Direction::Egress, Protocol::Udp, PUBLIC, 53)));
    assert!(!allowed(&p, flow(Direction::Egress, Protocol::Udp, PUBLIC, 8000)));
    assert!(allowed(&p, flow(Direction::Egress, Protocol::Icmpv4, PUBLIC, 0)));
    assert!(!allowed(
        &p,
        flow(Direction::Egress, Protocol::Icmpv6, "2606:4700::1", 0)
    ));
    assert_eq!(p.check(&tcp_out(PUBLIC, 22)), Verdict::Deny(Some(3)));

    // ICMP carries no port: a port-restricted rule, even of any protocol, never matches it.
    let ported = rules("allow@public:any:1-65535");
    assert!(allowed(&ported, tcp_out(PUBLIC, 1)));
    assert!(!allowed(&ported, flow(Direction::Egress, Protocol::Icmpv4, PUBLIC, 0)));
    let unported = rules("allow@public");
    assert!(allowed(&unported, flow(Direction::Egress, Protocol::Icmpv4, PUBLIC, 0)));
}

#[test]
fn directions_are_decided_apart() {
    let mut p = NetPolicy::compose(
        None,
        Rule::parse_list("deny:ingress@private:tcp:22,allow:any@host,allow:egress@public").unwrap(),
        None,
        Some(Action::Deny),
    );
    p.default_egress = Action::Deny;
    let p = policy(p);
    let inbound = |ip, port| flow(Direction::Ingress, Protocol::Tcp, ip, port);
    assert_eq!(p.check(&inbound("10.0.0.1", 22)), Verdict::Deny(Some(0)));
    assert_eq!(p.check(&tcp_out("10.0.0.1", 22)), Verdict::Deny(None));
    assert_eq!(p.check(&inbound(GATEWAY, 80)), Verdict::Allow(Some(1)));
    assert_eq!(p.check(&tcp_out(GATEWAY, 80)), Verdict::Allow(Some(1)));
    assert_eq!(p.check(&tcp_out(PUBLIC, 80)), Verdict::Allow(Some(2)));
    assert_eq!(p.check(&inbound(PUBLIC, 80)), Verdict::Deny(None));

    let defaults = policy(NetPolicy::compose(
        None,
        vec![],
        Some(Action::Allow),
        Some(Action::Deny),
    ));
    assert_eq!(defaults.check(&tcp_out(PUBLIC, 80)), Verdict::Allow(None));
    assert_eq!(defaults.check(&inbound(PUBLIC, 80)), Verdict::Deny(None));
}

fn named<'a>(ip: &str, pinned: &'a [String], name: FlowName<'a>) -> FlowQuery<'a> {
    FlowQuery {
        pinned_names: pinned,
        name,
        ..tcp_out(ip, 443)
    }
}

#[test]
fn domain_allow_rules_need_a_pinned_address() {
    let p = rules("allow@domain=api.example.com,allow@suffix=cdn.net");
    let pinned = ["api.example.com".to_string()];
    // Pinned: known once the first bytes say nothing else.
    assert_eq!(p.check(&named(PUBLIC, &pinned, FlowName::NotYet)), Verdict::NeedName);
    assert_eq!(
        p.check(&named(PUBLIC, &pinned, FlowName::Absent)),
        Verdict::Allow(Some(0))
    );
    let sni = FlowName::Name("api.example.com");
    assert_eq!(p.check(&named(PUBLIC, &pinned, sni)), Verdict::Allow(Some(0)));
    // A spoofed SNI does not ride on a pinned address.
    let spoofed = FlowName::Name("evil.org");
    assert_eq!(p.check(&named(PUBLIC, &pinned, spoofed)), Verdict::Deny(None));
    // Not pinned: the right SNI on a raw address is not enough.
    for name in [FlowName::NotYet, FlowName::Absent, sni] {
        assert_eq!(p.check(&named(PUBLIC, &[], name)), Verdict::Deny(None), "{name:?}");
    }
    // Suffixes match on label boundaries, in any case.
    let cdn = ["img.cdn.net".to_string()];
    assert!(allowed(&p, named(PUBLIC, &cdn, FlowName::Name("IMG.cdn.net."))));
    let lookalike = ["badcdn.net".to_string()];
    assert!(!allowed(&p, named(PUBLIC, &lookalike, FlowName::Absent)));
}

#[test]
fn domain_deny_rules_match_the_name_or_the_pin() {
    let p = policy(NetPolicy::compose(
        Some(NetPolicy::public_only()),
        Rule::parse_list("deny@suffix=evil.com").unwrap(),
        None,
        None,
    ));
    // Deny by SNI on a raw address.
    let sni = FlowName::Name("www.evil.com");
    assert_eq!(p.check(&named(PUBLIC, &[], sni)), Verdict::Deny(Some(0)));
    assert_eq!(
        p.check(&named(PUBLIC, &[], FlowName::Name("good.org"))),
        Verdict::Allow(Some(1))
    );
    // Before the first bytes anything may follow.
    assert_eq!(p.check(&named(PUBLIC, &[], FlowName::NotYet)), Verdict::NeedName);
    // No name in the first bytes: the pin decides.
    let pinned = ["evil.com".to_string()];
    assert_eq!(
        p.check(&named(PUBLIC, &pinned, FlowName::Absent)),
        Verdict::Deny(Some(0))
    );
    assert_eq!(p.check(&named(PUBLIC, &[], FlowName::Absent)), Verdict::Allow(Some(1)));
    // A pinned address with an SNI it was never resolved for is still the denied host.
    let spoofed = FlowName::Name("good.org");
    assert_eq!(p.check(&named(PUBLIC, &pinned, spoofed)), Verdict::Deny(Some(0)));
    // A shared address resolved for both names: the SNI tells them apart.
    let shared = ["evil.com".to_string(), "good.org".to_string()];
    assert_eq!(p.check(&named(PUBLIC, &shared, spoofed)), Verdict::Allow(Some(1)));
}

#[test]
fn a_flow_denied_whatever_its_name_is_denied_at_the_syn() {
    let p = rules("deny@domain=evil.com,allow@public");
    // Public: the name decides between the deny and the allow.
    assert_eq!(p.check(&named(PUBLIC, &[], FlowName::NotYet)), Verdict::NeedName);
    // Private, metadata, the host: denied by the default either way, so no handshake.
    for ip in ["10.20.0.10", "169.254.169.254", GATEWAY] {
        assert_eq!(p.check(&named(ip, &[], FlowName::NotYet)), Verdict::Deny(None), "{ip}");
    }
    // Two undecided rules with one action decide together; opposite ones do not.
    let p = rules("deny@domain=evil.com,deny@suffix=bad.org,deny@any");
    assert_eq!(p.check(&named(PUBLIC, &[], FlowName::NotYet)), Verdict::Deny(Some(2)));
    let pinned = ["good.org".to_string()];
    let p = rules("deny@domain=evil.com,allow@good.org");
    assert_eq!(p.check(&named(PUBLIC, &pinned, FlowName::NotYet)), Verdict::NeedName);
}

#[test]
fn unknown_only_matters_before_a_match() {
    let p = rules("allow@host,deny@domain=evil.com,allow@public");
    // The host rule decides before the domain rule is reached.
    assert_eq!(p.check(&named(GATEWAY, &[], FlowName::NotYet)), Verdict::Allow(Some(0)));
    assert_eq!(p.check(&named(PUBLIC, &[], FlowName::NotYet)), Verdict::NeedName);
    // Rules of another protocol are skipped before names are looked at.
    let udp = FlowQuery {
        protocol: Protocol::Udp,
        ..named(PUBLIC, &[], FlowName::NotYet)
    };
    let p = rules("deny@domain=evil.com:tcp,allow@public");
    assert_eq!(p.check(&udp), Verdict::Allow(Some(1)));
}

#[test]
fn names_denied_at_dns() {
    let p = rules(
        "allow@domain=ok.evil.com,deny@suffix=evil.com,deny@domain=web.org:tcp:443,deny@domain=web.org,\
         allow@public,deny:ingress@domain=inbound.io",
    );
    assert!(p.denies_name("evil.com"));
    assert!(p.denies_name("A.EVIL.com."));
    assert!(!p.denies_name("ok.evil.com"));
    assert!(!p.denies_name("notevil.com"));
    assert!(!p.denies_name("web.org"));
    assert!(!p.denies_name("inbound.io"));
    assert!(!p.denies_name("example.com"));
    // Address rules say nothing about names.
    let p = rules("deny@any,deny@private,deny@domain=x.io");
    assert!(p.denies_name("x.io"));
    assert!(!policy(NetPolicy::none()).denies_name("x.io"));
    let any_direction = rules("deny:any@domain=x.io");
    assert!(any_direction.denies_name("x.io"));
}

#[test]
fn unvalidated_rules_still_match() {
    let mut p = NetPolicy::public_only();
    p.rules.insert(
        0,
        Rule {
            action: Action::Deny,
            direction: Direction::Egress,
            destination: Destination::Domain("Evil.COM.".into()),
            protocols: vec![],
            ports: vec![],
        },
    );
    assert!(policy(p).denies_name("evil.com"));
}
