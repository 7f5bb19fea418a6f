//! A host-requested stop: the stop signal to every process, up to the grace period for
//! them to exit while their output still flows to the host, SIGKILL for the rest, then the
//! filesystems synced and frozen clean, the host told, and the VM powered off.

use crate::power;
use crate::server::Outbound;
use crate::session::Sessions;
use msb_protocol::{Frame, Message, ShutdownRequest, CONTROL_SESSION};
use nix::sys::signal::Signal;
use std::fs::File;
use std::time::Duration;
use tokio::time::Instant;

/// How long sessions may take to send their last output after SIGKILL.
const DRAIN: Duration = Duration::from_secs(2);
/// How often the stop checks for remaining processes.
const POLL: Duration = Duration::from_millis(20);

/// Stops everything as `request` says and powers off; never returns.
pub async fn run(request: ShutdownRequest, sessions: Sessions, writable: Vec<File>, out: Outbound) {
    let deadline = Instant::now() + Duration::from_millis(u64::from(request.grace_ms));
    let signal = Signal::try_from(request.signal).unwrap_or(Signal::SIGTERM);
    power::signal_all(signal);
    while Instant::now() < deadline && (sessions.active() > 0 || power::processes_left() > 0) {
        tokio::time::sleep(POLL).await;
    }
    let killed = power::processes_left();
    if killed > 0 {
        power::signal_all(Signal::SIGKILL);
    }
    let drained = Instant::now() + DRAIN;
    while sessions.active() > 0 && Instant::now() < drained {
        tokio::time::sleep(POLL).await;
    }
    power::sync_and_freeze(&writable);
    let done = Message::ShutdownComplete { killed };
    let _ = out.frames.send(Frame::new(CONTROL_SESSION, done)).await;
    out.flush().await;
    power::power_off();
}
