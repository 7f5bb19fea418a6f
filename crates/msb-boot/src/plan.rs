//! The boot plan: everything a sandbox's VM is made of, decided before anything starts.

use crate::root;
use crate::{BootError, BootResult, HostConfig};
use msb_protocol::{GuestConfig, LayerDisk, RootSource};
use msb_types::{DiskImageFormat, Paths, SandboxSpec};
use msb_vmm::{AccelChoice, Disk, DiskBacking, DiskFormat, DiskPart, QemuConfig, Share, VmSpec, VmmError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// virtio-fs tag of a directory root.
const ROOT_TAG: &str = "msb-root";
/// Serial of the disk joining an image's layers.
const LAYERS_SERIAL: &str = "msb-layers";
/// Serial of an image root's writable upper.
const UPPER_SERIAL: &str = "msb-upper";
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
    let dir = paths.sandbox_dir(&spec.name);
    let root = root::resolve(spec, paths, &dir)?;
    plan_with(spec, &dir, root, host, msb_vmm::accel::detect(host.accel))
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
    let (shares, disks, source) = match root {
        ResolvedRoot::Dir(dir) => (
            vec![Share {
                tag: ROOT_TAG.into(),
                dir,
            }],
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
            let extents = msb_vmm::joined::layout(&layers);
            let disks = vec![
                Disk {
                    backing: DiskBacking::Joined(layers),
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
                layers: LayerDisk {
                    serial: LAYERS_SERIAL.into(),
                    extents,
                },
                upper: UPPER_SERIAL.into(),
            };
            (Vec::new(), disks, source)
        }
        ResolvedRoot::Disk { path, format, fstype } => {
            let disk = Disk {
                backing: DiskBacking::File {
                    path,
                    format: match format {
                        DiskImageFormat::Raw => DiskFormat::Raw,
                        DiskImageFormat::Qcow2 => DiskFormat::Qcow2,
                        DiskImageFormat::Vmdk => DiskFormat::Vmdk,
                    },
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
    let vm = VmSpec {
        kernel: host.kernel.clone(),
        initramfs: host.initramfs.clone(),
        cpus: spec.resources.cpus,
        memory_mib: spec.resources.memory_mib,
        shares,
        disks,
        runtime_dir: dir.join("runtime"),
        accel: accel.accel,
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
        },
    })
}
