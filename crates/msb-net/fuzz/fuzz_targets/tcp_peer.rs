#![no_main]
//! A hostile TCP peer on a connected flow: the guest completes a real handshake (so it
//! gets past smoltcp's sequence checks), then sends segments whose sequence and
//! acknowledgement numbers are the ones it should use shifted by fuzzed amounts, with
//! fuzzed flags, windows and lengths, while the host side reads, sends, closes or resets
//! at fuzzed moments and the clock jumps. Nothing may panic (smoltcp 0.12 did, on bytes
//! past the offered window), and the output stays well framed.
//!
//! Input: the window scale the guest offers, then operations of 8 bytes:
//! `[op][flags][seq shift: i16 le][ack shift: i16 le][window: u8][length: u8]`. One
//! operation is an honest burst (in order, acknowledging what it saw, a poll after each
//! segment), so that one input can fill the stack's 256 KiB buffer and reach the window's
//! edge.

use libfuzzer_sys::fuzz_target;
use msb_net::stack::harness::{self, frames};
use msb_net::stack::{Engine, Event, HostEnd, Request, StackConfig};
use msb_types::Protocol;
use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const GUEST_PORT: u16 = 40000;
const HOST_PORT: u16 = 8080;
/// Bytes in each segment of a burst (an odd size, so windows rarely end on a multiple of
/// the window scale).
const BURST_SEGMENT: usize = 1401;

/// `n` moved by `by`, wrapping as sequence numbers do.
fn shift(n: TcpSeqNumber, by: i16) -> TcpSeqNumber {
    TcpSeqNumber(n.0.wrapping_add(i32::from(by)))
}

/// The guest's side of the flow: what it sends next and what it has seen.
struct Peer {
    next: TcpSeqNumber,
    /// The stack's next sequence number, as far as its segments told.
    theirs: Option<TcpSeqNumber>,
    scale: Option<u8>,
}

impl Peer {
    fn frame(
        &self,
        cfg: &StackConfig,
        control: TcpControl,
        seq: TcpSeqNumber,
        ack: Option<TcpSeqNumber>,
        window: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let syn = control == TcpControl::Syn;
        let repr = TcpRepr {
            src_port: GUEST_PORT,
            dst_port: HOST_PORT,
            control,
            seq_number: seq,
            ack_number: ack,
            window_len: window,
            window_scale: if syn { self.scale } else { None },
            max_seg_size: syn.then_some(1460),
            sack_permitted: syn,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        frames::tcp(cfg, cfg.gateway_ip, &repr)
    }

    /// Reads the engine's output (whole frames: `take_output` checks) and follows the
    /// stack's sequence.
    fn read(&mut self, engine: &mut Engine) {
        for frame in frames::take_output(engine) {
            let Some((repr, payload)) = frames::tcp_segment(&frame) else {
                continue;
            };
            let flags = usize::from(matches!(repr.control, TcpControl::Syn | TcpControl::Fin));
            let end = repr.seq_number + payload.len() + flags;
            if self.theirs.is_none_or(|theirs| end > theirs) {
                self.theirs = Some(end);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&scale, ops)) = data.split_first() else {
        return;
    };
    let cfg = StackConfig::default();
    let mut now = Instant::now();
    let policy = harness::only(vec![harness::host_rule(Protocol::Tcp, HOST_PORT)]);
    let mut engine = harness::bare_engine(policy, now);
    let mut peer = Peer {
        next: TcpSeqNumber(1000),
        theirs: None,
        scale: (scale < 15).then_some(scale),
    };
    engine.guest_frame(&peer.frame(&cfg, TcpControl::Syn, peer.next, None, 64240, &[]), now);
    engine.poll(now);
    let Some(Request::Connect { flow, io, .. }) = engine.take_requests().pop() else {
        panic!("an allowed SYN makes a connect request")
    };
    let mut io: HostEnd = io;
    engine.event(Event::Connected(flow), now);
    engine.poll(now);
    peer.read(&mut engine);
    peer.next = peer.next + 1;
    for op in ops.chunks_exact(8) {
        let flags = op[1];
        let seq_shift = i16::from_le_bytes([op[2], op[3]]);
        let ack_shift = i16::from_le_bytes([op[4], op[5]]);
        let window = u16::from(op[6]) << 8 | u16::from(op[6]);
        let len = usize::from(op[7]) * 8;
        match op[0] % 7 {
            0 | 1 => {
                let control = match flags % 8 {
                    0 => TcpControl::Fin,
                    1 => TcpControl::Rst,
                    2 => TcpControl::Syn,
                    3 | 4 => TcpControl::Psh,
                    _ => TcpControl::None,
                };
                let seq = shift(peer.next, seq_shift);
                let ack = peer
                    .theirs
                    .filter(|_| flags & 0x80 == 0)
                    .map(|theirs| shift(theirs, ack_shift));
                let payload = vec![flags; len];
                engine.guest_frame(&peer.frame(&cfg, control, seq, ack, window, &payload), now);
                if seq_shift == 0 {
                    peer.next = peer.next + len + usize::from(matches!(control, TcpControl::Syn | TcpControl::Fin));
                }
            }
            2 => now += Duration::from_millis(u64::from(flags) * 8),
            6 => {
                for _ in 0..=flags {
                    let payload = [b'b'; BURST_SEGMENT];
                    let frame = peer.frame(&cfg, TcpControl::Psh, peer.next, peer.theirs, window, &payload);
                    engine.guest_frame(&frame, now);
                    peer.next = peer.next + BURST_SEGMENT;
                    engine.poll(now);
                    peer.read(&mut engine);
                }
            }
            3 => {
                while io.from_guest.try_recv().is_ok() {}
                io.wants_room.store(false, Ordering::SeqCst);
                engine.event(Event::Drained(flow), now);
            }
            4 => {
                if let Ok(permit) = io.credits.try_acquire() {
                    permit.forget();
                    engine.event(Event::HostData(flow, vec![b'h'; len.max(1)]), now);
                }
            }
            _ => match flags % 2 {
                0 => engine.event(Event::HostEof(flow), now),
                _ => engine.event(Event::HostReset(flow), now),
            },
        }
        engine.poll(now);
        peer.read(&mut engine);
        assert!(engine.flows_open() <= 1);
    }
});
