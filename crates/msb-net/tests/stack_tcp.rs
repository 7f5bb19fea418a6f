//! Guest TCP through the frame harness: relayed flows, held and refused handshakes, limits.
//! Every upstream is a 127.0.0.1 server this test starts, reached through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use msb_net::stack::harness::{host_rule, only, Harness, HarnessOptions};
use msb_types::{Action, Destination, Direction, NetPolicy, Protocol, Rule};
use smoltcp::socket::tcp::State;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn start(policy: NetPolicy) -> Harness {
    Harness::start(HarnessOptions {
        policy,
        ..HarnessOptions::default()
    })
    .unwrap()
}

#[test]
fn twenty_mib_echo_through_the_gateway_arrives_byte_identical() {
    let (listener, port) = common::listener();
    let mut h = start(only(vec![host_rule(Protocol::Tcp, port)]));
    common::serve_echo(&h, listener);
    let dst = h.gateway(port);
    let flow = common::connect(&mut h.guest, dst).expect("handshake");
    let data: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let back = common::echo(&mut h.guest, flow, &data, Duration::from_secs(120));
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
    // Half-close: the guest's FIN reaches the server, whose FIN comes back.
    h.guest.tcp(flow).close();
    let closed = h
        .guest
        .run_until(WAIT, |g| matches!(g.tcp(flow).state(), State::TimeWait | State::Closed))
        .unwrap();
    assert!(closed, "state {}", h.guest.tcp(flow).state());
    assert!(common::flows_settle(&mut h, 0, WAIT));
}

#[test]
fn without_a_rule_the_handshake_is_refused_at_once() {
    let (listener, port) = common::listener();
    let mut h = start(NetPolicy::none());
    common::serve_echo(&h, listener);
    let dst = h.gateway(port);
    assert!(common::connect(&mut h.guest, dst).is_none());
    assert!(h.guest.seen().iter().any(|s| s.rst && s.from == dst));
    assert!(
        !h.guest.seen().iter().any(|s| s.syn),
        "a SYN-ACK was sent: {:?}",
        h.guest.seen()
    );
    assert_eq!(h.counters().denied_policy, 1);
    // The loopback, private and metadata groups are not public.
    let mut h = start(NetPolicy::public_only());
    for ip in [
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(192, 168, 1, 1),
        Ipv4Addr::new(169, 254, 169, 254),
    ] {
        assert!(common::connect(&mut h.guest, SocketAddrV4::new(ip, 80)).is_none());
    }
    assert!(!h.guest.seen().iter().any(|s| s.syn));
    assert_eq!(h.counters().denied_policy, 3);
    assert_eq!(h.counters().flows_open, 0);
}

#[test]
fn an_allowed_port_with_nothing_listening_is_reset_without_a_syn_ack() {
    let port = common::free_port();
    let mut h = start(only(vec![host_rule(Protocol::Tcp, port)]));
    let dst = h.gateway(port);
    assert!(common::connect(&mut h.guest, dst).is_none());
    assert!(h.guest.seen().iter().any(|s| s.rst && s.from == dst));
    assert!(!h.guest.seen().iter().any(|s| s.syn));
    assert_eq!(h.counters().upstream_refused, 1);
    assert!(common::flows_settle(&mut h, 0, WAIT));
}

#[test]
fn past_max_connections_new_flows_are_reset() {
    let (listener, port) = common::listener();
    let options = HarnessOptions {
        policy: only(vec![host_rule(Protocol::Tcp, port)]),
        max_connections: 2,
        ..Default::default()
    };
    let mut h = Harness::start(options).unwrap();
    common::serve_echo(&h, listener);
    let dst = h.gateway(port);
    let first = common::connect(&mut h.guest, dst).expect("first");
    let _second = common::connect(&mut h.guest, dst).expect("second");
    assert!(common::connect(&mut h.guest, dst).is_none(), "a third flow got through");
    assert_eq!(h.counters().denied_max_connections, 1);
    // Closing one makes room again.
    h.guest.tcp(first).close();
    assert!(common::flows_settle(&mut h, 1, WAIT));
    assert!(common::connect(&mut h.guest, dst).is_some());
}

