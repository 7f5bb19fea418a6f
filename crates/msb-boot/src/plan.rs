//! The boot plan: everything a sandbox's VM is made of, decided before anything starts.

use crate::root;
use crate::NetworkPlan;
use crate::{BootError, BootResult, HostConfig};
use msb_protocol::{GuestConfig, GuestMount, RootSource};
use msb_types::{normal_guest_path, DiskImageFormat, Field, Mount, Paths, SandboxSpec, SpecError};
use msb_vmm::{AccelChoice, Disk, DiskBacking, DiskFormat, DiskPart, QemuConfig, Share, ShareCache, VmSpec, VmmError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// virtio-fs tag of a directory root.
const ROOT_TAG: &str = "msb-root";
/// virtio-fs tags of host directories mounted besides the root: this and their number.
const MOUNT_TAG_PREFIX: &str = "msb-mount-";
/// Serials of disks mounted besides the root: this and their mount's number.
const MOUNT_DISK_SERIAL_PREFIX: &str = "msb-disk-";
/// Serial of the disk controller whose LUNs are an image's layers (QEMU's, not the guest's).
const LAYERS_SERIAL: &str = "msb-layers";
/// Serial of an image root's writable upper.
pub(crate) const UPPER_SERIAL: &str = "msb-upper";
/// The number of the mount whose disk has serial `serial`, if a mount's disk has it.
pub(crate) fn mount_of_serial(serial: &str) -> Option<usize> {
    serial.strip_prefix(MOUNT_DISK_SERIAL_PREFIX)?.parse().ok()
}

/// The sandbox's saved guest to resume at its next start (see [`BootPlan::saved`]).
pub const SAVED_FILE: &str = "resume.vm";
/// Serial of a disk-image root.
const ROOT_DISK_SERIAL: &str = "msb-root";

/// Exactly how one sandbox boots: the VMM and its programs, the VM (devices, disks, shares,
/// resources), and what the agent sets up in the guest. New devices and guest settings
/// (volumes, network, secrets) are fields here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootPlan {
    /// The VMM's programs.
    pub vmm: QemuConfig,
    /// Why KVM is not used, when it is not.
    pub accel_note: Option<String>,
    /// Where the guest console of this boot is written (earlier boots' logs are rotated).
    pub console_log: PathBuf,
    /// What the VMM runs.
    pub vm: VmSpec,
    /// What the agent sets up before the sandbox is ready.
    pub guest: GuestConfig,
    /// Hard links made before each launch: a single-file mount is shared from a directory
    /// that holds only a link to that file.
    #[serde(default)]
    pub file_links: Vec<FileLink>,
    /// The guest's network, run by the supervisor's stack; `None`: only `lo`.
    #[serde(default)]
    pub network: Option<NetworkPlan>,
    /// Where templates are kept, if this boot may resume or record one (see
    /// [`crate::template`]); `None`: it boots cold.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// The sandbox's own saved guest (made from a snapshot), resumed instead of any boot,
    /// and removed once resumed.
    #[serde(default)]
    pub saved: Option<PathBuf>,
    /// The memory the saved guest's RAM is a private copy of, where it was saved without
    /// (a fork's copy, see [`crate::fork`]): a sealed memfd's `/proc/self/fd` name in the
    /// process that boots.
    #[serde(default)]
    pub saved_memory: Option<PathBuf>,
}

/// A host file linked into a directory of its own (`link`), to share just that file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLink {
    /// The host file.
    pub source: PathBuf,
    /// The hard link to make (its directory is shared).
    pub link: PathBuf,
}

/// The `/tmp` of an image root: a quarter of the guest's RAM, between 1 and 512 MiB.
fn tmp_size_mib(memory_mib: u32) -> u32 {
    (memory_mib / 4).clamp(1, 512)
}

/// A sandbox's root as found on this host: the facts the plan needs that only the
/// filesystem and the store know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedRoot {
    /// A host directory (canonical path).
    Dir(PathBuf),
    /// An image's layer files (bottom first) under the sandbox's upper image.
    Image {
        /// The EROFS layers with their sizes.
        layers: Vec<DiskPart>,
        /// The sandbox's `upper.ext4`.
        upper: PathBuf,
    },
    /// A disk image file (canonical path).
    Disk {
        /// The file.
        path: PathBuf,
        /// How it holds the disk.
        format: DiskImageFormat,
        /// Filesystem type, if given.
        fstype: Option<String>,
    },
}

