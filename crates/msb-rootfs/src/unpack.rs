//! Unpacking a tar that came out of a sandbox onto the host, contained in the one target
//! the user named.
//!
//! The tar is hostile: its names may hold `..`, start with `/`, or pass through a symlink
//! it planted earlier; its hard links may point anywhere. Every entry is placed by walking
//! from a handle on the target's parent, one name at a time, without following anything
//! (the same walk as [`crate::HostRoot`]): the entry named `.` (or an empty name) is the
//! target itself, and everything else lands below it or is refused. Files are written under
//! a temporary name and renamed into place, so no existing inode is ever written into.
//! Devices and FIFOs are left out (a guest must not make device nodes on the host), and
//! setuid/setgid bits are dropped from files.

use crate::host::{kind, open_at, stat_at, temp_name};
use crate::lower::Kind;
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How entries are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Give entries the owners the tar names (else they belong to this process's user).
    pub owners: bool,
}

/// What was unpacked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hard_links: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Entries left out (devices, FIFOs, unknown kinds), by name.
    pub skipped: Vec<String>,
}

/// Unpacks `tar` as the file or tree `target` (whose parent must exist). An existing
/// directory at `target` is merged into and keeps its own mode and owner.
pub fn unpack_contained(target: &Path, tar: impl Read, opts: UnpackOptions) -> io::Result<UnpackStats> {
    let name = target
        .file_name()
        .filter(|n| *n != OsStr::new(".."))
        .ok_or_else(|| invalid(format!("{}: names no file or directory to create", target.display())))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent_fd = rustix::fs::open(
        parent,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| os(format!("opening {}", parent.display()), e))?;
    let mut unpacker = Unpacker {
        parent: parent_fd,
        root: name.as_bytes().to_vec(),
        target,
        opts,
        stats: UnpackStats::default(),
        made_dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(tar);
    // Raw entries: long names (GNU `L`/`K`, PAX `path`/`linkpath`) are read here, capped;
    // the tar crate would read a name of any size the guest declares into memory.
    let (mut long_name, mut long_link) = (None, None);
    for entry in archive.entries().map_err(|e| bad_tar(target, e))?.raw(true) {
        let mut entry = entry.map_err(|e| bad_tar(target, e))?;
        let entry_type = entry.header().entry_type();
        if entry_type.is_gnu_longname() || entry_type.is_gnu_longlink() || entry_type.is_pax_local_extensions() {
            let data = capped(&mut entry, target)?;
            if entry_type.is_gnu_longname() {
                long_name = Some(trim_nuls(data));
            } else if entry_type.is_gnu_longlink() {
                long_link = Some(trim_nuls(data));
            } else {
                for ext in tar::PaxExtensions::new(&data).flatten() {
                    match ext.key_bytes() {
                        b"path" => long_name = Some(ext.value_bytes().to_vec()),
                        b"linkpath" => long_link = Some(ext.value_bytes().to_vec()),
                        _ => {}
                    }
                }
            }
            continue;
        }
        let name = long_name.take().unwrap_or_else(|| entry.path_bytes().into_owned());
        let link = long_link
            .take()
            .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        unpacker.entry(&mut entry, &name, link.as_deref())?;
    }
    unpacker.finish_dirs()?;
    Ok(unpacker.stats)
}

/// The longest name or PAX record set accepted (Linux's `PATH_MAX` is 4096; PAX records
/// carry a little more).
const MAX_META: u64 = 64 << 10;

/// The data of a name or PAX entry, refused past [`MAX_META`].
fn capped<R: Read>(entry: &mut tar::Entry<'_, R>, target: &Path) -> io::Result<Vec<u8>> {
    let size = entry.header().entry_size().map_err(|e| bad_tar(target, e))?;
    if size > MAX_META {
        return Err(invalid(format!(
            "the copy for {} declares a {size}-byte name or header; at most {MAX_META} bytes are accepted",
            target.display()
        )));
    }
    let mut data = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut data).map_err(|e| bad_tar(target, e))?;
    Ok(data)
}

fn trim_nuls(mut name: Vec<u8>) -> Vec<u8> {
    while name.last() == Some(&0) {
        name.pop();
    }
    name
}

struct Unpacker<'a> {
    parent: OwnedFd,
    /// The target's own name in its parent.
    root: Vec<u8>,
    target: &'a Path,
    opts: UnpackOptions,
    stats: UnpackStats,
    /// Directories this unpack created, with the metadata to give them at the end (a
    /// read-only directory must still take its entries first).
    made_dirs: Vec<(Vec<Vec<u8>>, Meta)>,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

