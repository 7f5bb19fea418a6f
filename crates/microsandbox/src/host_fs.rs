//! Files of a volume, or of a stopped sandbox's directory root, read and written on the
//! host without a VM: `volume.fs()`, `msb.files_at_rest(name)`.
//!
//! Paths are the guest's, resolved as the guest would resolve them: every lookup goes
//! through `openat2(RESOLVE_IN_ROOT)` from a handle on the directory, so an absolute
//! symlink or a `..` a guest left behind stays inside it (the kernel treats the directory as
//! `/`), and the last name of an operation that changes an entry is never followed. The
//! calls are plain system calls on the host, so they are not `async`.

use crate::{MicrosandboxError, MicrosandboxResult};
use msb_protocol::fs::check_path;
use msb_protocol::{FsEntry, FsErrorKind, FsFailure, FsKind};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A directory's files, by guest paths (see the module's notes).
#[derive(Debug, Clone)]
pub struct HostFs {
    root: PathBuf,
}

type FsResult<T> = MicrosandboxResult<T>;

impl HostFs {
    pub(crate) fn new(root: PathBuf) -> HostFs {
        HostFs { root }
    }

    /// The host directory that is `/` here.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The whole contents of file `path`.
    pub fn read(&self, path: &str) -> FsResult<Vec<u8>> {
        let mut all = Vec::new();
        self.open_file(path)?.read_to_end(&mut all).map_err(fail(path))?;
        Ok(all)
    }

    /// File `path`, open for reading (to stream it).
    pub fn open_file(&self, path: &str) -> FsResult<std::fs::File> {
        Ok(self.open_regular(path, OFlags::RDONLY)?.into())
    }

    /// File `path` created or truncated (its missing parents made; a new file 0644), open
    /// for writing (to stream into it).
    pub fn create_file(&self, path: &str) -> FsResult<std::fs::File> {
        if let Some(parent) = Path::new(path).parent() {
            self.mkdir(&parent.to_string_lossy())?;
        }
        let fresh = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        match self.open(path, fresh, Mode::from_raw_mode(0o644)) {
            Ok(fd) => Ok(fd.into()),
            Err(MicrosandboxError::Fs(FsFailure {
                kind: FsErrorKind::AlreadyExists,
                ..
            })) => Ok(self.open_regular(path, OFlags::WRONLY | OFlags::TRUNC)?.into()),
            Err(e) => Err(e),
        }
    }