/// Plans the boot of sandbox `spec` (made ready by [`crate::prepare`]) on this host.
pub fn plan(spec: &SandboxSpec, paths: &Paths, host: &HostConfig) -> BootResult<BootPlan> {
    spec.validate()?;
    let spec = &resolve_mounts(spec, paths);
    check_mount_sources(spec)?;
    let dir = paths.sandbox_dir(&spec.name);
    let root = root::resolve(spec, paths, &dir)?;
    let mut plan = plan_with(spec, &dir, root, host, msb_vmm::accel::detect(host.accel))?;
    let saved = dir.join(SAVED_FILE);
    plan.saved = saved.is_file().then_some(saved);
    plan.template =
        (host.templates && !spec.cold_boot && plan.saved.is_none()).then(|| crate::template::dir(&paths.cache_dir()));
    Ok(plan)
}

/// Plans the boot of `spec`, whose directory is `dir` and whose root was found to be
/// `root`, with accelerator `accel`. Reads nothing: the same inputs give the same plan.
pub fn plan_with(
    spec: &SandboxSpec,
    dir: &Path,
    root: ResolvedRoot,
    host: &HostConfig,
    accel: AccelChoice,
) -> BootResult<BootPlan> {
    let qemu = host.qemu.clone().ok_or(VmmError::NotInstalled {
        program: "qemu-system-x86_64",
        hint: "install it with `apt-get install qemu-system-x86` (or run `cargo xtask setup`), or set MSB_QEMU",
    })?;
    let image_root = matches!(root, ResolvedRoot::Image { .. });
    let (mut shares, mut disks, source) = match root {
        ResolvedRoot::Dir(dir) => (
            vec![Share::private(ROOT_TAG, dir)],
            Vec::new(),
            RootSource::VirtioFs { tag: ROOT_TAG.into() },
        ),
        ResolvedRoot::Image { layers, upper } => {
            if layers.is_empty() {
                return Err(BootError::Incomplete {
                    dir: dir.to_path_buf(),
                    file: "image layers",
                });
            }
            let count = u32::try_from(layers.len()).unwrap_or(u32::MAX);
            let disks = vec![
                Disk {
                    backing: DiskBacking::Luns(layers),
                    readonly: true,
                    serial: LAYERS_SERIAL.into(),
                },
                Disk {
                    backing: DiskBacking::File {
                        path: upper,
                        format: DiskFormat::Raw,
                    },
                    readonly: false,
                    serial: UPPER_SERIAL.into(),
                },
            ];
            let source = RootSource::Overlay {
                layers: count,
                upper: UPPER_SERIAL.into(),
            };
            (Vec::new(), disks, source)
        }
        ResolvedRoot::Disk { path, format, fstype } => {
            let disk = Disk {
                backing: DiskBacking::File {
                    path,
                    format: disk_format(format),
                },
                readonly: false,
                serial: ROOT_DISK_SERIAL.into(),
            };
            let source = RootSource::Disk {
                serial: ROOT_DISK_SERIAL.into(),
                fstype,
            };
            (Vec::new(), vec![disk], source)
        }
    };
    let mut file_links = Vec::new();
    let mut devices = Devices {
        shares: &mut shares,
        disks: &mut disks,
        file_links: &mut file_links,
        staging: dir.join("runtime").join("file-mounts"),
    };
    let mounts = spec
        .mounts
        .iter()
        .enumerate()
        .map(|(i, mount)| guest_mount(i, mount, &mut devices))
        .collect::<BootResult<_>>()?;
    let network = NetworkPlan::of(&spec.network);
    let vm = VmSpec {
        kernel: host.kernel.clone(),
        initramfs: host.initramfs.clone(),
        cpus: spec.resources.cpus,
        memory_mib: spec.resources.memory_mib,
        shares,
        disks,
        runtime_dir: dir.join("runtime"),
        accel: accel.accel,
        net: network.as_ref().map(NetworkPlan::device),
        resume_from: None,
        paused: false,
        memory: Default::default(),
    };
    Ok(BootPlan {
        vmm: QemuConfig {
            binary: qemu,
            virtiofsd: host.virtiofsd.clone(),
        },
        accel_note: accel.reason,
        console_log: dir.join("logs").join("console.log"),
        vm,
        guest: GuestConfig {
            root: source,
            hostname: spec.hostname.clone(),
            scripts: spec.scripts.iter().map(|(n, b)| (n.clone(), b.clone())).collect(),
            tmp_mib: image_root.then(|| tmp_size_mib(spec.resources.memory_mib)),
            write_identity_files: image_root,
            mounts,
            network: network.as_ref().map(NetworkPlan::guest),
            // Set by the supervisor, whose network stack makes the CA at each start.
            tls_ca: None,
        },
        file_links,
        network,
        template: None,
        saved: None,
        saved_memory: None,
    })
}

/// What mounts add to the VM, and where single files are staged.
struct Devices<'a> {
    shares: &'a mut Vec<Share>,
    disks: &'a mut Vec<Disk>,
    file_links: &'a mut Vec<FileLink>,
    staging: PathBuf,
}

