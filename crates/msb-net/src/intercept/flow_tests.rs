//! Intercepted flows end to end in memory: a tokio-rustls + hyper guest on one end of a
//! duplex stream, the interception on the other, a local HTTPS echo server upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::flow::{terminate, Intercepted};
use super::tests::{two_secrets, PH_API, PH_CORP, REAL_API, REAL_CORP};
use super::*;
use crate::dns::Pins;
use crate::stack::harness::tls::{client_config, EchoServer, TestCa};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where the guest dials (pinned to the names a test chooses).
const DST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 7), 443);

struct World {
    interception: Arc<Interception>,
    echo: EchoServer,
    pins: Arc<Pins>,
}

async fn world(on_violation: ViolationAction, trust_upstream: bool) -> World {
    let ca = TestCa::new().unwrap();
    let names = ["api.test", "x.corp.test", "other.test"];
    let echo = EchoServer::start(ca.server_config(&names).unwrap()).await.unwrap();
    let interception = Interception::new(InterceptConfig {
        secrets: two_secrets(),
        on_violation,
        intercept_hosts: vec!["other.test".into()],
        upstream_cas: if trust_upstream { vec![ca.pem()] } else { Vec::new() },
        host_roots: false,
        ..InterceptConfig::default()
    })
    .unwrap();
    World {
        interception,
        echo,
        pins: Arc::new(Pins::default()),
    }
}

/// A guest TLS connection for `sni` through interception (the guest trusts our CA).
async fn guest_tls(
    world: &World,
    sni: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::io::DuplexStream>> {
    let (guest, ours) = tokio::io::duplex(64 * 1024);
    let upstream = TcpStream::connect(world.echo.addr).await.unwrap();
    let target = Intercepted {
        sni: sni.to_string(),
        dst: DST,
        interception: world.interception.clone(),
        pins: world.pins.clone(),
    };
    tokio::spawn(terminate(ours, upstream, target));
    let config = client_config(&[world.interception.ca_pem()], alpn).unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    TlsConnector::from(config).connect(name, guest).await
}

/// One request over a fresh intercepted connection: (status, body, negotiated h2).
async fn send(world: &World, sni: &str, h2: bool, request: http::Request<Full<Bytes>>) -> (u16, String, bool) {
    let alpn: &[&[u8]] = if h2 { &[b"h2", b"http/1.1"] } else { &[b"http/1.1"] };
    let tls = guest_tls(world, sni, alpn).await.unwrap();
    let negotiated = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let response = if negotiated {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    };
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), negotiated)
}

fn get(authority: &str, h2: bool, headers: &[(&str, String)]) -> http::Request<Full<Bytes>> {
    let mut builder = if h2 {
        http::Request::builder().uri(format!("https://{authority}/v1/echo?x=1"))
    } else {
        http::Request::builder().uri("/v1/echo?x=1").header("host", authority)
    };
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

fn pin(world: &World, name: &str) {
    world.pins.pin(IpAddr::V4(*DST.ip()), &[name.to_string()], 300);
}

#[tokio::test]
async fn a_header_placeholder_becomes_the_value_upstream_and_comes_back_scrubbed() {
    let world = world(ViolationAction::BlockAndLog, true).await;
    pin(&world, "api.test");
    for h2 in [false, true] {
        let headers = [
            ("x-api-key", PH_API.to_string()),
            ("authorization", format!("Bearer {PH_API}")),
        ];
        let (status, body, negotiated) = send(&world, "api.test", h2, get("api.test", h2, &headers)).await;
        assert_eq!((status, negotiated), (200, h2), "{body}");
        assert!(body.contains(&format!("x-api-key: {PH_API}")), "scrubbed echo: {body}");
        assert!(!body.contains(REAL_API), "{body}");
        assert!(
            body.contains(if h2 { "HTTP/2.0 GET" } else { "HTTP/1.1 GET" }),
            "{body}"
        );
    }
    let seen = String::from_utf8(world.echo.seen()).unwrap();
    assert_eq!(seen.matches(&format!("x-api-key: {REAL_API}")).count(), 2, "{seen}");
    assert!(seen.contains(&format!("authorization: Bearer {REAL_API}")));
    assert!(!seen.contains(PH_API));
    assert!(seen.contains("accept-encoding: identity"));
    assert_eq!(world.interception.violations(), 0);
}

#[tokio::test]
async fn basic_auth_query_and_body_are_substituted_where_injection_says() {
    let world = world(ViolationAction::BlockAndLog, true).await;
    pin(&world, "x.corp.test");
    let basic = STANDARD.encode(format!("me:{PH_CORP}"));
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("/submit?token={PH_CORP}"))
        .header("host", "x.corp.test")
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{{\"token\":\"{PH_CORP}\"}}"))))
        .unwrap();
    let (status, body, _) = send(&world, "x.corp.test", false, request).await;
    assert_eq!(status, 200, "{body}");
    let seen = String::from_utf8(world.echo.seen()).unwrap();
    let expected = STANDARD.encode(format!("me:{REAL_CORP}"));
    assert!(seen.contains(&format!("authorization: Basic {expected}")), "{seen}");
    assert!(seen.contains(&format!("/submit?token={REAL_CORP}")), "{seen}");
    assert!(seen.contains(&format!("{{\"token\":\"{REAL_CORP}\"}}")), "{seen}");
    assert!(!seen.contains(PH_CORP));
    // The guest reads placeholders back, never the value.
    assert!(!body.contains(REAL_CORP) && body.contains(PH_CORP), "{body}");
}

