//! microsandbox: run untrusted code in hardware-isolated microVMs with container ergonomics.
//!
//! ```no_run
//! use microsandbox::Sandbox;
//!
//! # async fn demo() -> microsandbox::MicrosandboxResult<()> {
//! let sb = Sandbox::builder("worker")
//!     .image("python")
//!     .memory(1024)
//!     .patch(|p| p.text("/app/hello.py", "print('hello')", None, false))
//!     .create()
//!     .await?;
//! let out = sb.exec("python3", ["/app/hello.py"]).await?;
//! assert_eq!(out.stdout_text(), "hello\n");
//! sb.stop().await?;
//! # Ok(()) }
//! ```
//!
//! Each sandbox is a VM with its own kernel, run by a supervisor process of its own (the
//! `msb` binary, found as `$MSB_BIN`, `$MSB_HOME/bin/msb` or on the `PATH`); a [`Sandbox`]
//! is a connection to that supervisor. State lives under `$MSB_HOME` (default
//! `~/.microsandbox`); [`Microsandbox::at`] picks another place.

mod attach;
mod builder;
pub mod config;
mod doctor;
mod env;
mod error;
mod error_kind;
mod exec;
mod fork;
mod fs;
mod fs_copy;
mod host_fs;
mod host_fs_copy;
pub mod image;
mod images;
mod info;
mod lifecycle;
mod logs;
pub mod registry;
mod sandbox;
mod secrets;
pub mod size;
mod snapshot_archive;
mod snapshot_spec;
mod snapshots;
mod terminal;
mod volumes;

pub use attach::DETACHED;
pub use builder::{PatchBuilder, PullingCreate, SandboxBuilder};
pub use doctor::{host_report, HostCheck};
pub use error::MicrosandboxError;
pub use error_kind::ErrorKind;
pub use exec::{ExecHandle, ExecOutput, ExecSink, ExecStatus};
pub use fs::{FsEntry, FsEvent, FsEventKind, FsFailure, FsKind, FsReadStream, FsWatcher, FsWriteSink, SandboxFs};
pub use fs_copy::{CopyOptions, CopyReport};
pub use host_fs::HostFs;
pub use images::{Image, ImageInfo, Images};
pub use info::{SandboxInfo, SandboxMetrics};
pub use logs::{LogReader, LogSource};
pub use msb_boot::command::{ExecOptions, Stdin};
pub use msb_boot::console::numbered as console_log_of_boot;
pub use msb_boot::{BootError, BootPlan, HostConfig};
pub use msb_protocol::client::{ClientError, ExecEvent};
pub use msb_protocol::FsErrorKind;
pub use msb_protocol::{NetworkCounters, SpawnErrorKind, SpawnFailure, WindowSize};
pub use msb_store::SandboxState;
pub use msb_types::{
    normalize_domain, Action, Cidr, Destination, Direction, DnsSpec, Group, InterceptCa, NetPolicy, NetworkSpec,
    PortRange, Protocol, PublishedPort, Rule, SecretInjection, SecretSpec, TlsSpec, Transport, ViolationAction,
    DEFAULT_DNS_QUERY_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, DEFAULT_PUBLISH_IP,
};
pub use msb_types::{
    parse_env, validate_name, DiskImageFormat, Field, ImageRecord, NameError, Patch, Paths, Platform, Resources,
    RootSpec, SandboxSpec, SpecError, DEFAULT_CPUS, DEFAULT_MEMORY_MIB, DEFAULT_UPPER_SIZE_MIB,
};
pub use msb_types::{parse_size_mib, DetachKeys, DetachKeysError, Mount, Rlimit, RlimitResource};
pub use msb_vmm::AccelSetting;
pub use sandbox::{Microsandbox, PlannedBoot, Sandbox};
pub use secrets::SecretBuilder;
pub use snapshot_spec::SavedDisk;
pub use snapshots::{SnapshotInfo, Snapshots};
pub use terminal::terminal_size;
pub use volumes::{Volume, VolumeBuilder, Volumes};

/// Result with [`MicrosandboxError`].
pub type MicrosandboxResult<T> = Result<T, MicrosandboxError>;

/// A fresh sandbox name, `msb-` and eight hex digits.
pub fn generate_name() -> MicrosandboxResult<String> {
    Ok(format!("msb-{}", random_hex(4)?))
}

/// `bytes` bytes from the kernel's random source, in lowercase hex (tokens, names).
pub fn random_hex(bytes: usize) -> MicrosandboxResult<String> {
    let mut buf = vec![0u8; bytes];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(MicrosandboxError::io("opening /dev/urandom"))?,
        &mut buf,
    )
    .map_err(MicrosandboxError::io("reading /dev/urandom"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod send_tests {
    //! The SDK's futures must be `Send`: callers spawn them on multi-threaded runtimes.
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn the_main_futures_are_send() {
        let msb = Microsandbox::at("/nonexistent");
        assert_send(&msb.builder("x").rootfs("/r").create());
        assert_send(&msb.builder("x").image("i").create_detached());
        assert_send(&msb.start("x"));
        assert_send(&msb.stop("x", std::time::Duration::ZERO));
        assert_send(&msb.remove("x", true));
        assert_send(&msb.list());
        assert_send(&msb.images().pull("x", |_| {}));
    }
}
