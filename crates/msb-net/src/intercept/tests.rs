//! Configuration, CA and the request decision, without sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::rewrite::{allowed, host_of, rewrite, Facts, Violation};
use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::RootCertStore;
use std::time::Duration;

pub(super) const PH_API: &str = "msb_sec_00000000000000000000000000000001";
pub(super) const PH_CORP: &str = "msb_sec_00000000000000000000000000000002";
pub(super) const REAL_API: &str = "real-api-value-7f3a";
pub(super) const REAL_CORP: &str = "real-corp-value-91bc";

pub(super) fn rule(name: &str, value: &str, placeholder: &str, hosts: &[&str], inject: Injection) -> SecretRule {
    SecretRule {
        name: name.into(),
        value: Zeroizing::new(value.into()),
        placeholder: placeholder.into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        inject,
    }
}

/// Two secrets: API_KEY for `api.test` (default injection), CORP for `*.corp.test` (everywhere).
pub(super) fn two_secrets() -> Vec<SecretRule> {
    let everywhere = Injection {
        headers: true,
        basic_auth: true,
        query: true,
        body: true,
    };
    vec![
        rule("API_KEY", REAL_API, PH_API, &["api.test"], Injection::default()),
        rule("CORP", REAL_CORP, PH_CORP, &["*.corp.test"], everywhere),
    ]
}

fn config() -> InterceptConfig {
    InterceptConfig {
        secrets: two_secrets(),
        host_roots: false,
        ..InterceptConfig::default()
    }
}

#[test]
fn defaults_are_as_documented() {
    let cfg = InterceptConfig::default();
    assert_eq!(cfg.ports, [443]);
    assert!(cfg.host_roots && cfg.scrub_responses && cfg.block_quic);
    assert_eq!(cfg.scrub_limit, 1024 * 1024);
    assert_eq!(cfg.on_violation, ViolationAction::BlockAndLog);
    assert!(matches!(cfg.ca, CaSource::Generate));
    let inject = Injection::default();
    assert!(inject.headers && inject.basic_auth && !inject.query && !inject.body);
}

#[test]
fn bad_configurations_are_refused_with_the_secret_named() {
    let bypassed = InterceptConfig {
        bypass: vec!["*.test".into()],
        ..config()
    };
    let error = Interception::new(bypassed).unwrap_err().to_string();
    assert!(error.contains("API_KEY") && error.contains("bypassed"), "{error}");
    let mut short = config();
    short.secrets[0].placeholder = "short".into();
    assert!(matches!(
        Interception::new(short),
        Err(InterceptError::ShortPlaceholder(_))
    ));
    let mut bad_host = config();
    bad_host.secrets[1].hosts = vec!["a.*.test".into()];
    assert!(matches!(Interception::new(bad_host), Err(InterceptError::BadHost(_))));
    // A bypass beside the secret hosts is fine.
    let beside = InterceptConfig {
        bypass: vec!["pinned.corp-other.test".into()],
        ..config()
    };
    assert!(Interception::new(beside).is_ok());
}

#[test]
fn debug_output_never_holds_a_value() {
    let interception = Interception::new(config()).unwrap();
    let text = format!("{interception:?} {:?} {:?}", two_secrets(), config());
    assert!(text.contains("API_KEY"));
    for secret in [REAL_API, REAL_CORP, PH_API] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn which_flows_and_datagrams_are_intercepted() {
    let interception = Interception::new(InterceptConfig {
        intercept_hosts: vec!["extra.test".into()],
        bypass: vec!["skip.corp.test".into()],
        ..config()
    })
    .unwrap();
    assert!(interception.intercepts("api.test", 443));
    assert!(interception.intercepts("a.b.corp.test", 443) && interception.intercepts("corp.test", 443));
    assert!(interception.intercepts("extra.test", 443));
    assert!(!interception.intercepts("api.test", 8443));
    assert!(!interception.intercepts("skip.corp.test", 443));
    assert!(!interception.intercepts("elsewhere.test", 443));
    assert!(interception.drops_udp(443, &["api.test".into()]));
    assert!(!interception.drops_udp(443, &["elsewhere.test".into()]));
    assert!(!interception.drops_udp(8443, &["api.test".into()]));
}

/// Verifies `leaf` for `name` against `ca_pem` at `at`.
fn verify(
    ca_pem: &str,
    leaf: &rustls::sign::CertifiedKey,
    name: &str,
    at: std::time::SystemTime,
) -> Result<(), rustls::Error> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let at = UnixTime::since_unix_epoch(at.duration_since(std::time::UNIX_EPOCH).unwrap());
    let server = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(&leaf.cert[0], &leaf.cert[1..], &server, &[], at)
        .map(|_| ())
}