#[tokio::test]
async fn placeholders_towards_the_wrong_host_are_refused_and_never_forwarded() {
    let world = world(ViolationAction::BlockAndTerminate, true).await;
    pin(&world, "api.test");
    pin(&world, "other.test");
    let header = [("x-api-key", PH_API.to_string())];
    // other.test is intercepted but not allowed for API_KEY.
    let (status, body, _) = send(&world, "other.test", false, get("other.test", false, &header)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("API_KEY") && body.contains("other.test") && !body.contains(REAL_API),
        "{body}"
    );
    // Host differs from the SNI.
    let (status, _, _) = send(&world, "api.test", false, get("other.test", false, &header)).await;
    assert_eq!(status, 403);
    // The same over HTTP/2, with :authority differing from the SNI.
    let (status, _, _) = send(&world, "api.test", true, get("other.test", true, &header)).await;
    assert_eq!(status, 403);
    assert_eq!(world.interception.violations(), 3);
    tokio::time::timeout(std::time::Duration::from_secs(1), world.interception.terminated())
        .await
        .expect("terminated fired");
    let seen = String::from_utf8(world.echo.seen()).unwrap();
    assert!(!seen.contains(PH_API) && !seen.contains(REAL_API), "{seen}");
}

#[tokio::test]
async fn a_spoofed_sni_towards_an_address_not_pinned_to_it_gets_no_value() {
    let world = world(ViolationAction::Block, true).await;
    // The destination is pinned to another name only: the SNI says api.test, DNS did not.
    pin(&world, "other.test");
    let header = [("x-api-key", PH_API.to_string())];
    let (status, _, _) = send(&world, "api.test", false, get("api.test", false, &header)).await;
    assert_eq!(status, 403);
    assert_eq!(world.interception.violations(), 1);
    // Without placeholders the request goes through untouched.
    let (status, body, _) = send(&world, "api.test", false, get("api.test", false, &[])).await;
    assert_eq!(status, 200, "{body}");
    assert!(!String::from_utf8(world.echo.seen()).unwrap().contains(REAL_API));
}

#[tokio::test]
async fn an_upstream_not_trusted_fails_the_guests_handshake() {
    let world = world(ViolationAction::BlockAndLog, false).await;
    pin(&world, "api.test");
    let error = guest_tls(&world, "api.test", &[b"http/1.1"]).await.unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("alert") || error.kind() == std::io::ErrorKind::InvalidData,
        "{error}"
    );
    assert!(world.echo.seen().is_empty());
}

#[tokio::test]
async fn a_placeholder_in_a_streamed_body_towards_the_wrong_host_is_refused() {
    let world = world(ViolationAction::BlockAndLog, true).await;
    pin(&world, "api.test");
    pin(&world, "other.test");
    for (sni, h2) in [("other.test", false), ("api.test", true)] {
        let uri = if h2 {
            format!("https://{sni}/upload")
        } else {
            "/upload".to_string()
        };
        let request = http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("host", sni)
            .body(Full::new(Bytes::from(format!("data={PH_CORP}&more"))))
            .unwrap();
        let (status, body, _) = send(&world, sni, h2, request).await;
        assert_eq!(status, 403, "{sni}: {body}");
        assert!(body.contains("CORP"), "{body}");
    }
    assert_eq!(world.interception.violations(), 2);
    assert!(!String::from_utf8(world.echo.seen()).unwrap().contains(PH_CORP));
}
