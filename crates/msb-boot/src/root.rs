//! A sandbox's root (host directory, OCI image or disk image): made ready once at create
//! time (patches applied, upper image written), then found again at each boot.

use crate::{BootError, BootResult, ResolvedRoot};
use msb_oci::LayerStore;
use msb_store::Store;
use msb_types::{Paths, RootSpec, SandboxSpec};
use msb_vmm::DiskPart;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The sandbox's writable layer, in its directory.
pub const UPPER_FILE: &str = "upper.ext4";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Makes the root of a new sandbox ready in its directory (created here): bakes the patches
/// into a fresh upper image (OCI root) or writes them into the host directory (bind root).
/// Conflicting patches fail before anything is written.
pub fn prepare(spec: &SandboxSpec, paths: &Paths) -> BootResult<()> {
    spec.validate()?;
    let dir = paths.sandbox_dir(&spec.name);
    std::fs::create_dir_all(&dir).map_err(BootError::io(format!("creating {}", dir.display())))?;
    match &spec.root {
        RootSpec::Oci(_) => {
            let layers: Vec<PathBuf> = layer_parts(spec, paths)?.into_iter().map(|p| p.path).collect();
            let size = u64::from(spec.upper_size_mib) << 20;
            msb_rootfs::write_upper_image(&spec.patches, &layers, &dir.join(UPPER_FILE), size, now())?;
        }
        RootSpec::Bind(host_dir) => msb_rootfs::apply_to_host_dir(&check_path(host_dir, true)?, &spec.patches, now())?,
        RootSpec::DiskImage { path, .. } => {
            check_path(path, false)?;
        }
    }
    Ok(())
}

/// Finds the root of a prepared sandbox whose directory is `dir`.
pub(crate) fn resolve(spec: &SandboxSpec, paths: &Paths, dir: &Path) -> BootResult<ResolvedRoot> {
    Ok(match &spec.root {
        RootSpec::Bind(host_dir) => ResolvedRoot::Dir(check_path(host_dir, true)?),
        RootSpec::Oci(_) => {
            let layers = layer_parts(spec, paths)?;
            let upper = dir.join(UPPER_FILE);
            if !upper.is_file() {
                return Err(BootError::Incomplete {
                    dir: dir.to_path_buf(),
                    file: UPPER_FILE,
                });
            }
            ResolvedRoot::Image { layers, upper }
        }
        RootSpec::DiskImage { path, format, fstype } => ResolvedRoot::Disk {
            path: check_path(path, false)?,
            format: *format,
            fstype: fstype.clone(),
        },
    })
}

/// The EROFS files of the layers of the sandbox's image (the manifest pinned at create, or
/// what the reference names now), bottom first, each checked to be present.
fn layer_parts(spec: &SandboxSpec, paths: &Paths) -> BootResult<Vec<DiskPart>> {
    let store = Store::open(paths)?;
    let (reference, layers) = match (&spec.image, &spec.root) {
        (Some(pinned), _) => (
            pinned.reference.as_str(),
            store.manifest_layers(&pinned.manifest_digest)?,
        ),
        (None, RootSpec::Oci(reference)) => {
            let record = store
                .get_image(reference)?
                .ok_or_else(|| BootError::ImageNotFound(reference.to_string()))?;
            (reference.as_str(), record.layers)
        }
        (None, _) => return Ok(Vec::new()),
    };
    let cache = LayerStore::open(&paths.cache_dir())?;
    layers
        .iter()
        .map(|layer| {
            let path = cache.layer_path(&layer.diff_id);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => Ok(DiskPart { path, len: m.len() }),
                _ => Err(BootError::LayerMissing {
                    reference: reference.to_string(),
                    diff_id: layer.diff_id.clone(),
                    path,
                }),
            }
        })
        .collect()
}

/// The canonical form of `path`, which must be a directory (`dir`) or a regular file.
fn check_path(path: &Path, dir: bool) -> BootResult<PathBuf> {
    let problem = match std::fs::metadata(path) {
        Err(_) => "does not exist",
        Ok(m) if dir && !m.is_dir() => "is not a directory",
        Ok(m) if !dir && !m.is_file() => "is not a regular file",
        Ok(_) => return std::fs::canonicalize(path).map_err(BootError::io(format!("resolving {}", path.display()))),
    };
    Err(BootError::Rootfs {
        path: path.to_path_buf(),
        problem,
    })
}
