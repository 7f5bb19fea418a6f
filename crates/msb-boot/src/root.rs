//! A sandbox's root (host directory, OCI image or disk image): made ready once at create
//! time (patches applied, upper image written), then found again at each boot.

use crate::{BootError, BootResult, ResolvedRoot};
use msb_oci::LayerStore;
use msb_rootfs::{HostRoot, Kind, Lower, Merged};
use msb_store::Store;
use msb_types::{DiskImageFormat, Field, Paths, RootSpec, SandboxSpec, SpecError};
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
    let now = now();
    match &spec.root {
        RootSpec::Oci(_) => {
            let layers: Vec<PathBuf> = layer_parts(spec, paths)?.into_iter().map(|p| p.path).collect();
            let mut stack = msb_rootfs::open_stack(&layers)?;
            let upper = msb_rootfs::build_upper(&spec.patches, &mut stack, now)?;
            check_settings(
                spec,
                &mut Merged {
                    upper: &upper,
                    lower: &mut stack,
                },
            )?;
            let size = u64::from(spec.upper_size_mib) << 20;
            msb_rootfs::write_upper_tree(upper, &dir.join(UPPER_FILE), size, now)?;
        }
        RootSpec::Bind(host_dir) => {
            let mut root = HostRoot::open(&check_path(host_dir, true)?)?;
            let upper = msb_rootfs::build_upper(&spec.patches, &mut root, now)?;
            check_settings(
                spec,
                &mut Merged {
                    upper: &upper,
                    lower: &mut root,
                },
            )?;
            root.apply(&upper)?;
        }
        RootSpec::DiskImage { path, format, .. } => {
            check_disk_image(path, *format)?;
        }
    }
    Ok(())
}

/// The canonical path of a disk-image root and the filesystem found on it (raw images).
fn check_disk_image(path: &Path, format: DiskImageFormat) -> BootResult<(PathBuf, Option<String>)> {
    let path = check_path(path, false)?;
    match crate::diskimage::probe(&path, format).map_err(BootError::io(format!("reading {}", path.display())))? {
        Ok(fstype) => Ok((path, fstype)),
        Err(not) => Err(BootError::NotADiskImage {
            path,
            problem: not.problem,
        }),
    }
}

/// Checks the settings that name things in the root against it, as the guest will see it:
/// the working directory must be a directory, the user must resolve in its /etc/passwd.
fn check_settings(spec: &SandboxSpec, root: &mut dyn Lower) -> BootResult<()> {
    let image = spec.image.as_ref().map(|i| &i.config);
    let workdir = match (&spec.workdir, image.and_then(|c| c.working_dir.as_ref())) {
        (Some(dir), _) => Some((dir, "")),
        (None, Some(dir)) => Some((dir, " (the image's WorkingDir)")),
        (None, None) => None,
    };
    if let Some((dir, whose)) = workdir.filter(|(d, _)| !d.is_empty()) {
        let problem = match msb_rootfs::resolve(root, dir)? {
            Some((_, Kind::Dir)) => None,
            Some((_, kind)) => Some(format!(
                "'{dir}'{whose} is a {} in the root filesystem, not a directory",
                kind.describe()
            )),
            None => Some(format!("'{dir}'{whose} does not exist in the root filesystem")),
        };
        if let Some(problem) = problem {
            return Err(SpecError::new(Field::Workdir, problem).into());
        }
    }
    let user = spec.user.as_ref().or(image.and_then(|c| c.user.as_ref()));
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        let passwd = read_text(root, "/etc/passwd")?;
        let group = read_text(root, "/etc/group")?;
        msb_types::resolve_user(user, &passwd, &group)?;
    }
    Ok(())
}

/// A small text file of the root (following symlinks); empty when it is not there.
fn read_text(root: &mut dyn Lower, path: &str) -> BootResult<String> {
    const LIMIT: usize = 16 << 20;
    let Some((at, Kind::File)) = msb_rootfs::resolve(root, path)? else {
        return Ok(String::new());
    };
    let parts: Vec<&[u8]> = at.iter().map(Vec::as_slice).collect();
    let mut bytes = root.read_file(&parts)?;
    bytes.truncate(LIMIT);
    Ok(String::from_utf8_lossy(&bytes).into_owned())
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
        RootSpec::DiskImage { path, format, fstype } => {
            let (path, found) = check_disk_image(path, *format)?;
            ResolvedRoot::Disk {
                path,
                format: *format,
                fstype: fstype.clone().or(found),
            }
        }
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
