//! The engine's end of a relayed TCP flow: bytes between its smoltcp socket and the task
//! that owns the host socket, with backpressure both ways.
//!
//! Guest → host: the engine reads the socket only when the bounded channel to the task has
//! room, so a slow host leaves bytes in smoltcp and its shrinking window throttles the guest.
//! Host → guest: the task reads the host only with a credit; a chunk returns its credit once
//! smoltcp has taken all of it, so at most `CREDITS` chunks wait per flow.

use super::messages::{HostEnd, HostMsg};
use smoltcp::socket::tcp::{self, State};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{self, error::TrySendError, Permit};
use tokio::sync::Semaphore;

/// Largest chunk moved in one message either way.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Messages queued towards the host per flow.
const TO_HOST_DEPTH: usize = 4;
/// Chunks from the host a flow may have waiting for smoltcp.
const CREDITS: usize = 4;

/// The engine's half of a flow's channels and where each direction stands.
#[derive(Debug)]
pub(crate) struct GuestEnd {
    to_host: mpsc::Sender<HostMsg>,
    credits: Arc<Semaphore>,
    wants_room: Arc<AtomicBool>,
    from_host: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already given to smoltcp.
    head: usize,
    host_eof: bool,
    host_reset: bool,
    guest_fin: bool,
    fin_to_host: bool,
    fin_to_guest: bool,
}

impl GuestEnd {
    /// A new flow's channels: the engine keeps the first, the relay task gets the second.
    pub(crate) fn pair() -> (GuestEnd, HostEnd) {
        let (to_host, from_guest) = mpsc::channel(TO_HOST_DEPTH);
        let credits = Arc::new(Semaphore::new(CREDITS));
        let wants_room = Arc::new(AtomicBool::new(false));
        let host = HostEnd {
            from_guest,
            credits: credits.clone(),
            wants_room: wants_room.clone(),
        };
        let guest = GuestEnd {
            to_host,
            credits,
            wants_room,
            from_host: VecDeque::with_capacity(CREDITS),
            head: 0,
            host_eof: false,
            host_reset: false,
            guest_fin: false,
            fin_to_host: false,
            fin_to_guest: false,
        };
        (guest, host)
    }

    /// A chunk from the host; more than the credits allow means the host side is broken.
    pub(crate) fn host_data(&mut self, chunk: Vec<u8>) {
        if self.from_host.len() >= CREDITS {
            self.host_reset = true;
            return;
        }
        self.from_host.push_back(chunk);
    }

    pub(crate) fn host_eof(&mut self) {
        self.host_eof = true;
    }

    pub(crate) fn host_reset(&mut self) {
        self.host_reset = true;
    }

    /// Moves what can move in both directions.
    pub(crate) fn pump(&mut self, sock: &mut tcp::Socket<'_>) {
        if self.host_reset {
            if sock.state() != State::Closed {
                sock.abort();
            }
            return;
        }
        if guest_finished(sock.state()) {
            self.guest_fin = true;
        }
        self.guest_to_host(sock);
        self.host_to_guest(sock);
    }

    fn guest_to_host(&mut self, sock: &mut tcp::Socket<'_>) {
        while !self.fin_to_host {
            let data = sock.can_recv();
            if !data && !self.guest_fin {
                return;
            }
            let Some(permit) = self.reserve() else { return };
            if !data {
                permit.send(HostMsg::Fin);
                self.fin_to_host = true;
                return;
            }
            match sock.recv(|buf| {
                let n = buf.len().min(CHUNK);
                (n, buf[..n].to_vec())
            }) {
                Ok(chunk) => permit.send(HostMsg::Data(chunk)),
                Err(_) => return,
            }
        }
    }

    /// Room for one message to the host, or none (then the task will report `Drained`).
    fn reserve(&self) -> Option<Permit<'_, HostMsg>> {
        match self.to_host.try_reserve() {
            Ok(permit) => Some(permit),
            Err(TrySendError::Full(())) => {
                self.wants_room.store(true, Ordering::SeqCst);
                // The task may have taken a message between the two calls and seen no flag.
                self.to_host.try_reserve().ok()
            }
            Err(TrySendError::Closed(())) => None,
        }
    }

    fn host_to_guest(&mut self, sock: &mut tcp::Socket<'_>) {
        while let Some(front) = self.from_host.front() {
            let Some(rest) = front.get(self.head..) else { break };
            let n = sock.send_slice(rest).unwrap_or(0);
            self.head += n;
            if n < rest.len() {
                break;
            }
            self.from_host.pop_front();
            self.head = 0;
            self.credits.add_permits(1);
        }
        let can_close = matches!(sock.state(), State::Established | State::CloseWait);
        if self.host_eof && self.from_host.is_empty() && !self.fin_to_guest && can_close {
            sock.close();
            self.fin_to_guest = true;
        }
    }

    /// Whether nothing more can pass, the socket being in `state` (and any RST sent): the
    /// guest side is gone and what it sent is delivered, or cannot be.
    pub(crate) fn finished(&self, state: State) -> bool {
        let delivered = self.fin_to_host || self.host_reset || self.to_host.is_closed();
        match state {
            State::Listen => true,
            State::Closed => delivered || !self.guest_fin,
            State::TimeWait => delivered,
            _ => false,
        }
    }
}

impl Drop for GuestEnd {
    /// The engine forgot the flow: the task stops reading the host.
    fn drop(&mut self) {
        self.credits.close();
    }
}

/// Whether the guest has sent its FIN (smoltcp states after one was received).
pub(crate) fn guest_finished(state: State) -> bool {
    matches!(
        state,
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
    )
}
