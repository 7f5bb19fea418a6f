//! Guest UDP and DNS through the frame harness. DNS questions are ones the gateway answers
//! itself (its own name, blocked names), so no query leaves the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use msb_net::stack::harness::frames::{self, Received};
use msb_net::stack::harness::{host_rule, only, Harness, HarnessOptions};
use msb_types::{DnsSpec, NetPolicy, Protocol};
use smoltcp::socket::tcp::State;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn start(policy: NetPolicy) -> Harness {
    let dns = DnsSpec {
        blocked_domains: vec!["blocked.test".into()],
        // Nothing listens there: a question that had to go upstream would fail, not leave.
        nameservers: vec![format!("127.0.0.1:{}", common::free_port())],
        ..DnsSpec::default()
    };
    Harness::start(HarnessOptions {
        policy,
        dns,
        ..HarnessOptions::default()
    })
    .unwrap()
}

/// A DNS query for `name`, type A.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// (id, rcode, answer count) of a DNS reply.
fn header(reply: &[u8]) -> (u16, u8, u16) {
    (
        u16::from_be_bytes([reply[0], reply[1]]),
        reply[3] & 0x0f,
        u16::from_be_bytes([reply[6], reply[7]]),
    )
}

fn udp_reply(h: &mut Harness, from: SocketAddrV4) -> Option<(SocketAddrV4, Vec<u8>)> {
    let frame = h
        .guest
        .wait_frame(
            WAIT,
            |f| matches!(frames::parse(f), Received::Udp { src, .. } if src == from),
        )
        .unwrap()?;
    match frames::parse(&frame) {
        Received::Udp { dst, payload, .. } => Some((dst, payload)),
        _ => None,
    }
}

#[test]
fn dns_over_udp_is_answered_by_the_gateway_from_the_address_asked() {
    let mut h = start(NetPolicy::none());
    let gateway = h.gateway(53);
    h.guest
        .send_udp(5353, gateway, &query(0x1234, "host.microsandbox.internal"))
        .unwrap();
    let (to, reply) = udp_reply(&mut h, gateway).expect("an answer");
    assert_eq!(to, SocketAddrV4::new(h.config.guest_ip, 5353));
    assert_eq!(header(&reply), (0x1234, 0, 1));
    assert_eq!(reply[reply.len() - 4..], h.config.gateway_ip.octets());

    // Any resolver address is answered the same way, locally; blocked names are NXDOMAIN.
    let elsewhere = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 53), 53);
    h.guest
        .send_udp(5354, elsewhere, &query(0x4321, "blocked.test"))
        .unwrap();
    let (_, reply) = udp_reply(&mut h, elsewhere).expect("an answer from the address asked");
    assert_eq!(header(&reply), (0x4321, 3, 0));
}

#[test]
fn dns_over_tcp_is_answered_by_the_gateway() {
    let mut h = start(NetPolicy::none());
    let dst = h.gateway(53);
    let flow = common::connect(&mut h.guest, dst).expect("DNS over TCP is always accepted");
    let mut framed = Vec::new();
    for (id, name) in [(1u16, "host.microsandbox.internal"), (2, "blocked.test")] {
        let q = query(id, name);
        framed.extend_from_slice(&(q.len() as u16).to_be_bytes());
        framed.extend_from_slice(&q);
    }
    h.guest.tcp(flow).send_slice(&framed).unwrap();
    let mut got = Vec::new();
    let mut replies = Vec::new();
    h.guest
        .run_until(WAIT, |g| {
            let sock = g.tcp(flow);
            while sock.can_recv() {
                let _ = sock.recv(|b| {
                    got.extend_from_slice(b);
                    (b.len(), ())
                });
            }
            while got.len() >= 2 && got.len() >= 2 + usize::from(u16::from_be_bytes([got[0], got[1]])) {
                let len = usize::from(u16::from_be_bytes([got[0], got[1]]));
                replies.push(got[2..2 + len].to_vec());
                got.drain(..2 + len);
            }
            replies.len() == 2
        })
        .unwrap();
    let headers: Vec<_> = replies.iter().map(|r| header(r)).collect();
    assert_eq!(headers, vec![(1, 0, 1), (2, 3, 0)]);
    h.guest.tcp(flow).close();
    let closed = h
        .guest
        .run_until(WAIT, |g| matches!(g.tcp(flow).state(), State::TimeWait | State::Closed))
        .unwrap();
    assert!(closed);
    assert!(common::flows_settle(&mut h, 0, WAIT));
}

#[test]
fn udp_to_an_allowed_host_port_is_relayed_both_ways() {
    let (sock, port) = common::udp_socket();
    let mut h = start(only(vec![host_rule(Protocol::Udp, port)]));
    common::serve_udp_echo(&h, sock);
    let dst = h.gateway(port);
    for size in [1usize, 1000, 1472] {
        let payload: Vec<u8> = (0..size).map(|b| (b % 256) as u8).collect();
        h.guest.send_udp(6000, dst, &payload).unwrap();
        let (to, back) = udp_reply(&mut h, dst).unwrap_or_else(|| panic!("no echo of {size} bytes"));
        assert_eq!(to.port(), 6000);
        assert_eq!(back, payload);
    }
    assert_eq!(h.counters().flows_open, 1);
}

/// Sends a datagram to `dst` and expects ICMP port unreachable from it.
fn expect_port_unreachable(h: &mut Harness, src_port: u16, dst: SocketAddrV4, payload: &[u8]) {
    h.guest.send_udp(src_port, dst, payload).unwrap();
    let got = h
        .guest
        .wait_frame(WAIT, |f| matches!(frames::parse(f), Received::Unreachable { .. }))
        .unwrap();
    assert_eq!(
        got.map(|f| frames::parse(&f)),
        Some(Received::Unreachable {
            src: *dst.ip(),
            code: 3
        })
    );
}

#[test]
fn denied_udp_and_dns_over_quic_get_port_unreachable() {
    let (sock, port) = common::udp_socket();
    let mut h = start(NetPolicy::none());
    common::serve_udp_echo(&h, sock);
    let dst = h.gateway(port);
    expect_port_unreachable(&mut h, 6001, dst, b"let me out");
    assert_eq!(h.counters().denied_policy, 1);
    let doq = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 853);
    expect_port_unreachable(&mut h, 6002, doq, b"quic");
    assert_eq!(h.counters().flows_open, 0);
}
