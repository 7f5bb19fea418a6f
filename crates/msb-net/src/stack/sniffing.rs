//! A flow whose verdict depends on the name in its first bytes: the handshake is completed
//! locally and the guest's first bytes are collected (bounded in size and time) until the
//! name can be read, or it is clear there is none.

use super::relay::guest_finished;
use crate::sni::{sniff, Sniffed, MAX_SNIFF_BYTES};
use smoltcp::socket::tcp::{self, State};
use std::time::{Duration, Instant};

/// Silence after which a flow counts as nameless (a server-speaks-first protocol).
const IDLE: Duration = Duration::from_secs(1);
/// The longest a guest may trickle its first bytes.
const LIMIT: Duration = Duration::from_secs(10);

/// First bytes collected so far.
#[derive(Debug)]
pub(crate) struct Sniff {
    buf: Vec<u8>,
    accepted: Instant,
    last_byte: Instant,
}

impl Sniff {
    pub(crate) fn new(now: Instant) -> Sniff {
        Sniff {
            buf: Vec::new(),
            accepted: now,
            last_byte: now,
        }
    }

    /// Reads what the guest sent; the name once known (`Some(None)`: there is none).
    pub(crate) fn step(&mut self, sock: &mut tcp::Socket<'_>, now: Instant) -> Option<Option<String>> {
        while self.buf.len() < MAX_SNIFF_BYTES && sock.can_recv() {
            let room = MAX_SNIFF_BYTES - self.buf.len();
            let buf = &mut self.buf;
            let taken = sock.recv(|bytes| {
                let n = bytes.len().min(room);
                buf.extend_from_slice(&bytes[..n]);
                (n, n)
            });
            match taken {
                Ok(0) | Err(_) => break,
                Ok(_) => self.last_byte = now,
            }
        }
        match sniff(&self.buf) {
            Sniffed::Name(name) => Some(Some(name)),
            Sniffed::NoName => Some(None),
            Sniffed::NeedMore => {
                let state = sock.state();
                let ended = (guest_finished(state) || state == State::Closed) && !sock.can_recv();
                let full = self.buf.len() >= MAX_SNIFF_BYTES;
                let silent = now >= self.last_byte + IDLE || now >= self.accepted + LIMIT;
                (ended || full || silent).then_some(None)
            }
        }
    }

    /// The bytes collected, to be written upstream first.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}
