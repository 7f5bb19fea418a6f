//! Helpers for the agent's host-side tests.
//!
//! The agent runs as root (PID 1) and always sets the child's groups, gid and uid, which
//! needs CAP_SETGID/CAP_SETUID: tests that start a process skip without root, with a
//! message, unless `MSB_REQUIRE_ROOT=1` makes that a failure. Children are waited for by
//! pid, never with `waitpid(-1)` as the agent's reaper does, so tests running side by side
//! in this process cannot collect each other's children.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_protocol::{ExecRequest, ExitStatus};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Whether this process may start children the way the agent does; panics when that is
/// required but impossible.
pub fn can_spawn() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("MSB_REQUIRE_ROOT").as_deref() != Ok("1"),
        "MSB_REQUIRE_ROOT=1 but not running as root: the agent cannot switch users"
    );
    eprintln!("skipping: the agent switches users, which needs root (MSB_REQUIRE_ROOT=1 turns this into a failure)");
    false
}

/// An exec request for `argv`, with no environment, directory, user, terminal or limits;
/// its stdin is a pipe the test feeds.
pub fn request(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        stdin: msb_protocol::StdinMode::Pipe,
        ..ExecRequest::new(argv.iter().copied())
    }
}

/// Waits (blocking) for child `pid` to end and reports how it did.
pub fn wait(pid: i32) -> ExitStatus {
    loop {
        match waitpid(Pid::from_raw(pid), None).unwrap() {
            WaitStatus::Exited(_, code) => return ExitStatus::Code(code),
            WaitStatus::Signaled(_, sig, _) => return ExitStatus::Signal(sig as i32),
            _ => {}
        }
    }
}
