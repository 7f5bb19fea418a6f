//! The link layer and ICMP through the frame harness: ARP, pings, hostile frames.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use msb_net::stack::harness::frames::{self, Received};
use msb_net::stack::harness::{host_rule, only, Harness, HarnessOptions};
use msb_net::stack::MAX_FRAME;
use msb_types::{Action, Cidr, Destination, Direction, NetPolicy, Protocol, Rule};
use std::net::Ipv4Addr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn arp_for_the_gateway_is_answered_and_the_gateway_answers_pings() {
    let mut h = Harness::start(HarnessOptions::default()).unwrap();
    let cfg = h.config.clone();
    h.guest.send_frame(&frames::arp_request(&cfg, cfg.gateway_ip)).unwrap();
    let reply = h
        .guest
        .wait_frame(WAIT, |f| matches!(frames::parse(f), Received::ArpReply { .. }))
        .unwrap();
    assert_eq!(
        reply.map(|f| frames::parse(&f)),
        Some(Received::ArpReply {
            ip: cfg.gateway_ip,
            mac: cfg.gateway_mac
        })
    );
    // Other addresses are not ours to answer for.
    h.guest
        .send_frame(&frames::arp_request(&cfg, Ipv4Addr::new(100, 96, 0, 3)))
        .unwrap();
    let stray = h.guest.wait_frame(Duration::from_millis(300), |f| {
        matches!(frames::parse(f), Received::ArpReply { .. })
    });
    assert_eq!(stray.unwrap(), None);

    h.guest.send_ping(cfg.gateway_ip, 7, 1, b"hello gateway").unwrap();
    let pong = h
        .guest
        .wait_frame(WAIT, |f| matches!(frames::parse(f), Received::EchoReply { .. }))
        .unwrap();
    let expected = Received::EchoReply {
        src: cfg.gateway_ip,
        ident: 7,
        seq: 1,
        data: b"hello gateway".to_vec(),
    };
    assert_eq!(pong.map(|f| frames::parse(&f)), Some(expected));
}

#[test]
fn a_denied_ping_is_answered_administratively_prohibited() {
    let mut h = Harness::start(HarnessOptions {
        policy: NetPolicy::none(),
        ..HarnessOptions::default()
    })
    .unwrap();
    h.guest.send_ping(Ipv4Addr::new(203, 0, 113, 10), 1, 1, b"x").unwrap();
    let got = h
        .guest
        .wait_frame(WAIT, |f| matches!(frames::parse(f), Received::Unreachable { .. }))
        .unwrap();
    let gateway = h.config.gateway_ip;
    assert_eq!(
        got.map(|f| frames::parse(&f)),
        Some(Received::Unreachable { src: gateway, code: 13 })
    );
    assert_eq!(h.counters().denied_policy, 1);
}

#[test]
fn an_allowed_ping_to_the_host_loopback_is_answered_or_reported_unreachable() {
    let loopback = Rule {
        action: Action::Allow,
        direction: Direction::Egress,
        destination: Destination::Cidr(Cidr {
            addr: Ipv4Addr::LOCALHOST.into(),
            prefix: 32,
        }),
        protocols: vec![Protocol::Icmpv4],
        ports: Vec::new(),
    };
    let mut h = Harness::start(HarnessOptions {
        policy: only(vec![loopback]),
        ..HarnessOptions::default()
    })
    .unwrap();
    h.guest.send_ping(Ipv4Addr::LOCALHOST, 9, 3, b"via host").unwrap();
    let got = h
        .guest
        .wait_frame(Duration::from_secs(8), |f| {
            matches!(
                frames::parse(f),
                Received::EchoReply { .. } | Received::Unreachable { .. }
            )
        })
        .unwrap()
        .map(|f| frames::parse(&f));
    // Which one depends on the host's net.ipv4.ping_group_range; never silence.
    match got {
        Some(Received::EchoReply { src, ident, seq, data }) => {
            assert_eq!(
                (src, ident, seq, data.as_slice()),
                (Ipv4Addr::LOCALHOST, 9, 3, &b"via host"[..])
            );
        }
        Some(Received::Unreachable { code, .. }) => assert_eq!(code, 1),
        other => panic!("no answer to an allowed ping: {other:?}"),
    }
}

#[test]
fn hostile_frames_are_dropped_and_the_stack_keeps_serving() {
    let (listener, port) = common::listener();
    let policy = only(vec![host_rule(Protocol::Tcp, port)]);
    let mut h = Harness::start(HarnessOptions {
        policy,
        ..HarnessOptions::default()
    })
    .unwrap();
    common::serve_echo(&h, listener);
    let cfg = h.config.clone();
    let good_ping = frames::ping(&cfg, cfg.gateway_ip, 1, 1, b"ok");
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 5],
        good_ping[..20].to_vec(),
        good_ping[..good_ping.len() - 3].to_vec(),
        vec![0xab; 1500],
    ];
    // A valid ping with a broken IPv4 checksum, one from a spoofed source, one over IPv6.
    let mut bad_sum = good_ping.clone();
    bad_sum[14 + 10] ^= 0xff;
    let mut spoofed = good_ping.clone();
    spoofed[14 + 12..14 + 16].copy_from_slice(&[10, 0, 0, 9]);
    let mut ipv6 = good_ping.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    junk.extend([bad_sum, spoofed, ipv6]);
    // Garbage with every length a frame header can claim.
    let mut seed = 0x2545_f491_u32;
    for len in [14, 34, 42, 54, 60, 64, 300, 1514] {
        let mut frame = good_ping.clone();
        frame.resize(len, 0);
        for byte in &mut frame[14..] {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *byte = seed as u8;
        }
        junk.push(frame);
    }
    for frame in &junk {
        h.guest.send_frame(frame).unwrap();
    }
    // An oversized record is skipped whole, however long it is.
    let huge = MAX_FRAME + 1000;
    let mut record = (huge as u32).to_be_bytes().to_vec();
    record.extend(vec![0x42; huge]);
    h.guest.send_raw(&record).unwrap();
    h.guest.send_raw(&0u32.to_be_bytes()).unwrap();

    h.guest.send_ping(cfg.gateway_ip, 2, 2, b"still there?").unwrap();
    let pong = h
        .guest
        .wait_frame(WAIT, |f| {
            matches!(frames::parse(f), Received::EchoReply { ident: 2, .. })
        })
        .unwrap();
    assert!(pong.is_some(), "the stack stopped answering after hostile frames");
    assert!(h.stack_running());
    assert!(h.counters().frames_dropped >= junk.len() as u64 - 1);

    // And a TCP flow still works.
    let dst = h.gateway(port);
    let flow = common::connect(&mut h.guest, dst).expect("a good flow after hostile frames");
    assert_eq!(common::echo(&mut h.guest, flow, b"alive", WAIT), b"alive");
}
