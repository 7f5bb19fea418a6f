//! A sandbox's root (host directory, OCI image or disk image): made ready once at create
//! time (patches applied, upper image written), then turned at each boot into what the VM
//! attaches and what the agent mounts.

use crate::{MicrosandboxError, MicrosandboxResult};
use msb_oci::LayerStore;
use msb_protocol::{LayerDisk, RootSource};
use msb_store::Store;
use msb_types::{DiskImageFormat, Paths, RootSpec, SandboxSpec};
use msb_vmm::{Disk, DiskFormat};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const ROOT_TAG: &str = "msb-root";
const LAYERS_SERIAL: &str = "msb-layers";
const UPPER_SERIAL: &str = "msb-upper";
const ROOT_DISK_SERIAL: &str = "msb-root";
/// The sandbox's writable layer, in its directory.
pub(crate) const UPPER_FILE: &str = "upper.ext4";

/// Devices and mount instructions for one root.
#[derive(Debug)]
pub(crate) struct RootPlan {
    pub shares: Vec<(String, PathBuf)>,
    pub disks: Vec<Disk>,
    pub source: RootSource,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> MicrosandboxError {
    move |source| MicrosandboxError::Io { context, source }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Makes the root of a new sandbox ready: bakes the patches into a fresh upper image (OCI)
/// or writes them into the host directory (bind). Conflicts fail before anything is written.
pub(crate) fn prepare(spec: &SandboxSpec, paths: &Paths, dir: &Path) -> MicrosandboxResult<()> {
    spec.validate().map_err(MicrosandboxError::InvalidConfig)?;
    match &spec.root {
        RootSpec::Oci(reference) => {
            let layers = layer_paths(reference, paths)?;
            let size = u64::from(spec.upper_size_mib) << 20;
            msb_rootfs::write_upper_image(&spec.patches, &layers, &dir.join(UPPER_FILE), size, now())?;
        }
        RootSpec::Bind(host_dir) => msb_rootfs::apply_to_host_dir(&check_root_dir(host_dir)?, &spec.patches, now())?,
        RootSpec::DiskImage { path, .. } => {
            check_disk_image(path)?;
        }
    }
    Ok(())
}

/// Plans the boot of a sandbox (made ready by [`prepare`]) whose directory is `dir`.
pub(crate) fn plan(root: &RootSpec, paths: &Paths, dir: &Path) -> MicrosandboxResult<RootPlan> {
    match root {
        RootSpec::Bind(host_dir) => Ok(RootPlan {
            shares: vec![(ROOT_TAG.to_string(), check_root_dir(host_dir)?)],
            disks: Vec::new(),
            source: RootSource::VirtioFs { tag: ROOT_TAG.into() },
        }),
        RootSpec::Oci(reference) => oci(reference, paths, dir),
        RootSpec::DiskImage { path, format, fstype } => Ok(RootPlan {
            shares: Vec::new(),
            disks: vec![Disk {
                path: check_disk_image(path)?,
                format: match format {
                    DiskImageFormat::Raw => DiskFormat::Raw,
                    DiskImageFormat::Qcow2 => DiskFormat::Qcow2,
                    DiskImageFormat::Vmdk => DiskFormat::Vmdk,
                },
                readonly: false,
                serial: ROOT_DISK_SERIAL.into(),
            }],
            source: RootSource::Disk {
                serial: ROOT_DISK_SERIAL.into(),
                fstype: fstype.clone(),
            },
        }),
    }
}

/// The EROFS files of an image's layers, bottom first, each checked to be present.
fn layer_paths(reference: &str, paths: &Paths) -> MicrosandboxResult<Vec<PathBuf>> {
    let record = Store::open(paths)?
        .get_image(reference)?
        .ok_or_else(|| MicrosandboxError::ImageNotFound(reference.to_string()))?;
    let store = LayerStore::open(&paths.cache_dir())?;
    record
        .layers
        .iter()
        .map(|layer| {
            let path = store.layer_path(&layer.diff_id);
            if path.is_file() {
                Ok(path)
            } else {
                Err(MicrosandboxError::InvalidConfig(format!(
                    "layer {} of {reference} is missing from {}: pull the image again",
                    layer.diff_id,
                    path.display()
                )))
            }
        })
        .collect()
}

fn oci(reference: &str, paths: &Paths, dir: &Path) -> MicrosandboxResult<RootPlan> {
    let layers = layer_paths(reference, paths)?;
    let upper = dir.join(UPPER_FILE);
    if !upper.is_file() {
        return Err(MicrosandboxError::InvalidConfig(format!(
            "sandbox directory {} has no {UPPER_FILE}: the sandbox was not created completely; remove it and create it again",
            dir.display()
        )));
    }
    let descriptor = dir.join("layers.vmdk");
    let extents = msb_rootfs::write_layer_disk(&layers, &descriptor)?;
    let disks = vec![
        Disk {
            path: descriptor,
            format: DiskFormat::Vmdk,
            readonly: true,
            serial: LAYERS_SERIAL.into(),
        },
        Disk {
            path: upper,
            format: DiskFormat::Raw,
            readonly: false,
            serial: UPPER_SERIAL.into(),
        },
    ];
    Ok(RootPlan {
        shares: Vec::new(),
        disks,
        source: RootSource::Overlay {
            layers: LayerDisk {
                serial: LAYERS_SERIAL.into(),
                extents,
            },
            upper: UPPER_SERIAL.into(),
        },
    })
}

fn check_root_dir(root: &Path) -> MicrosandboxResult<PathBuf> {
    let problem = match std::fs::metadata(root) {
        Err(_) => "does not exist",
        Ok(m) if !m.is_dir() => "is not a directory",
        Ok(_) => return std::fs::canonicalize(root).map_err(io(format!("resolving {}", root.display()))),
    };
    Err(MicrosandboxError::Rootfs {
        path: root.to_path_buf(),
        problem,
    })
}

fn check_disk_image(path: &Path) -> MicrosandboxResult<PathBuf> {
    let problem = match std::fs::metadata(path) {
        Err(_) => "does not exist",
        Ok(m) if !m.is_file() => "is not a regular file",
        Ok(_) => return std::fs::canonicalize(path).map_err(io(format!("resolving {}", path.display()))),
    };
    Err(MicrosandboxError::Rootfs {
        path: path.to_path_buf(),
        problem,
    })
}
