//! The engine driven directly, with a made-up clock and no sockets: what frames and requests
//! each guest frame produces.

use super::*;
use crate::stack::harness::frames::{self, Received};
use crate::stack::{ConnectError, Upstream};
use msb_types::NetPolicy;
use smoltcp::wire::{Ipv4Address, TcpSeqNumber};
use std::net::Ipv4Addr;

fn engine(policy: NetPolicy) -> (Engine, Instant) {
    let now = Instant::now();
    (crate::stack::harness::bare_engine(policy, now), now)
}

/// A TCP SYN frame from the guest's `port` to `dst`.
fn syn(cfg: &StackConfig, port: u16, dst: SocketAddrV4) -> Vec<u8> {
    segment(cfg, port, dst, TcpControl::Syn, 1000, None, &[])
}

/// A TCP segment from the guest's `port` to `dst`, advertising a window of 64240 << 7.
fn segment(
    cfg: &StackConfig,
    port: u16,
    dst: SocketAddrV4,
    control: TcpControl,
    seq: i32,
    ack: Option<TcpSeqNumber>,
    payload: &[u8],
) -> Vec<u8> {
    let syn = control == TcpControl::Syn;
    let repr = TcpRepr {
        src_port: port,
        dst_port: dst.port(),
        control,
        seq_number: TcpSeqNumber(seq),
        ack_number: ack,
        window_len: 64240,
        window_scale: syn.then_some(7),
        max_seg_size: syn.then_some(1460),
        sack_permitted: syn,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    };
    frames::tcp(cfg, *dst.ip(), &repr)
}

/// A segment to the guest: (seq, ack, window field, window scale option).
fn parse_segment(frame: &[u8]) -> Option<(TcpSeqNumber, Option<TcpSeqNumber>, u16, Option<u8>)> {
    let (repr, _) = frames::tcp_segment(frame)?;
    Some((repr.seq_number, repr.ack_number, repr.window_len, repr.window_scale))
}

/// The TCP flags of a frame to the guest: (syn, ack, rst).
fn tcp_flags(frame: &[u8]) -> Option<(bool, bool, bool)> {
    let (repr, _) = frames::tcp_segment(frame)?;
    Some((
        repr.control == TcpControl::Syn,
        repr.ack_number.is_some(),
        repr.control == TcpControl::Rst,
    ))
}

#[test]
fn the_gateway_answers_a_ping() {
    let (mut engine, now) = engine(NetPolicy::none());
    let cfg = StackConfig::default();
    engine.guest_frame(&frames::ping(&cfg, cfg.gateway_ip, 5, 6, b"data"), now);
    engine.poll(now);
    let out = frames::take_output(&mut engine);
    let expected = Received::EchoReply {
        src: cfg.gateway_ip,
        ident: 5,
        seq: 6,
        data: b"data".to_vec(),
    };
    assert_eq!(out.iter().map(|f| frames::parse(f)).collect::<Vec<_>>(), vec![expected]);
}

/// Everything to the gateway (the host's services) allowed, nothing else.
fn host_open() -> NetPolicy {
    NetPolicy {
        rules: vec![msb_types::Rule {
            action: msb_types::Action::Allow,
            direction: msb_types::Direction::Egress,
            destination: msb_types::Destination::Group(msb_types::Group::Host),
            protocols: Vec::new(),
            ports: Vec::new(),
        }],
        ..NetPolicy::none()
    }
}

#[test]
fn a_denied_syn_is_reset_at_once_and_no_request_is_made() {
    let (mut engine, now) = engine(NetPolicy::none());
    let cfg = StackConfig::default();
    let dst = SocketAddrV4::new(Ipv4Address::new(203, 0, 113, 10), 80);
    engine.guest_frame(&syn(&cfg, 40000, dst), now);
    engine.poll(now);
    let out = frames::take_output(&mut engine);
    assert_eq!(
        out.iter().filter_map(|f| tcp_flags(f)).collect::<Vec<_>>(),
        vec![(false, true, true)]
    );
    assert!(engine.take_requests().is_empty());
    assert_eq!(engine.flows_open(), 0);
}