#[test]
fn leaves_are_backdated_named_cached_and_within_the_name_constraints() {
    let interception = Interception::new(config()).unwrap();
    let ca = interception.ca_pem();
    let leaf = interception.ca.leaf("api.test").unwrap();
    let now = std::time::SystemTime::now();
    let hour = Duration::from_secs(3600);
    verify(&ca, &leaf, "api.test", now).unwrap();
    verify(&ca, &leaf, "api.test", now - hour - Duration::from_secs(60)).unwrap();
    verify(&ca, &leaf, "api.test", now + 20 * hour).unwrap();
    assert!(
        verify(&ca, &leaf, "api.test", now + 30 * hour).is_err(),
        "valid about a day"
    );
    assert!(verify(&ca, &leaf, "other.test", now).is_err(), "SAN is the SNI only");
    assert!(Arc::ptr_eq(&leaf, &interception.ca.leaf("api.test").unwrap()), "cached");
    // Below a permitted subtree: fine. Outside every subtree: the CA's constraints refuse it.
    verify(
        &ca,
        &interception.ca.leaf("deep.x.corp.test").unwrap(),
        "deep.x.corp.test",
        now,
    )
    .unwrap();
    let outside = interception.ca.leaf("evil.test").unwrap();
    let error = verify(&ca, &outside, "evil.test", now).unwrap_err();
    assert!(format!("{error:?}").contains("NameConstraint"), "{error:?}");
    // `*` as a host: no constraint is possible, so none is set.
    let anywhere = Interception::new(InterceptConfig {
        intercept_hosts: vec!["*".into()],
        ..config()
    })
    .unwrap();
    verify(
        &anywhere.ca_pem(),
        &anywhere.ca.leaf("evil.test").unwrap(),
        "evil.test",
        now,
    )
    .unwrap();
}

#[test]
fn a_given_ca_signs_the_leaves() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Users Inc");
    params.distinguished_name.push(rcgen::DnType::CommonName, "Users CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let interception = Interception::new(InterceptConfig {
        ca: CaSource::Given {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        },
        ..config()
    })
    .unwrap();
    assert_eq!(interception.ca_pem().trim(), cert.pem().trim());
    let leaf = interception.ca.leaf("api.test").unwrap();
    verify(&cert.pem(), &leaf, "api.test", std::time::SystemTime::now()).unwrap();
}

#[tokio::test]
async fn terminate_resolves_even_when_awaited_after_the_violation() {
    let interception = Interception::new(InterceptConfig {
        on_violation: ViolationAction::BlockAndTerminate,
        ..config()
    })
    .unwrap();
    interception.violation("evil.test", 0);
    assert_eq!(interception.violations(), 1);
    tokio::time::timeout(Duration::from_secs(1), interception.terminated())
        .await
        .unwrap();
}

