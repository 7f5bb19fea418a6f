//! `msb-supervisor`: one process per running sandbox.
//!
//! It boots the sandbox's VM and owns it for its whole run: it keeps the agent channel and
//! relays exec sessions between its clients (on a unix socket in the sandbox's directory)
//! and the agent, records every state change in the store, keeps the exec log, enforces the
//! idle timeout and the maximum duration, and on exit records why the VM stopped. It runs
//! detached from the terminal that started it; a lock file held for its lifetime tells
//! everyone else whether it is alive, so a supervisor killed with `kill -9` leaves nothing
//! stale behind.
//!
//! The same crate prepares a new sandbox's root ([`prepare`]) and boots VMs ([`BootedVm`]).

pub mod command;
mod daemon;
mod error;
mod execlog;
mod hostproc;
mod lock;
mod ready;
mod relay;
mod root;
mod run;
mod vm;

pub use daemon::detach;
pub use error::{Error, Result};
pub use lock::SandboxLock;
pub use ready::ReadyLine;
pub use root::prepare;
pub use run::supervise;
pub use vm::BootedVm;

/// Name of the supervisor's socket in the sandbox's runtime directory.
pub const CONTROL_SOCKET: &str = "control.sock";
