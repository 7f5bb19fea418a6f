//! A host directory used as a sandbox's root (`--rootfs DIR`), read and patched without
//! ever leaving it.
//!
//! Every step opens exactly one name relative to the directory handle of its parent, with
//! `O_NOFOLLOW`, starting from a handle on the root: no path string is ever resolved by the
//! kernel, so no symlink (`/etc`, `../..`, a magic link) and no `..` can lead a lookup or a
//! write outside the root, however the tree changes meanwhile. Symlinks met on the way are
//! treated as the overlay rules treat them in an image: as non-directories. Files are
//! replaced by writing a new file and renaming it over the old name, so an existing inode
//! (possibly hard-linked from elsewhere) is never written into.

use crate::lower::{Entry, Kind, Lower};
use crate::remove::remove_all;
use crate::{display, PatchError};
use msb_ext4::{Data, Dir, File, Metadata, Node};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A host directory serving as a rootfs.
#[derive(Debug)]
pub struct HostRoot {
    path: PathBuf,
    root: OwnedFd,
}

fn errno(context: impl FnOnce() -> String) -> impl FnOnce(Errno) -> PatchError {
    move |e| PatchError::Io {
        context: context(),
        source: e.into(),
    }
}

pub(crate) fn kind(stat: &Stat) -> Kind {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        FileType::CharacterDevice => Kind::CharDevice,
        FileType::BlockDevice => Kind::BlockDevice,
        FileType::Fifo => Kind::Fifo,
        FileType::Socket => Kind::Socket,
        _ => Kind::File,
    }
}

fn attrs(stat: &Stat) -> Metadata {
    Metadata {
        mode: (stat.st_mode & 0o7777) as u16,
        uid: stat.st_uid,
        gid: stat.st_gid,
        mtime: stat.st_mtime,
        mtime_nsec: stat.st_mtime_nsec.clamp(0, 999_999_999) as u32,
    }
}

/// Opens one name below `dir` without following it.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<Stat>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

impl HostRoot {
    /// Opens the directory at `path` as a rootfs.
    pub fn open(path: &Path) -> Result<Self, PatchError> {
        let root = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno(|| format!("opening the rootfs directory {}", path.display())))?;
        Ok(HostRoot {
            path: path.to_path_buf(),
            root,
        })
    }

    fn context(&self, path: &[&[u8]], what: &str) -> String {
        format!("{what} {} in rootfs {}", display(path), self.path.display())
    }

    /// Handle on the directory at `path` and its stat, or `None` when the walk meets
    /// something missing or a non-directory (a symlink included).
    fn walk_dirs(&self, path: &[&[u8]]) -> Result<Option<OwnedFd>, PatchError> {
        let mut cur = rustix::io::dup(&self.root).map_err(errno(|| self.context(&[], "opening")))?;
        for (depth, name) in path.iter().enumerate() {
            match open_at(cur.as_fd(), name, OFlags::DIRECTORY | OFlags::RDONLY) {
                Ok(fd) => cur = fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
                Err(e) => return Err(errno(|| self.context(&path[..=depth], "opening"))(e)),
            }
        }
        Ok(Some(cur))
    }

    /// Writes `upper` (made by the patch engine over this root) into the directory.
    pub fn apply(&self, upper: &Dir) -> Result<(), PatchError> {
        self.apply_dir(self.root.as_fd(), upper, &mut Vec::new())
    }

    fn apply_dir(&self, dir: BorrowedFd<'_>, tree: &Dir, at: &mut Vec<Vec<u8>>) -> Result<(), PatchError> {
        for (name, node) in &tree.entries {
            at.push(name.clone());
            let here: Vec<&[u8]> = at.iter().map(Vec::as_slice).collect();
            let ctx = |what: &str| self.context(&here, what);
            let existing = stat_at(dir, name).map_err(errno(|| ctx("inspecting")))?;
            let existing_dir = existing.as_ref().is_some_and(|s| kind(s) == Kind::Dir);
            match node {
                Node::Dir(d) => {
                    let keep = existing_dir && !d.is_opaque();
                    if existing.is_some() && !keep {
                        remove_all(dir, name, existing_dir).map_err(errno(|| ctx("removing")))?;
                    }
                    if !keep {
                        rustix::fs::mkdirat(dir, name.as_slice(), Mode::from_raw_mode(0o700))
                            .map_err(errno(|| ctx("creating directory")))?;
                    }
                    let fd =
                        open_at(dir, name, OFlags::DIRECTORY | OFlags::RDONLY).map_err(errno(|| ctx("opening")))?;
                    let before = existing.filter(|_| keep).map(|s| attrs(&s));
                    if before.map(|b| b.mode) != Some(d.meta.mode) {
                        set_owner_and_mode(&fd, &d.meta).map_err(errno(|| ctx("setting the mode of")))?;
                    }
                    self.apply_dir(fd.as_fd(), d, at)?;
                }
                Node::File(f) => {
                    let tmp = self.create_temp(dir, f).map_err(|e| match e {
                        Replace::Os(e) => errno(|| ctx("writing"))(e),
                        Replace::Patch(p) => p,
                    })?;
                    self.replace_with(dir, &tmp, name, existing_dir, &ctx)?;
                }
                Node::Symlink { target, .. } => {
                    let tmp = temp_name(|n| rustix::fs::symlinkat(target.as_slice(), dir, n))
                        .map_err(errno(|| ctx("creating symlink")))?;
                    self.replace_with(dir, &tmp, name, existing_dir, &ctx)?;
                }
                Node::Special { .. } if node.is_whiteout() => {
                    if existing.is_some() {
                        remove_all(dir, name, existing_dir).map_err(errno(|| ctx("removing")))?;
                    }
                }
                Node::Special { .. } => {
                    return Err(PatchError::Invalid(format!(
                        "{}: patches do not make devices, FIFOs or sockets",
                        display(&here)
                    )))
                }
            }
            at.pop();
        }
        Ok(())
    }

    /// Renames the new entry `tmp` over `name` (a directory there is removed first).
    fn replace_with(
        &self,
        dir: BorrowedFd<'_>,
        tmp: &[u8],
        name: &[u8],
        existing_dir: bool,
        ctx: &dyn Fn(&str) -> String,
    ) -> Result<(), PatchError> {
        let result = (|| {
            if existing_dir {
                remove_all(dir, name, true)?;
            }
            rustix::fs::renameat(dir, tmp, dir, name)
        })();
        result.map_err(|e| {
            let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
            errno(|| ctx("replacing"))(e)
        })
    }

    /// Writes the file `f` under a fresh temporary name in `dir` and returns that name.
    fn create_temp(&self, dir: BorrowedFd<'_>, f: &File) -> Result<Vec<u8>, Replace> {
        let mut fd = None;
        let tmp = temp_name(|n| {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            fd = Some(rustix::fs::openat(dir, n, flags, Mode::from_raw_mode(0o600))?);
            Ok(())
        })?;
        let Some(fd) = fd else {
            return Err(Replace::Os(Errno::INVAL));
        };
        let written = (|| -> Result<(), Replace> {
            set_owner_and_mode(&fd, &f.meta)?;
            let mut out = std::fs::File::from(fd);
            write_data(&mut out, &f.data)
        })();
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(dir, tmp.as_slice(), AtFlags::empty());
            return Err(e);
        }
        Ok(tmp)
    }
}

