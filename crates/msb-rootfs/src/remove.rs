//! Removing a directory tree someone else made (a guest, say) without following anything in
//! it, however deep it is: no recursion, and a bounded number of open descriptors. Deeper
//! ancestors are let go and reopened by name (never following a symlink) when the walk
//! climbs back to them.

use crate::host::open_at;
use rustix::fs::{AtFlags, FileType, OFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Directories kept open at once while walking down.
const HELD: usize = 64;

/// One directory on the way down: its name in its parent, its descriptor if held, and the
/// subdirectories still to remove.
struct Level {
    name: Vec<u8>,
    fd: Option<OwnedFd>,
    pending: Option<Vec<Vec<u8>>>,
}

/// Removes `name` in `dir` and everything below it, or unlinks it if it is not a directory.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8], is_dir: bool) -> Result<(), Errno> {
    if !is_dir {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
    let top = open_at(dir, name, OFlags::DIRECTORY | OFlags::RDONLY)?;
    let mut levels = vec![Level {
        name: name.to_vec(),
        fd: Some(top),
        pending: None,
    }];
    while let Some(depth) = levels.len().checked_sub(1) {
        reopen(dir, &mut levels, depth)?;
        let level = &mut levels[depth];
        let Some(fd) = level.fd.as_ref() else {
            return Err(Errno::BADF);
        };
        let pending = match level.pending.as_mut() {
            Some(pending) => pending,
            None => level.pending.insert(unlink_files(fd.as_fd())?),
        };
        match pending.pop() {
            Some(child) => match open_at(fd.as_fd(), &child, OFlags::DIRECTORY | OFlags::RDONLY) {
                Ok(child_fd) => {
                    levels.push(Level {
                        name: child,
                        fd: Some(child_fd),
                        pending: None,
                    });
                    let held = levels.iter().filter(|l| l.fd.is_some()).count();
                    if held > HELD {
                        if let Some(oldest) = levels.iter_mut().find(|l| l.fd.is_some()) {
                            oldest.fd = None;
                        }
                    }
                }
                // Replaced by something else since it was listed: remove that instead.
                Err(Errno::NOTDIR | Errno::LOOP) => rustix::fs::unlinkat(fd.as_fd(), &child, AtFlags::empty())?,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            },
            None => {
                let Some(done) = levels.pop() else { break };
                drop(done.fd);
                match levels.len().checked_sub(1) {
                    Some(parent) => {
                        reopen(dir, &mut levels, parent)?;
                        let Some(fd) = levels[parent].fd.as_ref() else {
                            return Err(Errno::BADF);
                        };
                        rustix::fs::unlinkat(fd.as_fd(), &done.name, AtFlags::REMOVEDIR)?;
                    }
                    None => rustix::fs::unlinkat(dir, &done.name, AtFlags::REMOVEDIR)?,
                }
            }
        }
    }
    Ok(())
}

/// Unlinks every non-directory in `dir`; returns the names of its subdirectories.
fn unlink_files(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    let mut subdirs = Vec::new();
    let mut files = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory),
            _ => false,
        };
        if is_dir {
            subdirs.push(name.to_vec());
        } else {
            files.push(name.to_vec());
        }
    }
    for file in files {
        match rustix::fs::unlinkat(dir, &file, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(subdirs)
}

/// Makes sure `levels[depth]` has its descriptor, reopening it by name from the nearest held
/// ancestor (or `top`). The last [`HELD`] levels opened on the way are kept, so climbing
/// back up reopens a stretch only once every [`HELD`] levels.
fn reopen(top: BorrowedFd<'_>, levels: &mut [Level], depth: usize) -> Result<(), Errno> {
    if levels[depth].fd.is_some() {
        return Ok(());
    }
    let held = levels[..depth].iter().rposition(|l| l.fd.is_some());
    let start = held.map_or(0, |i| i + 1);
    // Where the walk stands: a level holding its descriptor, or a passing one.
    let mut at = held;
    let mut passing: Option<OwnedFd> = None;
    for i in start..=depth {
        let next = {
            let from = match (&passing, at) {
                (Some(fd), _) => fd.as_fd(),
                (None, Some(h)) => levels[h].fd.as_ref().map(|f| f.as_fd()).ok_or(Errno::BADF)?,
                (None, None) => top,
            };
            open_at(from, &levels[i].name, OFlags::DIRECTORY | OFlags::RDONLY)?
        };
        if i + HELD > depth {
            levels[i].fd = Some(next);
            passing = None;
            at = Some(i);
        } else {
            passing = Some(next);
        }
    }
    Ok(())
}
