//! A flow whose verdict depends on the name in its first bytes: the handshake is completed
//! locally and the guest's first bytes are collected (bounded in size and time) until the
//! name can be read, or it is clear there is none.

use super::relay::guest_finished;
use crate::sni::{sniff, Sniffed, MAX_SNIFF_BYTES};
use smoltcp::socket::tcp::{self, State};
use std::time::{Duration, Instant};

/// Silence after which a flow counts as nameless (a server-speaks-first protocol).
const IDLE: Duration = Duration::from_secs(1);
/// Ports whose protocols have the client speak first (HTTP, TLS): there, a slow client is
/// waited for up to [`LIMIT`], since it may build its TLS context only once connected (a
/// Python client loading a CA bundle under emulation takes over a second).
const CLIENT_FIRST: [u16; 4] = [80, 443, 8080, 8443];
/// The longest a guest may trickle its first bytes.
const LIMIT: Duration = Duration::from_secs(10);

/// First bytes collected so far.
#[derive(Debug)]
pub(crate) struct Sniff {
    buf: Vec<u8>,
    /// How long a silence ends the wait.
    idle: Duration,
    accepted: Instant,
    last_byte: Instant,
}

impl Sniff {
    /// Sniffing a flow to `port`; `client_first` when its client is known to speak first
    /// (interception's ports, besides [`CLIENT_FIRST`]).
    pub(crate) fn new(now: Instant, port: u16, client_first: bool) -> Sniff {
        let patient = client_first || CLIENT_FIRST.contains(&port);
        Sniff {
            buf: Vec::new(),
            idle: if patient { LIMIT } else { IDLE },
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
                (ended || full || self.waited_out(now)).then_some(None)
            }
        }
    }

    /// Whether the guest has been silent (or slow) for too long by `now`.
    fn waited_out(&self, now: Instant) -> bool {
        now >= self.last_byte + self.idle || now >= self.accepted + LIMIT
    }

    /// The bytes collected, to be written upstream first.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_first_port_waits_for_a_slow_client() {
        let now = Instant::now();
        let later = |secs| now + Duration::from_secs(secs);
        // SSH: the server speaks first, so a second of silence means no name is coming.
        assert!(Sniff::new(now, 22, false).waited_out(later(2)));
        // HTTPS, or any port interception watches: a client may connect, then spend
        // seconds building its TLS context before its ClientHello.
        for sniff in [Sniff::new(now, 443, false), Sniff::new(now, 9443, true)] {
            assert!(!sniff.waited_out(later(5)));
            assert!(sniff.waited_out(later(10)));
        }
    }
}
