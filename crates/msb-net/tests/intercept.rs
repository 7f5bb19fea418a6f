//! Secret substitution and TLS interception through the whole stack: a smoltcp guest on the
//! frame harness, `stack::run` with interception, HTTPS echo servers on 127.0.0.1 signed by
//! a test CA. The guest reaches them through the gateway, whose name the stack's DNS pins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use msb_net::intercept::{Injection, InterceptConfig, Interception, SecretRule, ViolationAction};
use msb_net::stack::harness::tls::{
    client_config, connect, resolve_gateway_name, tls_exchange, EchoServer, Exchange, TestCa, GATEWAY_NAME,
};
use msb_net::stack::harness::{host_rule, only, Harness, HarnessOptions};
use msb_types::Protocol;
use smoltcp::socket::tcp::State;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

const PH: &str = "msb_sec_5f0c9a1e2b3d4c5e6f708192a3b4c5d6";
const REAL: &str = "sk-real-value-do-not-leak-42";
const WAIT: Duration = Duration::from_secs(15);

/// The test's servers live on their own runtime, beside the harness's.
struct World {
    harness: Harness,
    interception: Arc<Interception>,
    upstream_ca: TestCa,
    /// The echo server interception applies to (its name is the gateway's).
    echo: EchoServer,
    /// An echo server under a name nothing intercepts.
    direct: EchoServer,
    _servers: tokio::runtime::Runtime,
}

fn world(plain_port: u16) -> World {
    let servers = tokio::runtime::Runtime::new().unwrap();
    let upstream_ca = TestCa::new().unwrap();
    let echo = servers
        .block_on(EchoServer::start(upstream_ca.server_config(&[GATEWAY_NAME]).unwrap()))
        .unwrap();
    let direct = servers
        .block_on(EchoServer::start(upstream_ca.server_config(&["direct.test"]).unwrap()))
        .unwrap();
    let interception = Interception::new(InterceptConfig {
        secrets: vec![SecretRule {
            name: "OPENAI_API_KEY".into(),
            value: Zeroizing::new(REAL.into()),
            placeholder: PH.into(),
            hosts: vec![GATEWAY_NAME.into()],
            inject: Injection::default(),
        }],
        on_violation: ViolationAction::BlockAndLog,
        ports: vec![echo.addr.port(), direct.addr.port()],
        upstream_cas: vec![upstream_ca.pem()],
        host_roots: false,
        ..InterceptConfig::default()
    })
    .unwrap();
    let mut rules: Vec<_> = [echo.addr.port(), direct.addr.port(), plain_port]
        .into_iter()
        .map(|port| host_rule(Protocol::Tcp, port))
        .collect();
    rules.extend([443, 444].map(|port| host_rule(Protocol::Udp, port)));
    let mut harness = Harness::start(HarnessOptions {
        policy: only(rules),
        intercept: Some(interception.clone()),
        ..HarnessOptions::default()
    })
    .unwrap();
    assert!(
        resolve_gateway_name(&mut harness).unwrap(),
        "the gateway's name resolves"
    );
    World {
        harness,
        interception,
        upstream_ca,
        echo,
        direct,
        _servers: servers,
    }
}