/// `spec` with each named volume as what holds it (its directory, or a sized volume's
/// disk), and each bind of a single file as a file mount.
fn resolve_mounts(spec: &SandboxSpec, paths: &Paths) -> SandboxSpec {
    let mut spec = spec.clone();
    for mount in &mut spec.mounts {
        if let Mount::Bind { host, guest, readonly } = mount {
            if host.is_file() {
                *mount = Mount::File {
                    host: std::mem::take(host),
                    guest: std::mem::take(guest),
                    readonly: *readonly,
                };
            }
        }
        if let Mount::Volume { name, guest, readonly } = mount {
            let (guest, readonly) = (std::mem::take(guest), *readonly);
            *mount = match paths.is_sized_volume(name) {
                true => Mount::Disk {
                    image: paths.volume_disk(name),
                    guest,
                    readonly,
                },
                false => Mount::Bind {
                    host: paths.volume_dir(name),
                    guest,
                    readonly,
                },
            };
        }
    }
    spec
}

/// The guest's side of mount number `i`; a host directory also becomes a share (cached
/// nothing: the host or other sandboxes may change it).
fn guest_mount(i: usize, mount: &Mount, devices: &mut Devices<'_>) -> BootResult<GuestMount> {
    let share = |dir: PathBuf, readonly: bool| Share {
        tag: format!("{MOUNT_TAG_PREFIX}{i}"),
        dir,
        readonly,
        cache: ShareCache::Never,
    };
    Ok(match mount {
        Mount::Volume { name, .. } => {
            return Err(BootError::Spec(SpecError::new(
                Field::Mounts,
                format!("volume '{name}' has no directory yet: plan the sandbox with its paths (msb_boot::plan)"),
            )))
        }
        Mount::Bind { host, guest, readonly } => {
            let share = share(host.clone(), *readonly);
            let tag = share.tag.clone();
            devices.shares.push(share);
            GuestMount::VirtioFs {
                tag,
                path: normal_guest_path(guest),
                readonly: *readonly,
            }
        }
        Mount::File { host, guest, readonly } => {
            let name = host
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = devices.staging.join(i.to_string());
            devices.file_links.push(FileLink {
                source: host.clone(),
                link: dir.join(&name),
            });
            let share = share(dir, *readonly);
            let tag = share.tag.clone();
            devices.shares.push(share);
            GuestMount::File {
                tag,
                name,
                path: normal_guest_path(guest),
                readonly: *readonly,
            }
        }
        Mount::Disk { image, guest, readonly } => {
            let serial = format!("{MOUNT_DISK_SERIAL_PREFIX}{i}");
            devices.disks.push(Disk {
                backing: DiskBacking::File {
                    path: image.clone(),
                    format: disk_format(DiskImageFormat::from_path(image)),
                },
                readonly: *readonly,
                serial: serial.clone(),
            });
            GuestMount::Disk {
                serial,
                path: normal_guest_path(guest),
                readonly: *readonly,
            }
        }
        Mount::Tmpfs {
            guest,
            size_mib,
            mode,
            noexec,
            readonly,
        } => GuestMount::Tmpfs {
            path: normal_guest_path(guest),
            size_mib: *size_mib,
            mode: *mode,
            noexec: *noexec,
            readonly: *readonly,
        },
    })
}

/// The VMM's name for a disk image's format.
pub fn disk_format(format: DiskImageFormat) -> DiskFormat {
    match format {
        DiskImageFormat::Raw => DiskFormat::Raw,
        DiskImageFormat::Qcow2 => DiskFormat::Qcow2,
        DiskImageFormat::Vmdk => DiskFormat::Vmdk,
    }
}

/// Checks what the mounts need of the host: each bind's directory is there.
fn check_mount_sources(spec: &SandboxSpec) -> BootResult<()> {
    for mount in &spec.mounts {
        let (host, guest, want_dir) = match mount {
            Mount::Bind { host, guest, .. } => (host, guest, true),
            Mount::File { host, guest, .. } => (host, guest, false),
            Mount::Disk { image, guest, .. } => (image, guest, false),
            _ => continue,
        };
        let problem = match std::fs::metadata(host) {
            Ok(meta) if meta.is_dir() == want_dir && (want_dir || meta.is_file()) => continue,
            Ok(_) if want_dir => "is neither a directory nor a regular file".into(),
            Ok(_) => "is not a regular file".into(),
            Err(e) => e.to_string(),
        };
        return Err(BootError::Spec(SpecError::new(
            Field::Mounts,
            format!("host path '{}' for {guest}: {problem}", host.display()),
        )));
    }
    Ok(())
}