impl Unpacker<'_> {
    /// Places one entry, named `raw_name` (linking to `link`, for links).
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw_name: &[u8],
        link: Option<&[u8]>,
    ) -> io::Result<()> {
        let header = entry.header();
        let meta = Meta {
            mode: header.mode().unwrap_or(0o644),
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            mtime: header.mtime().unwrap_or(0) as i64,
        };
        let entry_type = header.entry_type();
        let placed = matches!(
            entry_type,
            tar::EntryType::Directory
                | tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Symlink
                | tar::EntryType::Link
        );
        if !placed {
            // Global PAX headers hold nothing to place; devices, FIFOs and unknown kinds
            // are left out before they can make any directory.
            if !entry_type.is_pax_global_extensions() {
                self.stats.skipped.push(String::from_utf8_lossy(raw_name).into_owned());
            }
            return Ok(());
        }
        let path = self.place(raw_name)?;
        let shown = self.show(&path);
        let Some((last, parents)) = path.split_last() else {
            return Err(invalid(format!("{shown}: names nothing")));
        };
        let dir = self.dirs(parents, true)?;
        let existing = stat_at(dir.as_fd(), last).map_err(|e| os(format!("inspecting {shown}"), e))?;
        let existing_dir = existing.as_ref().is_some_and(|s| kind(s) == Kind::Dir);
        if !entry_type.is_dir() && existing_dir {
            return Err(conflict(format!(
                "{shown}: a directory is there; it is not replaced by a file"
            )));
        }
        let ctx = |what: &str| format!("{what} {shown}");
        match entry_type {
            tar::EntryType::Directory => {
                if existing.is_none() {
                    rustix::fs::mkdirat(&dir, last.as_slice(), Mode::from_raw_mode(0o700))
                        .map_err(|e| os(ctx("creating"), e))?;
                    self.made_dirs.push((path.clone(), meta));
                    self.stats.dirs += 1;
                } else if !existing_dir {
                    return Err(conflict(format!(
                        "{shown}: a file is there; it is not replaced by a directory"
                    )));
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut fd = None;
                let tmp = temp_name(|n| {
                    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    fd = Some(rustix::fs::openat(&dir, n, flags, Mode::from_raw_mode(0o600))?);
                    Ok(())
                })
                .map_err(|e| os(ctx("creating"), e))?;
                let Some(fd) = fd else {
                    return Err(os(ctx("creating"), Errno::INVAL));
                };
                let written = (|| {
                    let mut out = std::fs::File::from(fd);
                    let n = io::copy(entry, &mut out)
                        .map_err(|e| io::Error::new(e.kind(), ctx(&format!("writing ({e})"))))?;
                    self.stats.bytes += n;
                    self.finish_node(out.as_fd(), &meta, true)
                        .map_err(|e| os(ctx("setting the metadata of"), e))
                })();
                self.rename_into(dir.as_fd(), &tmp, last, written, &shown)?;
                self.stats.files += 1;
            }
            tar::EntryType::Symlink => {
                let target = link
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| invalid(format!("{shown}: a symlink without a target")))?;
                let tmp = temp_name(|n| rustix::fs::symlinkat(target, &dir, n))
                    .map_err(|e| os(ctx("creating symlink"), e))?;
                let owned = self
                    .finish_symlink(dir.as_fd(), &tmp, &meta)
                    .map_err(|e| os(ctx("setting the metadata of"), e));
                self.rename_into(dir.as_fd(), &tmp, last, owned, &shown)?;
                self.stats.symlinks += 1;
            }
            tar::EntryType::Link => {
                let to = link.ok_or_else(|| invalid(format!("{shown}: a hard link without a target")))?;
                let to = self.place(to)?;
                let Some((to_last, to_parents)) = to.split_last() else {
                    return Err(invalid(format!("{shown}: a hard link to nothing")));
                };
                let to_dir = self.dirs(to_parents, false)?;
                let tmp = temp_name(|n| rustix::fs::linkat(&to_dir, to_last.as_slice(), &dir, n, AtFlags::empty()))
                    .map_err(|e| os(format!("linking {shown} to {}", self.show(&to)), e))?;
                self.rename_into(dir.as_fd(), &tmp, last, Ok(()), &shown)?;
                self.stats.hard_links += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// The path of an entry below the target's parent: the target's name, then the entry's
    /// names with `.`, empty names and a leading `/` dropped. `..` is refused.
    fn place(&self, raw: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        let mut path = vec![self.root.clone()];
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    return Err(invalid(format!(
                        "{:?} in the copy leads out of {}; nothing is written there",
                        String::from_utf8_lossy(raw),
                        self.target.display()
                    )))
                }
                name => path.push(name.to_vec()),
            }
        }
        Ok(path)
    }

    fn show(&self, path: &[Vec<u8>]) -> String {
        let below: Vec<String> = path[1..]
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        self.target.join(below.join("/")).display().to_string()
    }

    /// Handle on directory `path` below the parent, each step without following anything;
    /// missing directories are made (0755) when `create` is set.
    fn dirs(&self, path: &[Vec<u8>], create: bool) -> io::Result<OwnedFd> {
        let mut cur = rustix::io::dup(&self.parent).map_err(|e| os("opening the destination".into(), e))?;
        for (depth, name) in path.iter().enumerate() {
            let flags = OFlags::DIRECTORY | OFlags::RDONLY;
            cur = match open_at(cur.as_fd(), name, flags) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    rustix::fs::mkdirat(&cur, name.as_slice(), Mode::from_raw_mode(0o755))
                        .map_err(|e| os(format!("creating {}", self.show(&path[..=depth])), e))?;
                    open_at(cur.as_fd(), name, flags)
                        .map_err(|e| os(format!("opening {}", self.show(&path[..=depth])), e))?
                }
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    return Err(conflict(format!(
                        "{}: not a directory (a symlink in a copy is never followed)",
                        self.show(&path[..=depth])
                    )))
                }
                Err(e) => return Err(os(format!("opening {}", self.show(&path[..=depth])), e)),
            };
        }
        Ok(cur)
    }

    /// Owner (when asked), mode without setuid/setgid, and mtime of a new file or directory.
    fn finish_node(&self, fd: BorrowedFd<'_>, meta: &Meta, file: bool) -> Result<(), Errno> {
        if self.opts.owners {
            own(rustix::fs::fchown(fd, Some(uid(meta)), Some(gid(meta))))?;
        }
        let keep = if file { 0o1777 } else { 0o3777 };
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & keep))?;
        rustix::fs::futimens(fd, &times(meta.mtime))
    }

    fn finish_symlink(&self, dir: BorrowedFd<'_>, name: &[u8], meta: &Meta) -> Result<(), Errno> {
        if self.opts.owners {
            own(rustix::fs::chownat(
                dir,
                name,
                Some(uid(meta)),
                Some(gid(meta)),
                AtFlags::SYMLINK_NOFOLLOW,
            ))?;
        }
        rustix::fs::utimensat(dir, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
    }

    /// Renames the finished temporary entry `tmp` over `name`, or removes it if making it
    /// failed.
    fn rename_into(
        &self,
        dir: BorrowedFd<'_>,
        tmp: &[u8],
        name: &[u8],
        made: io::Result<()>,
        shown: &str,
    ) -> io::Result<()> {
        let result = made
            .and_then(|()| rustix::fs::renameat(dir, tmp, dir, name).map_err(|e| os(format!("placing {shown}"), e)));
        // Also after a rename that succeeded without effect: a link renamed over another
        // name of the same file leaves both names (rename(2)).
        let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
        result
    }

    /// Gives the directories this unpack made their metadata, deepest first.
    fn finish_dirs(&mut self) -> io::Result<()> {
        for (path, meta) in self.made_dirs.iter().rev() {
            let fd = self.dirs(path, false)?;
            self.finish_node(fd.as_fd(), meta, false)
                .map_err(|e| os(format!("setting the metadata of {}", self.show(path)), e))?;
        }
        Ok(())
    }
}

fn uid(meta: &Meta) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(meta.uid)
}

fn gid(meta: &Meta) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(meta.gid)
}

/// An ownership change this process may not make leaves the entry its own, as with `cp -a`
/// run by an ordinary user.
fn own(result: Result<(), Errno>) -> Result<(), Errno> {
    match result {
        Err(Errno::PERM) => Ok(()),
        other => other,
    }
}

fn times(mtime: i64) -> Timestamps {
    let at = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: at,
        last_modification: at,
    }
}

fn os(context: String, e: Errno) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn conflict(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, message)
}

fn bad_tar(target: &Path, e: io::Error) -> io::Error {
    invalid(format!(
        "the copy for {} is not a well-formed tar: {e}",
        target.display()
    ))
}
