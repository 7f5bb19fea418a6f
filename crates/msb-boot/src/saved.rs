//! A running sandbox saved to files, for a snapshot: the names of those files, and the
//! copy that keeps a disk image's holes. The supervisor saves into its sandbox's
//! [`STAGING`] directory (the one it may write); the client moves that into the snapshots'
//! directory. A sandbox made from a snapshot gets a copy of its disks and a link to its
//! memory as [`crate::SAVED_FILE`], which its first start resumes.

use msb_vmm::{Disk, DiskBacking, DiskFormat};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The directory, in a sandbox's, where its supervisor saves it.
pub const STAGING: &str = "snapshot.partial";
/// The guest's memory and device state (QEMU's migration stream).
pub const MEMORY_FILE: &str = "memory.vm";

/// The file a running sandbox's writable disk `disk` is saved as: the upper keeps its
/// name, a mounted disk (a sized volume, a `--disk` image) is named by its mount's number
/// and format ([`mounted_disk_file`]). `None` for a disk that is not saved.
pub fn saved_disk_file(disk: &Disk) -> Option<String> {
    let DiskBacking::File { format, .. } = &disk.backing else {
        return None;
    };
    if disk.readonly {
        None
    } else if disk.serial == crate::plan::UPPER_SERIAL {
        Some(crate::UPPER_FILE.into())
    } else {
        mounted_disk_file(crate::plan::mount_of_serial(&disk.serial)?, *format)
    }
}

/// The file mount number `mount`'s disk of format `format` is saved as; `None` for a
/// format a save does not copy whole (a VMDK may be a descriptor of other files).
pub fn mounted_disk_file(mount: usize, format: DiskFormat) -> Option<String> {
    match format {
        DiskFormat::Raw => Some(format!("{MOUNTED_DISK}{mount}.raw")),
        DiskFormat::Qcow2 => Some(format!("{MOUNTED_DISK}{mount}.qcow2")),
        DiskFormat::Vmdk => None,
    }
}

/// The mount number a saved disk's file name names, if it is one [`mounted_disk_file`]
/// makes (the names of a loaded snapshot are checked so).
pub fn mount_of_disk_file(name: &str) -> Option<usize> {
    let rest = name.strip_prefix(MOUNTED_DISK)?;
    let number = rest.strip_suffix(".raw").or_else(|| rest.strip_suffix(".qcow2"))?;
    let mount: usize = number.parse().ok()?;
    (mount.to_string() == number).then_some(mount)
}

/// How the saved files of mounted disks begin.
const MOUNTED_DISK: &str = "mount-";

/// A new file at `path` that only its owner may read or write (none may be there).
pub fn create_private(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Copies `from` to a new file `to` (owner-only), leaving holes where `from` has them:
/// a sandbox's upper is a mostly empty image of some GiB.
pub fn copy_sparse(from: &Path, to: &Path) -> io::Result<u64> {
    let source = File::open(from)?;
    let len = source.metadata()?.len();
    let target = create_private(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < len {
        let Some(data) = seek(&source, offset, nix::unistd::Whence::SeekData)? else {
            break; // only a hole is left
        };
        let hole = seek(&source, data, nix::unistd::Whence::SeekHole)?.unwrap_or(len);
        let mut at = data;
        while at < hole {
            let want = usize::try_from((hole - at).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = source.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break; // the file shrank meanwhile
            }
            target.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        offset = hole;
    }
    target.set_len(len)?;
    Ok(len)
}

/// Where the next data (or hole) at or after `offset` begins; `None` past the last data.
fn seek(file: &File, offset: u64, whence: nix::unistd::Whence) -> io::Result<Option<u64>> {
    let offset = i64::try_from(offset).map_err(io::Error::other)?;
    match nix::unistd::lseek(std::os::fd::AsRawFd::as_raw_fd(file), offset, whence) {
        Ok(at) => Ok(Some(at as u64)),
        Err(nix::errno::Errno::ENXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_sparse_copy_has_the_same_bytes_and_keeps_the_holes() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("upper.ext4");
        let file = File::create(&from).unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(b"superblock", 1024).unwrap();
        file.write_all_at(&[7u8; 3 << 20], 40 << 20).unwrap();
        let to = dir.path().join("copy.ext4");
        assert_eq!(copy_sparse(&from, &to).unwrap(), 64 << 20);
        assert_eq!(std::fs::read(&from).unwrap(), std::fs::read(&to).unwrap());
        let copy = std::fs::metadata(&to).unwrap();
        assert!(copy.blocks() * 512 < 8 << 20, "{} bytes allocated", copy.blocks() * 512);
        assert_eq!(copy.mode() & 0o777, 0o600);
        assert!(copy_sparse(&from, &to).is_err(), "an existing file is not overwritten");
    }

    #[test]
    fn saved_disks_are_named_by_mount_and_only_those_names_are_taken_back() {
        assert_eq!(mounted_disk_file(3, DiskFormat::Raw).as_deref(), Some("mount-3.raw"));
        assert_eq!(
            mounted_disk_file(0, DiskFormat::Qcow2).as_deref(),
            Some("mount-0.qcow2")
        );
        assert_eq!(mounted_disk_file(1, DiskFormat::Vmdk), None);
        assert_eq!(mount_of_disk_file("mount-3.raw"), Some(3));
        assert_eq!(mount_of_disk_file("mount-12.qcow2"), Some(12));
        for bad in [
            "mount-03.raw",
            "mount-+3.raw",
            "mount-.raw",
            "mount-3.vmdk",
            "../mount-3.raw",
            "mount-3.raw/x",
            "upper.ext4",
        ] {
            assert_eq!(mount_of_disk_file(bad), None, "{bad}");
        }
        let disk = |serial: &str, readonly| Disk {
            backing: DiskBacking::File {
                path: "/x/whatever.img".into(),
                format: DiskFormat::Raw,
            },
            readonly,
            serial: serial.into(),
        };
        assert_eq!(
            saved_disk_file(&disk("msb-upper", false)).as_deref(),
            Some("upper.ext4")
        );
        assert_eq!(
            saved_disk_file(&disk("msb-disk-2", false)).as_deref(),
            Some("mount-2.raw")
        );
        assert_eq!(saved_disk_file(&disk("msb-disk-2", true)), None);
        assert_eq!(saved_disk_file(&disk("msb-root", false)), None);
    }
}