fn request(authority: Option<&str>, headers: &[(&str, String)], uri: &str) -> http::request::Parts {
    let mut builder = http::Request::builder().uri(uri);
    if let Some(host) = authority {
        builder = builder.header("host", host);
    }
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn parse_secrets() -> Interception {
    Arc::into_inner(Interception::new(config()).unwrap()).unwrap()
}

#[test]
fn substitution_happens_only_where_injection_says() {
    let interception = parse_secrets();
    let (secrets, placeholders) = (interception.secrets(), interception.placeholders().unwrap());
    let facts = Facts {
        sni: "api.test",
        pinned: true,
    };
    let basic = STANDARD.encode(format!("user:{PH_API}"));
    let mut head = request(
        Some("API.test:443"),
        &[
            ("x-key", format!("k={PH_API}")),
            ("authorization", format!("Basic {basic}")),
        ],
        &format!("/p?key={PH_API}"),
    );
    let ok = allowed(secrets, facts, Some("API.test:443"));
    assert_eq!(ok, [true, false]);
    rewrite(secrets, placeholders, &ok, &mut head, None).unwrap();
    assert_eq!(head.headers["x-key"], format!("k={REAL_API}").as_str());
    assert!(head.headers["x-key"].is_sensitive());
    let expected = format!("Basic {}", STANDARD.encode(format!("user:{REAL_API}")));
    assert_eq!(head.headers["authorization"], expected.as_str());
    // API_KEY's injection leaves the query alone: forwarded as it is, which is harmless.
    assert_eq!(head.uri.query(), Some(format!("key={PH_API}").as_str()));

    // CORP, injected everywhere, on a subdomain: query and body too.
    let facts = Facts {
        sni: "x.corp.test",
        pinned: true,
    };
    let ok = allowed(secrets, facts, Some("x.corp.test"));
    let mut head = request(Some("x.corp.test"), &[], &format!("/p?key={PH_CORP}&b=1"));
    let mut body = format!("{{\"k\":\"{PH_CORP}\"}}").into_bytes();
    rewrite(secrets, placeholders, &ok, &mut head, Some(&mut body)).unwrap();
    assert_eq!(head.uri.query(), Some(format!("key={REAL_CORP}&b=1").as_str()));
    assert_eq!(body, format!("{{\"k\":\"{REAL_CORP}\"}}").into_bytes());
}

#[test]
fn a_placeholder_where_it_may_not_go_is_a_violation() {
    let interception = parse_secrets();
    let (secrets, placeholders) = (interception.secrets(), interception.placeholders().unwrap());
    let cases: [(&str, bool, Option<&str>); 4] = [
        ("evil.test", true, Some("evil.test")), // not an allowed host
        ("api.test", true, Some("evil.test")),  // Host differs from the SNI
        ("api.test", false, Some("api.test")),  // SNI not pinned to the address (spoofed)
        ("api.test", true, None),               // no Host at all
    ];
    for (sni, pinned, authority) in cases {
        let ok = allowed(secrets, Facts { sni, pinned }, authority);
        let mut head = request(authority, &[("x-key", PH_API.to_string())], "/");
        assert_eq!(
            rewrite(secrets, placeholders, &ok, &mut head, None),
            Err(Violation { secret: 0 }),
            "{sni} {pinned} {authority:?}"
        );
        let basic = STANDARD.encode(format!("{PH_API}:x"));
        let mut head = request(authority, &[("authorization", format!("basic {basic}"))], "/");
        assert!(rewrite(secrets, placeholders, &ok, &mut head, None).is_err());
    }
    assert_eq!(host_of("[::1]:443"), "[::1]");
    assert_eq!(host_of("Api.Test."), "api.test");
}

/// Where a placeholder may be put in a generated request.
#[derive(Debug, Clone, Copy)]
enum Spot {
    Header,
    Basic,
    Query,
    Path,
    Body,
}

fn spot() -> impl Strategy<Value = Spot> {
    prop_oneof![
        Just(Spot::Header),
        Just(Spot::Basic),
        Just(Spot::Query),
        Just(Spot::Path),
        Just(Spot::Body)
    ]
}

/// The rule, restated independently: secret `i` may be sent on (sni, pinned, authority).
fn reference_allowed(i: usize, sni: &str, pinned: bool, authority: Option<&str>) -> bool {
    let host = authority.map(|a| a.split(':').next().unwrap_or(a).to_ascii_lowercase());
    let host_matches = host.as_deref() == Some(sni);
    let sni_allowed = match i {
        0 => sni == "api.test",
        _ => sni == "corp.test" || sni.ends_with(".corp.test"),
    };
    pinned && host_matches && sni_allowed
}

proptest! {
    /// Whatever the request, a real value never leaves for a flow not allowed for it, and a
    /// placeholder of a secret not allowed is always caught.
    #[test]
    fn a_value_never_reaches_a_host_not_allowed_for_it(
        sni in prop_oneof![Just("api.test"), Just("x.corp.test"), Just("corp.test"), Just("evil.test"), Just("api.test.evil")],
        pinned in any::<bool>(),
        authority in prop_oneof![Just(None), Just(Some("api.test")), Just(Some("API.TEST:443")), Just(Some("x.corp.test")), Just(Some("evil.test")), Just(Some("10.0.0.1"))],
        spots in proptest::collection::vec((0usize..2, spot()), 0..5),
    ) {
        let interception = parse_secrets();
        let (secrets, placeholders) = (interception.secrets(), interception.placeholders().unwrap());
        let ph = [PH_API, PH_CORP];
        let mut headers = Vec::new();
        let mut query = String::from("a=1");
        let mut path = String::from("/p");
        let mut body = b"start ".to_vec();
        for (i, spot) in &spots {
            match spot {
                Spot::Header => headers.push(("x-h", format!("v {}", ph[*i]))),
                Spot::Basic => headers.push(("authorization", format!("Basic {}", STANDARD.encode(format!("u:{}", ph[*i]))))),
                Spot::Query => query.push_str(&format!("&k={}", ph[*i])),
                Spot::Path => path.push_str(&format!("/{}", ph[*i])),
                Spot::Body => body.extend_from_slice(ph[*i].as_bytes()),
            }
        }
        let mut head = request(authority, &headers, &format!("{path}?{query}"));
        let ok = allowed(secrets, Facts { sni, pinned }, authority);
        for (i, allowed) in ok.iter().enumerate() {
            prop_assert_eq!(*allowed, reference_allowed(i, sni, pinned, authority));
        }
        let outcome = rewrite(secrets, placeholders, &ok, &mut head, Some(&mut body));
        let present: Vec<usize> = spots.iter().map(|(i, _)| *i).collect();
        let must_block = present.iter().any(|i| !reference_allowed(*i, sni, pinned, authority));
        prop_assert_eq!(outcome.is_err(), must_block);
        if let Err(Violation { secret }) = outcome {
            prop_assert!(present.contains(&secret) && !reference_allowed(secret, sni, pinned, authority));
            return Ok(());
        }
        let mut out = format!("{}\n", head.uri).into_bytes();
        for value in head.headers.values() {
            out.extend_from_slice(value.as_bytes());
            if let Some(encoded) = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")) {
                out.extend_from_slice(&STANDARD.decode(encoded).unwrap_or_default());
            }
        }
        out.extend_from_slice(&body);
        let text = String::from_utf8_lossy(&out);
        for (i, real) in [REAL_API, REAL_CORP].iter().enumerate() {
            if text.contains(real) {
                prop_assert!(reference_allowed(i, sni, pinned, authority));
            }
        }
    }
}
