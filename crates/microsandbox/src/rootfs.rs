//! Turning a sandbox's root (host directory or OCI image) into what the VM attaches and
//! what the agent mounts.

use crate::{MicrosandboxError, MicrosandboxResult};
use msb_oci::LayerStore;
use msb_protocol::RootSource;
use msb_store::Store;
use msb_types::{Paths, RootSpec};
use msb_vmm::{Disk, FIXED_DEVICES, VIRTIO_SLOTS};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT_TAG: &str = "msb-root";
const UPPER_SERIAL: &str = "msb-upper";
/// Size of a new sandbox's writable layer (sparse: only what is written takes space).
const UPPER_SIZE: u64 = 4 << 30;

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

/// Plans the root of a sandbox whose directory is `dir`.
pub(crate) fn plan(root: &RootSpec, paths: &Paths, dir: &Path) -> MicrosandboxResult<RootPlan> {
    match root {
        RootSpec::Bind(host_dir) => Ok(RootPlan {
            shares: vec![(ROOT_TAG.to_string(), check_root_dir(host_dir)?)],
            disks: Vec::new(),
            source: RootSource::VirtioFs { tag: ROOT_TAG.into() },
        }),
        RootSpec::Oci(reference) => oci(reference, paths, dir),
    }
}

fn oci(reference: &str, paths: &Paths, dir: &Path) -> MicrosandboxResult<RootPlan> {
    let record = Store::open(paths)?
        .get_image(reference)?
        .ok_or_else(|| MicrosandboxError::ImageNotFound(reference.to_string()))?;
    // One slot each for the layers and the upper; merging layers to fit more is future work.
    let max_layers = VIRTIO_SLOTS - FIXED_DEVICES - 1;
    if record.layers.len() > max_layers {
        return Err(MicrosandboxError::InvalidConfig(format!(
            "{reference} has {} layers; this version boots images of at most {max_layers}",
            record.layers.len()
        )));
    }
    let store = LayerStore::open(&paths.cache_dir())?;
    let mut disks = Vec::new();
    for (i, layer) in record.layers.iter().enumerate() {
        let path = store.layer_path(&layer.diff_id);
        if !path.is_file() {
            return Err(MicrosandboxError::InvalidConfig(format!(
                "layer {} of {reference} is missing from {}: pull the image again",
                layer.diff_id,
                path.display()
            )));
        }
        disks.push(Disk {
            path,
            readonly: true,
            serial: format!("msb-l{i}"),
        });
    }
    let upper = dir.join("upper.ext4");
    if !upper.exists() {
        create_upper(&upper)?;
    }
    disks.push(Disk {
        path: upper,
        readonly: false,
        serial: UPPER_SERIAL.into(),
    });
    let lowers = (0..record.layers.len()).map(|i| format!("msb-l{i}")).collect();
    Ok(RootPlan {
        shares: Vec::new(),
        disks,
        source: RootSource::Overlay {
            lowers,
            upper: UPPER_SERIAL.into(),
        },
    })
}

/// Makes an empty sparse ext4 image for the sandbox's writes (via a temp file, so a killed
/// msb never leaves a half-made upper behind).
fn create_upper(path: &Path) -> MicrosandboxResult<()> {
    let tmp = path.with_extension("ext4.tmp");
    let file = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    file.set_len(UPPER_SIZE)
        .map_err(io(format!("sizing {}", tmp.display())))?;
    // Small journal, no reserved blocks: it is one sandbox's scratch space.
    let out = Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-m",
            "0",
            "-J",
            "size=8",
            "-E",
            "root_owner=0:0",
            "-L",
            "msb-upper",
        ])
        .arg(&tmp)
        .output()
        .map_err(io("running mke2fs (install e2fsprogs)".into()))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(MicrosandboxError::InvalidConfig(format!(
            "mke2fs failed for {}: {}",
            tmp.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::rename(&tmp, path).map_err(io(format!("installing {}", path.display())))
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
