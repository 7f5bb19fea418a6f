//! A running sandbox saved to files, for a snapshot: the names of those files, and the
//! copy that keeps a disk image's holes. The supervisor saves into its sandbox's
//! [`STAGING`] directory (the one it may write); the client moves that into the snapshots'
//! directory. A sandbox made from a snapshot gets a copy of its disks and a link to its
//! memory as [`crate::SAVED_FILE`], which its first start resumes.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The directory, in a sandbox's, where its supervisor saves it.
pub const STAGING: &str = "snapshot.partial";
/// The guest's memory and device state (QEMU's migration stream).
pub const MEMORY_FILE: &str = "memory.vm";

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
}
