//! `msb-boot`: from what a user asked for to a running VM, in two visible steps.
//!
//! * [`plan`] turns a [`SandboxSpec`](msb_types::SandboxSpec), the on-disk layout and the
//!   host's settings ([`HostConfig`]) into a [`BootPlan`]: every device, share, disk, kernel
//!   argument and guest setting, as one serde value that can be shown (`msb inspect
//!   --boot-plan`), stored, and passed whole to the process that boots it.
//! * [`BootedVm::boot`] executes a plan through any [`msb_vmm::Vmm`] and completes the
//!   agent handshake.
//!
//! Beside them: [`prepare`] makes a new sandbox's root ready once, at create time (patches
//! baked into the upper image or written into the directory root), and [`command`] merges a
//! process request with the sandbox's settings and its image's defaults.

mod boot;
pub mod command;
pub mod console;
mod diskimage;
mod error;
pub mod fork;
mod host;
mod network;
mod plan;
mod root;
pub mod saved;
pub mod template;

pub use boot::{BootedVm, MonitorLink, Shutdown};
pub use error::{BootError, BootResult};
pub use host::{find_program, HostConfig};
pub use network::NetworkPlan;
pub use plan::{disk_format, plan, plan_with, BootPlan, FileLink, ResolvedRoot, SAVED_FILE};
pub use root::{prepare, UPPER_FILE};