#[test]
fn dns_over_tls_is_refused() {
    let mut h = start(NetPolicy::allow_all());
    assert!(common::connect(&mut h.guest, SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 853)).is_none());
    assert!(!h.guest.seen().iter().any(|s| s.syn));
}

/// A deny rule for a domain makes every flow wait for its name; the port's host rule after it.
fn sniffing_policy(port: u16) -> NetPolicy {
    let deny = Rule {
        action: Action::Deny,
        direction: Direction::Egress,
        destination: Destination::Domain("blocked.test".into()),
        protocols: Vec::new(),
        ports: Vec::new(),
    };
    only(vec![deny, host_rule(Protocol::Tcp, port)])
}

#[test]
fn a_flow_naming_a_denied_host_is_reset_after_its_first_bytes() {
    let (listener, port) = common::listener();
    let mut h = start(sniffing_policy(port));
    common::serve_echo(&h, listener);
    let dst = h.gateway(port);
    let flow = common::connect(&mut h.guest, dst).expect("the handshake is completed locally");
    h.guest
        .tcp(flow)
        .send_slice(b"GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n")
        .unwrap();
    let reset = h
        .guest
        .run_until(WAIT, |g| g.tcp(flow).state() == State::Closed)
        .unwrap();
    assert!(reset, "state {}", h.guest.tcp(flow).state());
    assert_eq!(h.counters().denied_policy, 1);

    // Another name goes through, first bytes included.
    let flow = common::connect(&mut h.guest, dst).expect("handshake");
    let request = b"GET / HTTP/1.1\r\nHost: fine.test\r\n\r\n";
    assert_eq!(common::echo(&mut h.guest, flow, request, WAIT), request);
}

#[test]
fn a_server_speaks_first_flow_is_decided_without_a_name() {
    let (listener, port) = common::listener();
    let mut h = start(sniffing_policy(port));
    common::serve_greeter(&h, listener, b"220 hello\r\n");
    let dst = h.gateway(port);
    let flow = common::connect(&mut h.guest, dst).expect("handshake");
    let mut greeting = Vec::new();
    h.guest
        .run_until(WAIT, |g| {
            while let Ok(n) = g.tcp(flow).recv(|b| {
                greeting.extend_from_slice(b);
                (b.len(), b.len())
            }) {
                if n == 0 {
                    break;
                }
            }
            greeting.len() >= 11
        })
        .unwrap();
    assert_eq!(greeting, b"220 hello\r\n");
}

#[test]
fn ten_thousand_connections_leave_no_flow_behind() {
    let (listener, port) = common::listener();
    let mut h = start(only(vec![host_rule(Protocol::Tcp, port)]));
    common::serve_echo(&h, listener);
    let allowed = h.gateway(port);
    let denied = h.gateway(port.wrapping_add(1).max(1));
    let mut opened = 0;
    for round in 0..100 {
        let mut batch = Vec::new();
        for i in 0..100 {
            let dst = if i % 10 == 0 { denied } else { allowed };
            batch.push((dst == allowed, h.guest.connect(dst).unwrap()));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            h.guest.step(Duration::from_millis(2)).unwrap();
            for (_, handle) in &batch {
                let sock = h.guest.tcp(*handle);
                if sock.state() == State::Established {
                    sock.close();
                }
            }
            let done = batch
                .iter()
                .all(|(_, handle)| matches!(h.guest.tcp(*handle).state(), State::Closed | State::TimeWait));
            if done {
                break;
            }
        }
        for (should_open, handle) in batch {
            let state = h.guest.tcp(handle).state();
            assert!(
                matches!(state, State::Closed | State::TimeWait),
                "round {round}: {state}"
            );
            opened += usize::from(should_open && state == State::TimeWait);
            h.guest.remove(handle);
        }
    }
    assert_eq!(opened, 9000);
    assert!(
        common::flows_settle(&mut h, 0, Duration::from_secs(30)),
        "{:?}",
        h.counters()
    );
    // Still answering.
    let flow = common::connect(&mut h.guest, allowed).expect("a flow after 10,000");
    assert_eq!(common::echo(&mut h.guest, flow, b"still here", WAIT), b"still here");
}
