//! microsandbox: run untrusted code in hardware-isolated microVMs with container ergonomics.
//!
//! This release boots a VM from a host directory and runs processes in it; named, managed
//! sandboxes and OCI images build on [`vm::BootedVm`].

pub mod command;
mod error;
pub mod image;
pub mod registry;
mod rootfs;
pub mod vm;

pub use error::MicrosandboxError;
pub use msb_protocol::client::{ExecControl, ExecEvent, ExecSession};
pub use msb_protocol::{BootTimings, ExecRequest, ExitStatus, SpawnErrorKind, WindowSize};
pub use msb_types::{
    parse_env, DiskImageFormat, ImageRecord, Patch, Paths, Platform, Resources, RootSpec, SandboxSpec,
    DEFAULT_UPPER_SIZE_MIB,
};

/// Result with [`MicrosandboxError`].
pub type MicrosandboxResult<T> = Result<T, MicrosandboxError>;