/// An HTTP/1.1 request over TLS from the guest to `port` with `sni`, trusting `roots`, sent
/// in 7-byte pieces so headers arrive split.
fn https(world: &mut World, port: u16, sni: &str, roots: &[String], host: &str, extra: &str) -> Exchange {
    let h = &mut world.harness;
    let dst = h.gateway(port);
    let flow = connect(&mut h.guest, dst, WAIT).unwrap().expect("handshake");
    let request = format!("GET /echo HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    let config = client_config(roots, &[b"http/1.1"]).unwrap();
    let exchange = tls_exchange(&mut h.guest, flow, config, sni, request.as_bytes(), 7, WAIT).unwrap();
    h.guest.tcp(flow).close();
    exchange
}

fn reply_text(exchange: Exchange) -> String {
    match exchange {
        Exchange::Reply(bytes) | Exchange::Cut(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Exchange::HandshakeFailed(error) => panic!("handshake failed: {error}"),
    }
}

#[test]
fn through_the_stack_the_placeholder_is_substituted_only_for_its_host() {
    let mut world = world(1);
    let port = world.echo.addr.port();
    let ca = vec![world.interception.ca_pem()];
    let host = format!("{GATEWAY_NAME}:{port}");
    let header = format!("X-Api-Key: {PH}\r\n");
    let reply = reply_text(https(&mut world, port, GATEWAY_NAME, &ca, &host, &header));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // The server saw the value; the guest reads the placeholder back (scrubbed).
    assert!(
        reply.contains(&format!("x-api-key: {PH}")) && !reply.contains(REAL),
        "{reply}"
    );
    let seen = String::from_utf8(world.echo.seen()).unwrap();
    assert!(
        seen.contains(&format!("x-api-key: {REAL}")) && !seen.contains(PH),
        "{seen}"
    );

    // Same flow shape, Host naming another host: refused, never forwarded.
    let reply = reply_text(https(&mut world, port, GATEWAY_NAME, &ca, "elsewhere.test", &header));
    assert!(
        reply.starts_with("HTTP/1.1 403") && reply.contains("OPENAI_API_KEY"),
        "{reply}"
    );
    assert_eq!(world.interception.violations(), 1);
    assert_eq!(String::from_utf8(world.echo.seen()).unwrap().matches(REAL).count(), 1);
    assert!(common::flows_settle(&mut world.harness, 0, WAIT));
}

#[test]
fn tls_to_a_host_not_intercepted_passes_untouched() {
    let mut world = world(1);
    let port = world.direct.addr.port();
    // The guest trusts only the upstream's own CA: it would reject any certificate of ours.
    let roots = vec![world.upstream_ca.pem()];
    let reply = reply_text(https(&mut world, port, "direct.test", &roots, "direct.test", ""));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(String::from_utf8(world.direct.seen()).unwrap().contains("GET /echo"));
    // And the guest refuses our CA's certificate for an intercepted name it does not trust.
    let echo_port = world.echo.addr.port();
    let exchange = https(&mut world, echo_port, GATEWAY_NAME, &roots, GATEWAY_NAME, "");
    assert!(matches!(exchange, Exchange::HandshakeFailed(_)), "{exchange:?}");
}

#[test]
fn a_placeholder_in_plaintext_resets_the_flow_before_it_leaves() {
    let (listener, port) = common::listener();
    let mut world = world(port);
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = received.clone();
    world.harness.runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = [0; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    let h = &mut world.harness;
    let dst = h.gateway(port);
    let flow = connect(&mut h.guest, dst, WAIT).unwrap().expect("handshake");
    // The placeholder is split across two segments, sent a moment apart.
    let request = format!("POST /x HTTP/1.1\r\nHost: example.test\r\nAuthorization: Bearer {PH}\r\n\r\n");
    let (first, second) = request.as_bytes().split_at(request.find(PH).unwrap() + PH.len() / 2);
    h.guest.tcp(flow).send_slice(first).unwrap();
    let sent = h.guest.run_until(WAIT, |g| g.tcp(flow).send_queue() == 0).unwrap();
    assert!(sent);
    let arrived = h
        .guest
        .run_until(WAIT, |_| received.lock().unwrap().len() == first.len())
        .unwrap();
    assert!(arrived, "the bytes before the placeholder's end go through");
    h.guest.tcp(flow).send_slice(second).unwrap();
    let reset = h
        .guest
        .run_until(WAIT, |g| matches!(g.tcp(flow).state(), State::Closed))
        .unwrap();
    assert!(reset, "state {}", h.guest.tcp(flow).state());
    assert!(h.guest.seen().iter().any(|s| s.rst), "the guest is reset");
    std::thread::sleep(Duration::from_millis(200));
    let got = received.lock().unwrap().clone();
    assert_eq!(got, first, "nothing after the chunk completing the placeholder");
    assert_eq!(world.interception.violations(), 1);
}

#[test]
fn quic_to_an_intercepted_host_is_dropped_so_clients_fall_back_to_tcp() {
    let mut world = world(1);
    let h = &mut world.harness;
    // The gateway is pinned to its name, a secret's host: UDP to its port 443 goes nowhere.
    let quic = h.gateway(443);
    h.guest.send_udp(40443, quic, b"quic initial").unwrap();
    h.guest.run_until(Duration::from_millis(300), |_| false).unwrap();
    assert_eq!(h.counters().flows_open, 0, "no UDP flow was opened");
    // Another UDP port of the same address is relayed as before.
    let other = h.gateway(444);
    h.guest.send_udp(40444, other, b"not quic").unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while h.counters().flows_open == 0 && std::time::Instant::now() < deadline {
        h.guest.step(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(h.counters().flows_open, 1, "a UDP flow was opened");
}
