//! Copies between the host and a [`HostFs`] (a volume, or a stopped sandbox's directory
//! root): the same tar packing and contained unpacking as copies with a running guest
//! (`fs_copy`), joined by a pipe between two threads instead of the agent.
//!
//! The guest side is reached through a handle opened inside the root
//! (`RESOLVE_IN_ROOT`) and named by its `/proc/self/fd` path: the walk to it stays inside
//! the root whatever links the guest left, and from there packing and unpacking follow
//! nothing.

use crate::fs_copy::{split_guest, unpacked_report};
use crate::{CopyOptions, CopyReport, HostFs, MicrosandboxError, MicrosandboxResult};
use msb_protocol::tree::{pack, PackOptions};
use msb_rootfs::{unpack_contained, UnpackOptions};
use rustix::fs::{Mode, OFlags};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

impl HostFs {
    /// Copies host file or tree `host` to `path` here, which becomes its copy (missing
    /// parents are made; a directory there is merged into).
    pub fn copy_from_host(
        &self,
        host: impl AsRef<Path>,
        path: &str,
        opts: CopyOptions,
    ) -> MicrosandboxResult<CopyReport> {
        let host = host.as_ref();
        std::fs::symlink_metadata(host).map_err(MicrosandboxError::io(format!("reading {}", host.display())))?;
        let (dir, name) = split_guest(path)?;
        self.mkdir(&dir)?;
        let (_held, target) = self.inside(&dir, &name)?;
        let packed = PackOptions {
            hard_links: opts.hard_links,
        };
        let unpacked = UnpackOptions {
            owners: opts.keep_owners,
        };
        let (stats, _) = piped(
            |out| pack(host, ".", packed, out),
            |tar| unpack_contained(&target, tar, unpacked),
        );
        unpacked_report(&target, stats)
    }

    /// Copies file or tree `path` here to `host`, which becomes its copy (its parent must
    /// exist; a directory there is merged into). Nothing is written outside `host`.
    pub fn copy_to_host(
        &self,
        path: &str,
        host: impl AsRef<Path>,
        opts: CopyOptions,
    ) -> MicrosandboxResult<CopyReport> {
        let host = host.as_ref();
        let (dir, name) = split_guest(path)?;
        let (_held, source) = self.inside(&dir, &name)?;
        let packed = PackOptions {
            hard_links: opts.hard_links,
        };
        let unpacked = UnpackOptions {
            owners: opts.keep_owners,
        };
        let (stats, packing) = piped(
            |out| pack(&source, ".", packed, out),
            |tar| unpack_contained(host, tar, unpacked),
        );
        // A source that cannot be read is the reason, not the empty stream it left.
        packing.map_err(|e| MicrosandboxError::Fs(msb_protocol::FsFailure::of_io(path, &e)))?;
        unpacked_report(host, stats)
    }

    /// File or tree `path` as a tar stream whose entries are named below its last name (as
    /// `docker cp NAME:PATH -` gives it), written to `out`.
    pub fn read_tar(&self, path: &str, out: impl Write) -> MicrosandboxResult<()> {
        let (dir, name) = split_guest(path)?;
        let (_held, source) = self.inside(&dir, &name)?;
        pack(&source, &name, PackOptions::default(), out)
            .map(drop)
            .map_err(|e| MicrosandboxError::Fs(msb_protocol::FsFailure::of_io(path, &e)))
    }

    /// Unpacks tar stream `tar` into directory `dir` here (made if missing); `keep_owners`
    /// keeps the owners the tar names.
    pub fn write_tar(&self, dir: &str, tar: impl Read, keep_owners: bool) -> MicrosandboxResult<CopyReport> {
        self.mkdir(dir)?;
        let (_held, target) = self.inside(dir, ".")?;
        let stats = unpack_contained(&target, tar, UnpackOptions { owners: keep_owners });
        unpacked_report(&target, stats)
    }