    /// Opens the regular file at `path` for `flags`, refusing anything else: a device node
    /// or FIFO a guest made must neither reach the host's devices nor block. The entry is
    /// looked at through an `O_PATH` handle and reopened from that very handle, so it
    /// cannot be swapped in between.
    fn open_regular(&self, path: &str, flags: OFlags) -> FsResult<OwnedFd> {
        let handle = self.open(path, OFlags::PATH, Mode::empty())?;
        let stat = rustix::fs::fstat(&handle).map_err(errno(path))?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => return Err(errno(path)(rustix::io::Errno::ISDIR)),
            _ => {
                return Err(invalid(
                    path,
                    "not a regular file (a device, FIFO or socket is not opened)",
                ))
            }
        }
        let again = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle));
        rustix::fs::open(again, flags | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty()).map_err(errno(path))
    }

    /// The contents of file `path` as text (UTF-8).
    pub fn read_to_string(&self, path: &str) -> FsResult<String> {
        String::from_utf8(self.read(path)?).map_err(|_| {
            MicrosandboxError::Fs(FsFailure {
                kind: FsErrorKind::Other,
                message: format!("{path}: not UTF-8 text"),
            })
        })
    }

    /// Creates or replaces file `path` (and its missing parent directories) with `data`.
    pub fn write(&self, path: &str, data: impl AsRef<[u8]>) -> FsResult<()> {
        self.create_file(path)?.write_all(data.as_ref()).map_err(fail(path))
    }

    /// Sets the permission bits of `path` (following a symlink inside the root, as chmod).
    pub fn chmod(&self, path: &str, mode: u32) -> FsResult<()> {
        let fd = self.open(path, OFlags::PATH, Mode::empty())?;
        // fchmod does not take O_PATH handles; the /proc path of the handle does.
        let at = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        std::fs::set_permissions(at, std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777)).map_err(fail(path))
    }

    /// The entries of directory `path`, sorted by name.
    pub fn list(&self, path: &str) -> FsResult<Vec<FsEntry>> {
        let dir = self.open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut entries = Vec::new();
        for item in rustix::fs::Dir::read_from(&dir).map_err(errno(path))? {
            let item = item.map_err(errno(path))?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let stat = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno(path))?;
            entries.push(entry(String::from_utf8_lossy(name).into_owned(), &stat));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The entry at `path` itself (a symlink is not followed).
    pub fn stat(&self, path: &str) -> FsResult<FsEntry> {
        let (dir, name) = self.parent(path)?;
        let stat = match &name {
            Some(name) => rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW),
            None => rustix::fs::fstat(&dir),
        }
        .map_err(errno(path))?;
        Ok(entry(name.unwrap_or_else(|| "/".into()), &stat))
    }

    /// Whether anything is at `path`; only "not found" is `false`.
    pub fn exists(&self, path: &str) -> FsResult<bool> {
        match self.stat(path) {
            Ok(_) => Ok(true),
            Err(MicrosandboxError::Fs(FsFailure {
                kind: FsErrorKind::NotFound,
                ..
            })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates directory `path` and its missing parents (`mkdir -p`, mode 0755).
    pub fn mkdir(&self, path: &str) -> FsResult<()> {
        check(path)?;
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            let (dir, name) = self.parent(&at)?;
            let Some(name) = name else { continue };
            match rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(errno(&at)(e)),
            }
        }
        // What is there now must be a directory (an existing file or symlink is not).
        self.open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .map(drop)
    }

    /// Removes a file, symlink or other non-directory.
    pub fn remove(&self, path: &str) -> FsResult<()> {
        let (dir, name) = self.named_parent(path)?;
        rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()).map_err(errno(path))
    }

    /// Removes directory `path` and everything below it (nothing below is followed).
    pub fn remove_dir(&self, path: &str) -> FsResult<()> {
        let (dir, name) = self.named_parent(path)?;
        msb_rootfs::remove_tree(dir.as_fd(), name.as_bytes()).map_err(errno(path))
    }

    /// Renames `from` to `to`.
    pub fn rename(&self, from: &str, to: &str) -> FsResult<()> {
        let (from_dir, from_name) = self.named_parent(from)?;
        let (to_dir, to_name) = self.named_parent(to)?;
        rustix::fs::renameat(&from_dir, from_name.as_str(), &to_dir, to_name.as_str())
            .map_err(errno(&format!("{from} -> {to}")))
    }

    /// Opens `path`, resolved inside the root.
    pub(crate) fn open(&self, path: &str, flags: OFlags, mode: Mode) -> FsResult<OwnedFd> {
        check(path)?;
        let root = self.root_fd()?;
        rustix::fs::openat2(&root, path, flags | OFlags::CLOEXEC, mode, in_root()).map_err(errno(path))
    }

    /// The directory holding `path` (resolved inside the root) and its last name, `None`
    /// for the root itself.
    pub(crate) fn parent(&self, path: &str) -> FsResult<(OwnedFd, Option<String>)> {
        check(path)?;
        let trimmed = path.trim_end_matches('/');
        let (dir, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
        let root = self.root_fd()?;
        let dir = if dir.is_empty() { "/" } else { dir };
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat2(&root, dir, flags, Mode::empty(), in_root()).map_err(errno(path))?;
        match name {
            "" => Ok((fd, None)),
            "." | ".." => Err(invalid(path, "must name an entry, not . or ..")),
            name => Ok((fd, Some(name.to_string()))),
        }
    }

    fn named_parent(&self, path: &str) -> FsResult<(OwnedFd, String)> {
        match self.parent(path)? {
            (fd, Some(name)) => Ok((fd, name)),
            (_, None) => Err(invalid(path, "the root itself cannot be changed")),
        }
    }

    fn root_fd(&self) -> FsResult<OwnedFd> {
        rustix::fs::open(
            &self.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| MicrosandboxError::io(format!("opening {}", self.root.display()))(e.into()))
    }
}

impl crate::Microsandbox {
    /// The files of sandbox `name` while it is not running, read and written on the host:
    /// possible for a directory root only. A running sandbox's files are reached through its
    /// guest (`connect(name).fs()`), so the two never race; an image or disk root's files
    /// live in a filesystem image only its VM mounts, and the error says to start it.
    pub async fn files_at_rest(&self, name: &str) -> MicrosandboxResult<HostFs> {
        let record = crate::lifecycle::get(self.paths(), name)?;
        if record.state == msb_store::SandboxState::Running {
            return Err(MicrosandboxError::Config(format!(
                "sandbox '{name}' is running: reach its files through its guest (msb fs, connect(name).fs())"
            )));
        }
        match record.spec::<msb_types::SandboxSpec>()?.root {
            msb_types::RootSpec::Bind(dir) => Ok(HostFs::new(dir)),
            _ => Err(MicrosandboxError::SandboxNotRunning {
                name: name.to_string(),
                state: format!(
                    "{} and its files are in a filesystem image only its VM reads",
                    record.state.as_str().to_lowercase()
                ),
            }),
        }
    }
}