/// Why writing a replacement file failed.
enum Replace {
    Os(Errno),
    Patch(PatchError),
}

impl From<Errno> for Replace {
    fn from(e: Errno) -> Self {
        Replace::Os(e)
    }
}

fn write_data(out: &mut std::fs::File, data: &Data) -> Result<(), Replace> {
    let io = |e: std::io::Error| Replace::Os(Errno::from_io_error(&e).unwrap_or(Errno::IO));
    match data {
        Data::Bytes(bytes) => out.write_all(bytes).map_err(io),
        Data::Host { path, len } => {
            let source = |e: std::io::Error| {
                Replace::Patch(PatchError::Source {
                    path: path.clone(),
                    problem: e.to_string(),
                })
            };
            let src = std::fs::File::open(path).map_err(source)?;
            let copied = std::io::copy(&mut std::io::Read::take(src, len + 1), out).map_err(io)?;
            if copied != *len {
                return Err(Replace::Patch(PatchError::Source {
                    path: path.clone(),
                    problem: format!("changed size while being copied ({len} bytes, now {copied})"),
                }));
            }
            Ok(())
        }
    }
}

/// Sets the permission bits, and the owner where this process may (as root; an ordinary
/// user's copies stay theirs, as with `cp`).
fn set_owner_and_mode(fd: &OwnedFd, meta: &Metadata) -> Result<(), Errno> {
    let uid = rustix::fs::Uid::from_raw(meta.uid);
    let gid = rustix::fs::Gid::from_raw(meta.gid);
    match rustix::fs::fchown(fd, Some(uid), Some(gid)) {
        Ok(()) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    // After chown, which clears setuid/setgid bits.
    rustix::fs::fchmod(fd, Mode::from_raw_mode(u32::from(meta.mode)))
}

/// Runs `create` with fresh temporary names until one does not exist yet.
pub(crate) fn temp_name(mut create: impl FnMut(&[u8]) -> Result<(), Errno>) -> Result<Vec<u8>, Errno> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(".msb-patch.{}.{n}", std::process::id()).into_bytes();
        match create(&name) {
            Err(Errno::EXIST) if n < u32::MAX => continue,
            other => return other.map(|()| name),
        }
    }
}

impl Lower for HostRoot {
    fn is_image(&self) -> bool {
        false
    }

    fn entry(&mut self, path: &[&[u8]]) -> Result<Option<Entry>, PatchError> {
        let Some((last, parents)) = path.split_last() else {
            let stat = rustix::fs::fstat(&self.root).map_err(errno(|| self.context(&[], "inspecting")))?;
            return Ok(Some(Entry {
                kind: Kind::Dir,
                meta: attrs(&stat),
                xattrs: Vec::new(),
            }));
        };
        let Some(parent) = self.walk_dirs(parents)? else {
            return Ok(None);
        };
        let stat = stat_at(parent.as_fd(), last).map_err(errno(|| self.context(path, "inspecting")))?;
        Ok(stat.map(|s| Entry {
            kind: kind(&s),
            meta: attrs(&s),
            xattrs: Vec::new(),
        }))
    }

    fn read_file(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError> {
        let missing = || PatchError::AppendMissing { path: display(path) };
        let (last, parents) = path.split_last().ok_or_else(missing)?;
        let parent = self.walk_dirs(parents)?.ok_or_else(missing)?;
        let fd = open_at(parent.as_fd(), last, OFlags::RDONLY).map_err(errno(|| self.context(path, "reading")))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut bytes)
            .map_err(PatchError::io(self.context(path, "reading")))?;
        Ok(bytes)
    }

    fn read_link(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError> {
        let missing = || PatchError::AppendMissing { path: display(path) };
        let (last, parents) = path.split_last().ok_or_else(missing)?;
        let parent = self.walk_dirs(parents)?.ok_or_else(missing)?;
        let target = rustix::fs::readlinkat(parent.as_fd(), *last, Vec::new())
            .map_err(errno(|| self.context(path, "reading the link")))?;
        Ok(target.into_bytes())
    }
}