    /// A host path for entry `name` of directory `dir` (resolved inside the root), valid
    /// while the returned handle is held; name `.` is the directory itself.
    fn inside(&self, dir: &str, name: &str) -> MicrosandboxResult<(Option<OwnedFd>, PathBuf)> {
        if dir == "/" && name == "." {
            return Ok((None, self.root().to_path_buf()));
        }
        let (parent, last) = match name {
            "." => {
                let (parent, last) = self.parent(dir)?;
                (parent, last.unwrap_or_default())
            }
            name => (
                self.open(dir, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?,
                name.to_string(),
            ),
        };
        let path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(last);
        Ok((Some(parent), path))
    }
}

/// Runs `produce` writing into a pipe on a thread of its own and `consume` reading from it
/// here; both results come back. A consumer that stops early closes the pipe, and the
/// producer then fails with a broken pipe.
fn piped<P, C>(
    produce: impl FnOnce(&mut io::PipeWriter) -> io::Result<P> + Send,
    consume: impl FnOnce(io::PipeReader) -> io::Result<C>,
) -> (io::Result<C>, io::Result<P>)
where
    P: Send,
{
    let (reader, mut writer) = match io::pipe() {
        Ok(ends) => ends,
        Err(e) => return (Err(io::Error::new(e.kind(), e.to_string())), Err(e)),
    };
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let made = produce(&mut writer);
            drop(writer);
            made
        });
        let consumed = consume(reader);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the packing thread panicked")));
        (consumed, produced)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn tree(at: &Path) {
        std::fs::create_dir_all(at.join("d/empty")).unwrap();
        std::fs::write(at.join("d/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(at.join("d/run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::hard_link(at.join("d/run.sh"), at.join("d/again.sh")).unwrap();
        std::os::unix::fs::symlink("run.sh", at.join("d/link")).unwrap();
    }

    fn check_tree(at: &Path) {
        assert!(at.join("d/empty").is_dir());
        assert_eq!(std::fs::read(at.join("d/run.sh")).unwrap(), b"#!/bin/sh\n");
        let mode = std::fs::metadata(at.join("d/run.sh")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750);
        assert_eq!(std::fs::read_link(at.join("d/link")).unwrap(), Path::new("run.sh"));
        let ino = |p: &str| std::fs::metadata(at.join(p)).unwrap().ino();
        assert_eq!(ino("d/run.sh"), ino("d/again.sh"));
    }

    #[test]
    fn trees_round_trip_through_a_directory_root() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, root, back) = (tmp.path().join("src"), tmp.path().join("root"), tmp.path().join("back"));
        std::fs::create_dir_all(&root).unwrap();
        tree(&src);
        let fs = HostFs::new(root.clone());
        let opts = CopyOptions {
            hard_links: true,
            ..CopyOptions::default()
        };
        let report = fs.copy_from_host(&src, "/app/src", opts).unwrap();
        assert_eq!(report.bytes, 10);
        check_tree(&root.join("app/src"));
        fs.copy_to_host("/app/src", &back, opts).unwrap();
        check_tree(&back);
        // The root itself, both ways.
        let whole = tmp.path().join("whole");
        fs.copy_to_host("/", &whole, opts).unwrap();
        check_tree(&whole.join("app/src"));
    }

    #[test]
    fn links_a_guest_left_lead_nowhere_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside, src) = (
            tmp.path().join("root"),
            tmp.path().join("outside"),
            tmp.path().join("src"),
        );
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("f"), "x").unwrap();
        std::fs::write(outside.join("secret"), "host").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("planted")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let fs = HostFs::new(root.clone());
        // Into the link: resolved inside the root, where it names nothing.
        assert!(fs.copy_from_host(&src, "/planted/new", CopyOptions::default()).is_err());
        // Through an upward link: it stops at the root.
        fs.copy_from_host(&src, "/up/got", CopyOptions::default()).unwrap();
        assert!(root.join("got/f").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        // Copying the link out copies the link, not what it points at.
        let out = tmp.path().join("out");
        fs.copy_to_host("/planted", &out, CopyOptions::default()).unwrap();
        assert!(std::fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
        assert!(fs
            .copy_to_host("/planted/secret", tmp.path().join("s"), CopyOptions::default())
            .is_err());
    }

    #[test]
    fn tar_streams_name_entries_below_the_last_name() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        tree(&root.join("srv"));
        let fs = HostFs::new(root.clone());
        let mut tar = Vec::new();
        fs.read_tar("/srv/d", &mut tar).unwrap();
        let names: Vec<String> = tar::Archive::new(tar.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| n == "d" || n.starts_with("d/")), "{names:?}");
        fs.write_tar("/copy", tar.as_slice(), false).unwrap();
        assert!(root.join("copy/d/empty").is_dir());
        assert_eq!(std::fs::read(root.join("copy/d/run.sh")).unwrap(), b"#!/bin/sh\n");
    }
}