#[test]
fn an_allowed_syn_is_held_until_the_upstream_answers() {
    let (mut engine, now) = engine(host_open());
    let cfg = StackConfig::default();
    let dst = SocketAddrV4::new(cfg.gateway_ip, 8080);
    let frame = syn(&cfg, 40001, dst);
    engine.guest_frame(&frame, now);
    engine.guest_frame(&frame, now);
    engine.poll(now);
    assert!(
        frames::take_output(&mut engine).is_empty(),
        "nothing before the upstream answers"
    );
    let requests = engine.take_requests();
    let [Request::Connect {
        flow,
        upstream: Upstream::Tcp(addr),
        ..
    }] = requests.as_slice()
    else {
        panic!("one connect for a SYN sent twice: {requests:?}");
    };
    assert_eq!(*addr, SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)));
    engine.event(Event::Connected(*flow), now);
    engine.poll(now);
    let out = frames::take_output(&mut engine);
    assert_eq!(
        out.iter().filter_map(|f| tcp_flags(f)).collect::<Vec<_>>(),
        vec![(true, true, false)]
    );
    assert_eq!(engine.flows_open(), 1);
}

#[test]
fn a_refused_upstream_resets_and_an_unreachable_one_gets_icmp() {
    let (mut engine, now) = engine(host_open());
    let cfg = StackConfig::default();
    for (port, error) in [(40002, ConnectError::Refused), (40003, ConnectError::Unreachable)] {
        engine.guest_frame(&syn(&cfg, port, SocketAddrV4::new(cfg.gateway_ip, 9)), now);
        engine.poll(now);
        let Some(Request::Connect { flow, .. }) = engine.take_requests().pop() else {
            panic!("no connect")
        };
        engine.event(Event::ConnectFailed(flow, error), now);
        engine.poll(now);
    }
    let out = frames::take_output(&mut engine);
    assert_eq!(out.len(), 2);
    assert_eq!(tcp_flags(&out[0]), Some((false, true, true)));
    assert_eq!(
        frames::parse(&out[1]),
        Received::Unreachable {
            src: cfg.gateway_ip,
            code: 1
        }
    );
    assert_eq!(engine.flows_open(), 0);
}

/// A hostile guest that sends past the window the stack advertised: the excess is not taken,
/// nothing panics (smoltcp 0.12 took bytes up to its buffer's capacity, past the offered
/// edge, and then panicked working out the next window), and the stack never acknowledges
/// past the edge it offered.
#[test]
fn bytes_past_the_advertised_window_are_refused_without_a_panic() {
    let (mut engine, mut now) = engine(host_open());
    let cfg = StackConfig::default();
    let (port, dst) = (40010, SocketAddrV4::new(cfg.gateway_ip, 8080));
    engine.guest_frame(&syn(&cfg, port, dst), now);
    engine.poll(now);
    let Some(Request::Connect { flow, io: _io, .. }) = engine.take_requests().pop() else {
        panic!("no connect")
    };
    engine.event(Event::Connected(flow), now);
    engine.poll(now);
    let out = frames::take_output(&mut engine);
    let Some((isn, Some(_), window, Some(scale))) = out.first().and_then(|f| parse_segment(f)) else {
        panic!("no SYN-ACK with a window scale: {out:?}")
    };
    let ack = Some(isn + 1);
    // A SYN's window is never scaled.
    let (mut next, mut acked, mut edge) = (1001, 1001, 1001 + window as i32);
    let send = |engine: &mut Engine, next: &mut i32, len: usize, now: Instant| {
        let payload = vec![7u8; len];
        engine.guest_frame(&segment(&cfg, port, dst, TcpControl::Psh, *next, ack, &payload), now);
        *next += len as i32;
    };
    let observe = |engine: &mut Engine, acked: &mut i32, edge: &mut i32| {
        for (_, ack, window, _) in frames::take_output(engine).iter().filter_map(|f| parse_segment(f)) {
            let ack = ack.expect("an ACK").0;
            assert!(ack <= *edge, "acknowledged {ack}, past the offered edge {edge}");
            *acked = (*acked).max(ack);
            *edge = ack + ((window as i32) << scale);
        }
    };
    // An honest sender first, until the window is nearly shut (the host side never reads,
    // so the buffer fills); each pause lets the delayed ACK go.
    while edge - next >= 1460 {
        send(&mut engine, &mut next, 1399, now);
        now += Duration::from_millis(50);
        engine.poll(now);
        observe(&mut engine, &mut acked, &mut edge);
    }
    assert_eq!(acked, next, "every byte so far acknowledged");
    // Then one segment past the edge, polled before its delayed ACK is due.
    let past = (edge - next) as usize + 7;
    send(&mut engine, &mut next, past, now);
    engine.poll(now);
    observe(&mut engine, &mut acked, &mut edge);
    now += Duration::from_millis(50);
    engine.poll(now);
    observe(&mut engine, &mut acked, &mut edge);
    assert!(acked < next, "the bytes past the edge were not taken");
    assert_eq!(engine.flows_open(), 1);
}
