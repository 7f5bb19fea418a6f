//! A sandbox's root (host directory, OCI image or disk image): made ready once at create
//! time (patches applied, upper image written), then turned at each boot into what the VM
//! attaches and what the agent mounts.

use crate::{Error, Result};
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

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Makes the root of a new sandbox ready in its directory (created here): bakes the patches
/// into a fresh upper image (OCI root) or writes them into the host directory (bind root).
/// Conflicting patches fail before anything is written.
pub fn prepare(spec: &SandboxSpec, paths: &Paths) -> Result<()> {
    spec.validate().map_err(Error::InvalidConfig)?;
    let dir = paths.sandbox_dir(&spec.name);
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    match &spec.root {
        RootSpec::Oci(_) => {
            let layers = layer_paths(spec, paths)?;
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
pub(crate) fn plan(spec: &SandboxSpec, paths: &Paths, dir: &Path) -> Result<RootPlan> {
    match &spec.root {
        RootSpec::Bind(host_dir) => Ok(RootPlan {
            shares: vec![(ROOT_TAG.to_string(), check_root_dir(host_dir)?)],
            disks: Vec::new(),
            source: RootSource::VirtioFs { tag: ROOT_TAG.into() },
        }),
        RootSpec::Oci(_) => oci(spec, paths, dir),
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

/// The EROFS files of the layers of the sandbox's image (the manifest pinned at create, or
/// what the reference names now), bottom first, each checked to be present.
fn layer_paths(spec: &SandboxSpec, paths: &Paths) -> Result<Vec<PathBuf>> {
    let store = Store::open(paths)?;
    let (reference, layers) = match (&spec.image, &spec.root) {
        (Some(pinned), _) => (
            pinned.reference.as_str(),
            store.manifest_layers(&pinned.manifest_digest)?,
        ),
        (None, RootSpec::Oci(reference)) => {
            let record = store
                .get_image(reference)?
                .ok_or_else(|| Error::ImageNotFound(reference.to_string()))?;
            (reference.as_str(), record.layers)
        }
        (None, _) => return Err(Error::InvalidConfig("the sandbox's root is not an image".into())),
    };
    let cache = LayerStore::open(&paths.cache_dir())?;
    layers
        .iter()
        .map(|layer| {
            let path = cache.layer_path(&layer.diff_id);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::InvalidConfig(format!(
                    "layer {} of {reference} is missing from {}: pull the image again",
                    layer.diff_id,
                    path.display()
                )))
            }
        })
        .collect()
}

fn oci(spec: &SandboxSpec, paths: &Paths, dir: &Path) -> Result<RootPlan> {
    let layers = layer_paths(spec, paths)?;
    let upper = dir.join(UPPER_FILE);
    if !upper.is_file() {
        return Err(Error::InvalidConfig(format!(
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

fn check_root_dir(root: &Path) -> Result<PathBuf> {
    check_path(root, true)
}

fn check_disk_image(path: &Path) -> Result<PathBuf> {
    check_path(path, false)
}

/// The canonical form of `path`, which must be a directory (`dir`) or a regular file.
fn check_path(path: &Path, dir: bool) -> Result<PathBuf> {
    let problem = match std::fs::metadata(path) {
        Err(_) => "does not exist",
        Ok(m) if dir && !m.is_dir() => "is not a directory",
        Ok(m) if !dir && !m.is_file() => "is not a regular file",
        Ok(_) => return std::fs::canonicalize(path).map_err(Error::io(format!("resolving {}", path.display()))),
    };
    Err(Error::Rootfs {
        path: path.to_path_buf(),
        problem,
    })
}
