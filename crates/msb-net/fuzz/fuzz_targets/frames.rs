#![no_main]
//! Arbitrary guest frames, clock jumps and runtime answers (connects, host bytes, resets,
//! DNS and UDP replies) in arbitrary order, against the stack's synchronous engine: nothing
//! panics, the output is always well framed, and the engine's queues stay bounded.
//!
//! Input: a policy selector byte, then operations `[op][len: u16 le][bytes]`. One operation
//! sends a frame with its IPv4 and TCP/UDP/ICMP checksums fixed, so the fuzzer gets past
//! checksum verification into the flow logic.

use libfuzzer_sys::fuzz_target;
use msb_net::dns::Pins;
use msb_net::policy::Policy;
use msb_net::stack::harness::frames;
use msb_net::stack::{ConnectError, Counters, Echo, Engine, Event, FlowId, HostEnd, PingOutcome, Request, StackConfig};
use msb_types::{Action, Destination, Direction, NetPolicy, Rule};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests the fuzzer keeps around to answer later; past this, the oldest are dropped
/// (as a runtime that lost them would).
const KEEP: usize = 64;

fn policy(selector: u8) -> NetPolicy {
    match selector % 4 {
        0 => NetPolicy::none(),
        1 => NetPolicy::allow_all(),
        2 => NetPolicy::public_only(),
        // A domain deny rule first makes TCP flows wait for their name.
        _ => NetPolicy {
            default_egress: Action::Allow,
            default_ingress: Action::Allow,
            rules: vec![Rule {
                action: Action::Deny,
                direction: Direction::Egress,
                destination: Destination::Domain("blocked.test".into()),
                protocols: Vec::new(),
                ports: Vec::new(),
            }],
        },
    }
}

/// The ones' complement sum of `bytes` folded to 16 bits, starting from `sum`.
fn checksum(bytes: &[u8], mut sum: u32) -> u16 {
    for pair in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `frame` with the checksums of an Ethernet/IPv4 frame (and its TCP, UDP or ICMP) made right.
fn fix_checksums(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let Some(ip) = f.get(14..) else { return f };
    let Some(&vihl) = ip.first() else { return f };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ip.len() < ihl.max(20) {
        return f;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).clamp(ihl, ip.len());
    let proto = ip[9];
    let pseudo = [&ip[12..20], &[0, proto], &((total - ihl) as u16).to_be_bytes()].concat();
    f[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum(&f[14..14 + ihl], 0);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    let at = match proto {
        6 => 16,
        17 => 6,
        1 => 2,
        _ => return f,
    };
    let body = 14 + ihl..14 + total;
    if body.len() < at + 2 {
        return f;
    }
    f[body.start + at..body.start + at + 2].copy_from_slice(&[0, 0]);
    let start = if proto == 1 {
        0
    } else {
        u32::from(!checksum(&pseudo, 0))
    };
    let sum = checksum(&f[body.clone()], start);
    f[body.start + at..body.start + at + 2].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The answer to `request` that `choice` and `bytes` pick.
fn answer(request: Request, choice: u8, bytes: &[u8], flows: &mut Vec<(FlowId, HostEnd)>) -> Option<Event> {
    Some(match request {
        Request::Connect { flow, io, .. } => match choice % 3 {
            0 => {
                flows.push((flow, io));
                Event::Connected(flow)
            }
            1 => Event::ConnectFailed(flow, ConnectError::Refused),
            _ => Event::ConnectFailed(flow, ConnectError::Unreachable),
        },
        Request::Dns { guest, server, .. } => Event::DnsAnswer {
            guest,
            server,
            answer: Some(bytes.to_vec()),
        },
        Request::Udp { flow, .. } => match choice % 3 {
            0 => Event::UdpData(flow, bytes.to_vec()),
            1 => Event::UdpRefused(flow),
            _ => Event::UdpClosed(flow),
        },
        Request::Ping { dst, echo, .. } => {
            let outcome = [PingOutcome::Reply, PingOutcome::Unreachable, PingOutcome::Timeout][usize::from(choice % 3)];
            Event::PingDone {
                dst,
                echo: Echo {
                    payload: bytes.to_vec(),
                    ..echo
                },
                outcome,
            }
        }
        Request::PublishedUdp { .. } => return None,
    })
}

/// A host-side event for one of the connected flows; reads what the engine sent it.
fn host_event(choice: u8, bytes: &[u8], flows: &mut [(FlowId, HostEnd)]) -> Option<Event> {
    let count = flows.len();
    let (flow, io) = flows.get_mut(usize::from(choice) % count.max(1))?;
    while io.from_guest.try_recv().is_ok() {}
    let flow = *flow;
    Some(match choice % 5 {
        0 | 1 => match io.credits.try_acquire() {
            Ok(permit) => {
                permit.forget();
                Event::HostData(flow, bytes.to_vec())
            }
            Err(_) => Event::Drained(flow),
        },
        2 => Event::HostEof(flow),
        3 => Event::HostReset(flow),
        _ => Event::Drained(flow),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = StackConfig::default();
    let gateway = IpAddr::V4(cfg.gateway_ip);
    let policy = Arc::new(Policy::new(policy(selector), gateway));
    let mut now = Instant::now();
    let counters = Arc::new(Counters::default());
    let mut engine = Engine::new(cfg, policy, Arc::new(Pins::default()), counters, Vec::new(), None, now);
    let mut pending: Vec<Request> = Vec::new();
    let mut flows: Vec<(FlowId, HostEnd)> = Vec::new();
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let choice = bytes.first().copied().unwrap_or(0);
        match op % 5 {
            0 => engine.guest_frame(bytes, now),
            1 => now += Duration::from_millis(u64::from(choice) * 20),
            2 => {
                if !pending.is_empty() {
                    let request = pending.remove(0);
                    if let Some(event) = answer(request, choice, bytes, &mut flows) {
                        engine.event(event, now);
                    }
                }
            }
            3 => {
                if let Some(event) = host_event(choice, bytes, &mut flows) {
                    engine.event(event, now);
                }
            }
            _ => engine.guest_frame(&fix_checksums(bytes), now),
        }
        engine.poll(now);
        frames::take_output(&mut engine);
        pending.extend(engine.take_requests());
        if pending.len() > KEEP {
            pending.drain(..pending.len() - KEEP);
        }
        assert!(engine.flows_open() <= StackConfig::default().max_connections as usize);
    }
});