/// The directory is `/`; magic links (`/proc/self/…`) are not followed at all.
fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

fn check(path: &str) -> FsResult<()> {
    check_path(path).map_err(MicrosandboxError::Fs)
}

fn invalid(path: &str, why: &str) -> MicrosandboxError {
    MicrosandboxError::Fs(FsFailure {
        kind: FsErrorKind::InvalidPath,
        message: format!("{path}: {why}"),
    })
}

fn fail(path: &str) -> impl FnOnce(std::io::Error) -> MicrosandboxError + '_ {
    move |e| MicrosandboxError::Fs(FsFailure::of_io(path, &e))
}

fn errno(path: &str) -> impl FnOnce(rustix::io::Errno) -> MicrosandboxError + '_ {
    move |e| fail(path)(e.into())
}

fn entry(name: String, stat: &Stat) -> FsEntry {
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => FsKind::File,
        FileType::Directory => FsKind::Dir,
        FileType::Symlink => FsKind::Symlink,
        _ => FsKind::Other,
    };
    FsEntry {
        name,
        kind,
        size: stat.st_size as u64,
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid,
        gid: stat.st_gid,
        modified_ns: stat
            .st_mtime
            .saturating_mul(1_000_000_000)
            .saturating_add(stat.st_mtime_nsec as i64),
        nlink: stat.st_nlink,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_directory_whatever_links_it_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside\n").unwrap();
        std::fs::write(outside.join("secret"), "outside\n").unwrap();
        // Links a guest could leave: absolute, relative upwards, straight at a host path.
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("host")).unwrap();
        let fs = HostFs::new(root.clone());
        assert_eq!(fs.read_to_string("/abs/passwd").unwrap(), "inside\n");
        assert_eq!(fs.read_to_string("/up/etc/passwd").unwrap(), "inside\n");
        assert_eq!(fs.read_to_string("/../../etc/passwd").unwrap(), "inside\n");
        let kind = |r: FsResult<String>| match r {
            Err(MicrosandboxError::Fs(f)) => f.kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(kind(fs.read_to_string("/host/secret")), FsErrorKind::NotFound);
        // Writes through the links stay inside too.
        fs.write("/up/made", "x").unwrap();
        // (The link names a path that does not exist inside: as in the guest, not found.)
        assert!(fs.write("/host/planted", "x").is_err());
        assert!(root.join("made").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        // Changing an entry never follows its last name: the link goes, not its target.
        fs.remove("/host").unwrap();
        assert!(outside.join("secret").is_file());
        std::os::unix::fs::symlink(&outside, root.join("host")).unwrap();
        fs.remove_dir("/etc").unwrap();
        assert!(matches!(fs.remove_dir("/host"), Err(MicrosandboxError::Fs(_))));
        assert!(outside.join("secret").is_file());
    }

    #[test]
    fn the_usual_operations_work_and_fail_by_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = HostFs::new(tmp.path().to_path_buf());
        fs.write("/a/b/c.txt", "hello").unwrap();
        assert_eq!(fs.read("/a/b/c.txt").unwrap(), b"hello");
        let names: Vec<String> = fs.list("/a").unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["b"]);
        assert_eq!(fs.stat("/a/b/c.txt").unwrap().size, 5);
        assert_eq!(fs.stat("/").unwrap().kind, FsKind::Dir);
        fs.rename("/a/b/c.txt", "/a/d.txt").unwrap();
        assert!(!fs.exists("/a/b/c.txt").unwrap());
        assert!(fs.exists("/a/d.txt").unwrap());
        let kind = |r: FsResult<()>| match r {
            Err(MicrosandboxError::Fs(f)) => f.kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(kind(fs.remove("/a")), FsErrorKind::IsADirectory);
        assert_eq!(kind(fs.mkdir("/a/d.txt")), FsErrorKind::NotADirectory);
        assert_eq!(kind(fs.write("relative", "x")), FsErrorKind::InvalidPath);
        assert_eq!(kind(fs.remove("/")), FsErrorKind::InvalidPath);
        // A FIFO (or a device node) a guest made is not opened: no blocking, no devices.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o666),
            0,
        )
        .unwrap();
        assert_eq!(kind(fs.read("/fifo").map(drop)), FsErrorKind::InvalidPath);
        assert_eq!(kind(fs.write("/fifo", "x")), FsErrorKind::InvalidPath);
        fs.remove_dir("/a").unwrap();
        assert!(!fs.exists("/a").unwrap());
    }
}
