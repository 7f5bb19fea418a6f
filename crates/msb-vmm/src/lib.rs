//! Virtual machine monitors behind one trait. Today: QEMU `-M microvm` with direct kernel
//! boot, on KVM where the host offers it and TCG otherwise. Nothing outside this crate knows
//! QEMU's command line.

pub mod accel;
mod child;
mod qemu;
mod virtiofsd;

pub use accel::Accel;
pub use child::VmProcess;
pub use qemu::Qemu;

use std::path::PathBuf;

/// Exactly what the VMM is told to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// Uncompressed kernel (ELF with a PVH note).
    pub kernel: PathBuf,
    /// Initramfs with the agent as `/init`.
    pub initramfs: PathBuf,
    /// Virtual CPUs.
    pub cpus: u8,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Host directories shared with virtio-fs, as (tag, directory).
    pub shares: Vec<(String, PathBuf)>,
    /// Disk images attached with virtio-blk, in order.
    pub disks: Vec<Disk>,
    /// Directory for the VM's sockets (kept short: unix socket paths are limited to 107 bytes).
    pub runtime_dir: PathBuf,
    /// File receiving the guest console (kernel and agent messages).
    pub console_log: PathBuf,
    /// Hardware acceleration to use.
    pub accel: Accel,
}

/// A disk image attached to the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The image file.
    pub path: PathBuf,
    /// How the file holds the disk.
    pub format: DiskFormat,
    /// Attach read-only.
    pub readonly: bool,
    /// Serial number the guest sees in `/sys/block/vdX/serial`, to find the disk by.
    pub serial: String,
}

/// Formats of disk image files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// The disk's bytes as they are.
    Raw,
    /// QEMU copy-on-write v2.
    Qcow2,
    /// VMware VMDK (here mostly a descriptor joining flat files into one disk).
    Vmdk,
}

impl DiskFormat {
    /// The format's name on QEMU's command line.
    pub fn qemu_name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vmdk => "vmdk",
        }
    }
}

/// Errors starting or running a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// A required file is missing.
    #[error("{what} not found at {path}: {hint}")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// Where it was expected.
        path: PathBuf,
        /// How to get it.
        hint: &'static str,
    },
    /// A helper program is not installed.
    #[error("{program} is not installed: {hint}")]
    NotInstalled {
        /// The program.
        program: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// A process failed to start or died early.
    #[error("{what} failed: {detail}")]
    Failed {
        /// What failed.
        what: String,
        /// Details, usually the tail of its log.
        detail: String,
    },
    /// More devices than the machine has slots for.
    #[error("the VM needs {needed} virtio devices but the machine has {available} slots")]
    TooManyDevices {
        /// Devices asked for.
        needed: usize,
        /// Slots available.
        available: usize,
    },
    /// A socket path does not fit in `sockaddr_un`.
    #[error("socket path {0} is too long for a unix socket (108 bytes); use a shorter MSB_HOME")]
    SocketPathTooLong(PathBuf),
    /// An OS call failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl VmmError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmmError {
        let context = context.into();
        move |source| VmmError::Io { context, source }
    }
}

/// A virtual machine monitor: turns a [`VmSpec`] into a running VM.
pub trait Vmm {
    /// Starts the VM (and any helper processes) and returns once it is launched.
    fn launch(&self, spec: &VmSpec) -> impl std::future::Future<Output = Result<VmProcess, VmmError>> + Send;
}
