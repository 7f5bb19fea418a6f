//! What a snapshot may hold, and the spec of a sandbox made from one.
//!
//! Captured: an image root (its layers are content-addressed and read-only; its upper is
//! copied while the guest is paused), tmpfs mounts (they are guest memory), and writable
//! disks mounted whole: sized volumes and raw or qcow2 `--disk` images, copied as the
//! upper is. A sandbox made from the snapshot mounts its own copy of each such disk, from
//! its own directory: not the volume itself, which went on without it. Refused: host
//! directories, directory volumes and files (their contents can change underneath),
//! read-only disks (the host may change those too) and VMDK images (a descriptor may name
//! other files).

use crate::{MicrosandboxError, MicrosandboxResult, SnapshotInfo};
use msb_boot::saved::{mount_of_disk_file, mounted_disk_file};
use msb_types::{DiskImageFormat, Mount, Paths, PublishedPort, RootSpec, SandboxSpec};
use serde::{Deserialize, Serialize};

/// A mounted disk a snapshot holds a copy of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDisk {
    /// The number of its mount in the spec.
    pub mount: usize,
    /// Its file in the snapshot ([`msb_boot::saved::mounted_disk_file`]).
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
}

fn refused(spec: &SandboxSpec, why: &str) -> MicrosandboxError {
    MicrosandboxError::InvalidArgument(format!("sandbox '{}' {why}", spec.name))
}

/// Refuses a running sandbox `spec` of home `paths` that a snapshot cannot capture; else
/// the file each of its mounted disks is saved as, by mount number.
pub(crate) fn capturable(spec: &SandboxSpec, paths: &Paths) -> MicrosandboxResult<Vec<(usize, String)>> {
    image_root(spec)?;
    let mut disks = Vec::new();
    for (i, mount) in spec.mounts.iter().enumerate() {
        let format = match mount {
            Mount::Tmpfs { .. } => continue,
            Mount::Disk {
                image, readonly: false, ..
            } => DiskImageFormat::from_path(image),
            Mount::Volume {
                name, readonly: false, ..
            } if paths.is_sized_volume(name) => DiskImageFormat::Raw,
            Mount::Disk { .. } | Mount::Volume { .. } | Mount::Bind { .. } | Mount::File { .. } => {
                return Err(refused(
                    spec,
                    &format!(
                        "mounts {} from the host, which can change underneath a snapshot: a snapshot \
                         captures tmpfs mounts, sized volumes and writable disk images only",
                        mount.guest()
                    ),
                ))
            }
        };
        let file = mounted_disk_file(i, msb_boot::disk_format(format)).ok_or_else(|| {
            refused(
                spec,
                &format!(
                    "mounts a VMDK image at {}, which a snapshot cannot copy whole",
                    mount.guest()
                ),
            )
        })?;
        disks.push((i, file));
    }
    Ok(disks)
}

fn image_root(spec: &SandboxSpec) -> MicrosandboxResult<()> {
    match spec.root {
        RootSpec::Oci(_) => Ok(()),
        _ => Err(refused(
            spec,
            "has a host directory or disk image as its root, which can change underneath a \
             snapshot: only image roots can be saved",
        )),
    }
}

/// Refuses a snapshot (a loaded or altered one, too) whose spec a snapshot could not have
/// captured, or whose saved disks are not exactly its mounted disks.
pub(crate) fn restorable(snapshot: &SnapshotInfo) -> MicrosandboxResult<()> {
    let spec = &snapshot.spec;
    image_root(spec)?;
    let altered = |why: String| {
        MicrosandboxError::InvalidArgument(format!("snapshot '{}' is not one msb took: {why}", snapshot.name))
    };
    for (i, mount) in spec.mounts.iter().enumerate() {
        let saved = snapshot.disks.iter().filter(|d| d.mount == i).count();
        let disk = matches!(
            mount,
            Mount::Disk { readonly: false, .. } | Mount::Volume { readonly: false, .. }
        );
        match (mount, saved) {
            (Mount::Tmpfs { .. }, 0) => {}
            (_, 1) if disk => {}
            _ => {
                return Err(altered(format!(
                    "its mount of {} has {saved} saved disks",
                    mount.guest()
                )))
            }
        }
    }
    for disk in &snapshot.disks {
        if mount_of_disk_file(&disk.file) != Some(disk.mount) {
            return Err(altered(format!("it names a disk file '{}'", disk.file)));
        }
    }
    Ok(())
}

/// The spec of a sandbox named `name` of home `paths` made from snapshot `snapshot`: the
/// saved sandbox's, renamed (its hostname too, where it was the name), its mounted disks
/// its own copies, without secrets, publishing `ports` instead of the saved sandbox's (it
/// may still hold them). Refuses a snapshot whose spec could not have been captured.
pub(crate) fn spec_from(
    snapshot: &SnapshotInfo,
    name: &str,
    paths: &Paths,
    ports: Vec<PublishedPort>,
) -> MicrosandboxResult<SandboxSpec> {
    restorable(snapshot)?;
    let mut spec = snapshot.spec.clone();
    if spec.hostname == spec.name {
        spec.hostname = name.into();
    }
    spec.name = name.into();
    for disk in &snapshot.disks {
        let guest = spec.mounts[disk.mount].guest().to_string();
        spec.mounts[disk.mount] = Mount::Disk {
            image: paths.sandbox_dir(name).join(&disk.file),
            guest,
            readonly: false,
        };
    }
    spec.network.secrets.clear();
    spec.network.ports = ports;
    spec.ephemeral = false;
    spec.validate()?;
    Ok(spec)
}
