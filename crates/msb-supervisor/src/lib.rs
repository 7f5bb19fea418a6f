//! `msb-supervisor`: one process per running sandbox.
//!
//! It boots the sandbox's VM from the [`BootPlan`](msb_boot::BootPlan) its starter hands it
//! ([`SupervisorInput`] on stdin) and owns the VM for its whole run: it keeps the agent
//! channel and relays exec sessions between its clients (on a unix socket in the sandbox's
//! directory) and the agent, records every state change in the store, keeps the exec log,
//! enforces the idle timeout and the maximum duration, and on exit records why the VM
//! stopped, and runs the guest's network stack (policy, DNS, published ports). It runs detached from the terminal that started it; a lock file held for its
//! lifetime tells everyone else whether it is alive, so a supervisor killed with `kill -9`
//! leaves nothing stale behind.

mod daemon;
mod ending;
mod error;
mod execlog;
mod hostproc;
mod input;
pub mod landlock;
mod lock;
mod network;
mod ready;
mod relay;
mod run;
mod secrets;
mod snapshot;
pub mod syscalls;
mod watchdog;

pub use daemon::detach;
pub use error::{Error, Result};
pub use input::SupervisorInput;
pub use lock::SandboxLock;
pub use ready::ReadyLine;
pub use run::supervise;

/// Name of the supervisor's socket in the sandbox's runtime directory.
pub const CONTROL_SOCKET: &str = "control.sock";
