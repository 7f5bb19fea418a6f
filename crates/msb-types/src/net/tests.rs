//! The network types: presets, composing flags, serde, validation.

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn presets_by_name() {
    assert_eq!(NetPolicy::preset("none").unwrap(), NetPolicy::none());
    assert_eq!(NetPolicy::preset("public-only").unwrap(), NetPolicy::public_only());
    assert_eq!(NetPolicy::preset("public_only").unwrap(), NetPolicy::public_only());
    assert_eq!(NetPolicy::preset("Non-Local").unwrap(), NetPolicy::non_local());
    assert_eq!(NetPolicy::preset("allow_all").unwrap(), NetPolicy::allow_all());
    let err = NetPolicy::preset("publc-only").unwrap_err();
    assert_eq!(err.field, Field::NetPolicy);
    assert!(
        err.problem.contains("none, public-only, non-local, allow-all"),
        "{}",
        err.problem
    );
    assert!(err.problem.contains("did you mean 'public-only'"), "{}", err.problem);
    assert!(!NetPolicy::preset("open").unwrap_err().problem.contains("did you mean"));
}

#[test]
fn presets_mean_what_the_reference_says() {
    let defaults = |p: NetPolicy| (p.default_egress, p.default_ingress, p.rules.len());
    assert_eq!(defaults(NetPolicy::none()), (Action::Deny, Action::Deny, 0));
    assert_eq!(defaults(NetPolicy::allow_all()), (Action::Allow, Action::Allow, 0));
    assert_eq!(defaults(NetPolicy::public_only()), (Action::Deny, Action::Allow, 1));
    assert_eq!(defaults(NetPolicy::non_local()), (Action::Deny, Action::Allow, 2));
    assert_eq!(NetworkSpec::default().policy, NetPolicy::public_only());
    assert!(NetworkSpec::default().enabled && !NetworkSpec::disabled().enabled);
}

#[test]
fn flags_compose_into_a_policy() {
    let rules = Rule::parse_list("deny@domain=evil.com,allow@host:tcp:8080").unwrap();
    assert_eq!(NetPolicy::compose(None, vec![], None, None), NetPolicy::public_only());

    let bare = NetPolicy::compose(None, rules.clone(), None, None);
    assert_eq!(
        (bare.default_egress, bare.default_ingress),
        (Action::Deny, Action::Allow)
    );
    assert_eq!(bare.rules, rules);

    let only_default = NetPolicy::compose(None, vec![], Some(Action::Allow), None);
    assert_eq!(
        only_default,
        NetPolicy::compose(Some(NetPolicy::allow_all()), vec![], None, None)
    );

    let over_preset = NetPolicy::compose(Some(NetPolicy::non_local()), rules.clone(), None, Some(Action::Deny));
    assert_eq!(
        (over_preset.default_egress, over_preset.default_ingress),
        (Action::Deny, Action::Deny)
    );
    assert_eq!(over_preset.rules[..2], rules[..]);
    assert_eq!(over_preset.rules[2..], NetPolicy::non_local().rules[..]);
}

#[test]
fn specs_survive_json() {
    let spec = NetworkSpec {
        enabled: true,
        policy: NetPolicy::compose(
            Some(NetPolicy::public_only()),
            Rule::parse_list("deny@suffix=example.com:tcp:443,allow:any@[fd00::]/8:udp:53-54,allow@meta:icmp").unwrap(),
            Some(Action::Allow),
            None,
        ),
        dns: DnsSpec {
            blocked_domains: vec!["ads.example.com".into()],
            blocked_suffixes: vec!["tracker.io".into()],
            rebind_protection: false,
            nameservers: vec!["[::1]:53".into()],
            query_timeout_ms: 250,
        },
        ports: vec![PublishedPort::parse("[::1]:8080:80/udp").unwrap()],
        max_connections: 7,
        secrets: vec![crate::SecretSpec {
            env: "API_KEY".into(),
            placeholder: "msb_sec_0123456789abcdef".into(),
            hosts: vec!["*.example.com".into()],
            inject: crate::SecretInjection::default(),
        }],
        tls: crate::TlsSpec {
            intercept: vec!["api.other.org".into()],
            on_secret_violation: crate::ViolationAction::BlockAndTerminate,
            ..crate::TlsSpec::default()
        },
    };
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<NetworkSpec>(&json).unwrap(), spec);
}

#[test]
fn missing_fields_fail_closed() {
    let policy: NetPolicy = serde_json::from_str("{}").unwrap();
    assert_eq!(policy, NetPolicy::none());
    let spec: NetworkSpec = serde_json::from_str(r#"{"enabled": true, "policy": {"rules": []}}"#).unwrap();
    assert_eq!(spec.policy.default_egress, Action::Deny);
    assert_eq!(spec.policy.default_ingress, Action::Deny);
    assert_eq!(spec.dns, DnsSpec::default());
    assert_eq!(spec.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert!(spec.secrets.is_empty() && spec.tls == crate::TlsSpec::default());
}
