//! Virtual machine monitors behind one trait. Today: QEMU `-M microvm` with direct kernel
//! boot, on KVM where the host offers it and TCG otherwise. Nothing outside this crate knows
//! QEMU's command line.

pub mod accel;
mod child;
mod handed;
pub mod landlock;
mod monitor;
pub mod own_ids;
mod qemu;
mod virtiofsd;

pub use accel::{Accel, AccelChoice, AccelSetting};
pub use child::VmProcess;
pub use monitor::Monitor;
pub use qemu::{Qemu, QemuConfig};
pub use virtiofsd::{user_namespaces_for_everyone, FsSandbox};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Exactly what the VMM is told to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    /// Uncompressed kernel (ELF with a PVH note).
    pub kernel: PathBuf,
    /// Initramfs with the agent as `/init`.
    pub initramfs: PathBuf,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Host directories shared with virtio-fs.
    pub shares: Vec<Share>,
    /// Disks attached with virtio-blk, in order.
    pub disks: Vec<Disk>,
    /// Directory for the VM's sockets and generated files (kept short: unix socket paths
    /// are limited to 107 bytes).
    pub runtime_dir: PathBuf,
    /// Hardware acceleration to use.
    pub accel: Accel,
    /// A network device, its frames carried over a socket the launcher hands back
    /// ([`VmProcess::take_network`]).
    #[serde(default)]
    pub net: Option<NetDevice>,
    /// A guest saved by [`Monitor::save`] to go on from instead of booting. Its devices
    /// must be exactly these (their backing files may differ), and it starts paused until
    /// [`Monitor::resume_loaded`].
    #[serde(default)]
    pub resume_from: Option<PathBuf>,
    /// Start with the guest's CPUs stopped until [`Monitor::resume`], so that nothing the
    /// guest does is missed by a monitor not connected yet.
    #[serde(default)]
    pub paused: bool,
    /// What the guest's RAM is.
    #[serde(default)]
    pub memory: GuestMemory,
}

/// What a guest's RAM is. Files are named by a path QEMU can reopen read-write under its
/// own ids: a memfd's `/proc/self/fd/N` (a memfd is open to anyone who holds it, and a
/// sealed one refuses every write through any descriptor, so the copies that map it
/// cannot change what the others see).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestMemory {
    /// Memory of its own: private anonymous pages, or a shareable memfd where virtiofsd
    /// must reach it.
    #[default]
    Own,
    /// This file, mapped shared: all the guest holds lands in it. A fork fills its frozen
    /// memory so.
    Fills(PathBuf),
    /// This file, mapped private: the guest starts from its contents, its writes stay its
    /// own, and pages it never writes are shared with every guest mapping the file (a
    /// fork's copies). A guest resumed over it loads only its devices' state, saved with
    /// the memory left out (see [`Monitor::save_devices`]).
    CopyOf(PathBuf),
}

impl GuestMemory {
    /// The file behind the guest's RAM, if a file is.
    pub fn file(&self) -> Option<&Path> {
        match self {
            GuestMemory::Own => None,
            GuestMemory::Fills(file) | GuestMemory::CopyOf(file) => Some(file),
        }
    }
}

/// A virtio-net device whose host side is a stream socket (4-byte big-endian length, then
/// one Ethernet frame, each way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetDevice {
    /// The guest's MAC address.
    pub mac: [u8; 6],
}

/// A host directory shared with the guest over virtio-fs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// The mount tag the guest names it by.
    pub tag: String,
    /// The host directory.
    pub dir: PathBuf,
    /// The file server refuses every write (the guest cannot lift this by remounting).
    pub readonly: bool,
    /// How long the guest may trust what it cached.
    pub cache: ShareCache,
}

impl Share {
    /// A writable share that only this guest changes (the root): cached as long as the
    /// guest likes.
    pub fn private(tag: impl Into<String>, dir: impl Into<PathBuf>) -> Share {
        Share {
            tag: tag.into(),
            dir: dir.into(),
            readonly: false,
            cache: ShareCache::Always,
        }
    }
}

/// virtiofsd's caching policy for a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareCache {
    /// Data and metadata cached across opens: fastest, but changes made by the host (or
    /// another sandbox) meanwhile may be seen late.
    Always,
    /// Nothing cached, data or attributes: every read and stat asks the host. For
    /// directories the host or other sandboxes change too: with `auto`, a file another
    /// writer grew was still read at its old, cached size.
    Never,
}

/// A disk attached to the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Where its bytes come from.
    pub backing: DiskBacking,
    /// Attach read-only.
    pub readonly: bool,
    /// Serial number the guest sees in `/sys/block/vdX/serial`, to find the disk by.
    pub serial: String,
}

/// Where a disk's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskBacking {
    /// One image file.
    File {
        /// The image file.
        path: PathBuf,
        /// How the file holds the disk.
        format: DiskFormat,
    },
    /// Read-only files, each a LUN (0, 1, … in order) of a virtio-scsi controller of
    /// their own: any number of them take one virtio slot, and the VM can still be saved
    /// (QEMU refuses to save a VM whose disk joins files into one, as VMDK does).
    Luns(Vec<DiskPart>),
}

/// One file of a [`DiskBacking::Luns`] disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskPart {
    /// The file.
    pub path: PathBuf,
    /// Its length in bytes (what the guest sees as the LUN's size).
    pub len: u64,
}

/// Formats of disk image files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskFormat {
    /// The disk's bytes as they are.
    Raw,
    /// QEMU copy-on-write v2.
    Qcow2,
    /// VMware VMDK.
    Vmdk,
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
    /// The VM spec cannot be run as it is.
    #[error("{0}")]
    InvalidSpec(String),
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
    /// The exact command line [`Vmm::launch`] runs for `spec`, program first, without
    /// starting anything.
    fn command_line(&self, spec: &VmSpec) -> Result<Vec<String>, VmmError>;

    /// Starts the VM (and any helper processes) and returns once it is launched.
    fn launch(&self, spec: &VmSpec) -> impl std::future::Future<Output = Result<VmProcess, VmmError>> + Send;
}
