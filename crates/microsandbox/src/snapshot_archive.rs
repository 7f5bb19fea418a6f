//! Snapshots as single files: `msb snapshot save SNAP FILE.tar.zst` and `load`. The archive
//! is a zstd-compressed flat tar ([`msb_rootfs::unpack_flat`]) of the snapshot's files, its
//! description first. A loaded archive is untrusted: the description comes first and is
//! small, and must describe a sandbox a snapshot can capture; then only the files that
//! snapshot has are taken, none larger than that sandbox's RAM or disks allow; nothing
//! appears among the snapshots until all of it has been read.

use crate::snapshots::{read_info, write_info, INFO_FILE};
use crate::{MicrosandboxError, MicrosandboxResult, SnapshotInfo, Snapshots};
use msb_boot::saved::{create_private, MEMORY_FILE};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// The largest description read.
const MAX_INFO: u64 = 1 << 20;
/// What a saved guest may hold beyond its RAM (device state, the stream's framing).
const MEMORY_SLACK: u64 = 256 << 20;
/// zstd's level: fast, and guest memory and a mostly empty disk compress well at it.
const LEVEL: i32 = 3;

impl Snapshots {
    /// Writes snapshot `name` to `file` (a new file, owner-only) as a zstd-compressed tar.
    pub fn save(&self, name: &str, file: &Path) -> MicrosandboxResult<()> {
        self.get(name)?;
        let dir = self.paths().snapshot_dir(name);
        let io = |what: String| MicrosandboxError::io(what);
        let info = read_info(&dir)?;
        let out = create_private(file).map_err(io(format!("creating {}", file.display())))?;
        let written = (|| {
            let mut tar = tar::Builder::new(zstd::Encoder::new(out, LEVEL)?);
            let members = member_limits(&info).into_iter().map(|(name, _)| name);
            for member in std::iter::once(INFO_FILE.to_string()).chain(members) {
                let path = dir.join(&member);
                if path.is_file() {
                    tar.append_path_with_name(&path, &member)?;
                }
            }
            tar.into_inner()?.finish()?.sync_all()
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(file);
            io(format!("writing {}", file.display()))(e)
        })
    }

    /// Reads the snapshot archive `file` as snapshot `name` (by default, the name it was
    /// saved under).
    pub fn load(&self, file: &Path, name: Option<&str>) -> MicrosandboxResult<SnapshotInfo> {
        let parent = self.ensure_dir()?;
        // A name no other load uses, in this process or another (not a snapshot's name).
        static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let load = LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = parent.join(format!(".loading-{}-{load}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(MicrosandboxError::io(format!("creating {}", staging.display())))?;
        let loaded = unpack(file, &staging).and_then(|()| {
            let mut info = read_info(&staging)?;
            if !staging.join(MEMORY_FILE).is_file() {
                return Err(invalid(file, "it holds no saved guest"));
            }
            if let Some(name) = name {
                info.name = name.into();
            }
            crate::snapshots::valid_name(&info.name)?;
            let target = self.paths().snapshot_dir(&info.name);
            if target.exists() {
                return Err(MicrosandboxError::SnapshotExists(info.name));
            }
            std::fs::remove_file(staging.join(INFO_FILE))
                .map_err(MicrosandboxError::io(format!("rewriting {}", staging.display())))?;
            write_info(&staging, &info)?;
            std::fs::rename(&staging, &target)
                .map_err(MicrosandboxError::io(format!("keeping {}", target.display())))?;
            Ok(info)
        });
        if loaded.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        loaded
    }
}

fn invalid(file: &Path, why: &str) -> MicrosandboxError {
    MicrosandboxError::InvalidArgument(format!("{} is not a snapshot archive: {why}", file.display()))
}

/// Unpacks the snapshot archive `file` into the empty directory `dir`.
fn unpack(file: &Path, dir: &Path) -> MicrosandboxResult<()> {
    let input = std::fs::File::open(file).map_err(MicrosandboxError::io(format!("opening {}", file.display())))?;
    let decoder = zstd::Decoder::new(input).map_err(|e| invalid(file, &e.to_string()))?;
    let description = (INFO_FILE.to_string(), MAX_INFO);
    msb_rootfs::unpack_flat(decoder, dir, description, |dir| {
        read_info(dir)
            .and_then(|info| crate::snapshot_spec::restorable(&info).map(|()| member_limits(&info)))
            .map_err(|e| msb_rootfs::FlatError(e.to_string()))
    })
    .map_err(|e| invalid(file, &e.0))
}

/// The files the archive of snapshot `info` holds besides its description, in the order
/// they are written, each with the largest size a loaded one may have.
fn member_limits(info: &SnapshotInfo) -> Vec<(String, u64)> {
    let ram = u64::from(info.spec.resources.memory_mib) << 20;
    let upper = u64::from(info.spec.upper_size_mib) << 20;
    let mut members = vec![
        (MEMORY_FILE.to_string(), ram + MEMORY_SLACK),
        (msb_boot::UPPER_FILE.to_string(), upper),
    ];
    members.extend(info.disks.iter().map(|d| (d.file.clone(), d.bytes)));
    members
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The unit in which the archive's reader writes zeros as holes.
    const BLOCK: usize = 64 << 10;

    /// A zstd tar of `entries`: (name, kind, bytes).
    fn archive(dir: &Path, entries: &[(&str, tar::EntryType, &[u8])]) -> std::path::PathBuf {
        let path = dir.join("a.tar.zst");
        let mut tar = tar::Builder::new(zstd::Encoder::new(std::fs::File::create(&path).unwrap(), 1).unwrap());
        for (name, kind, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/passwd").unwrap();
            }
            // Raw names: the builder's own checks would refuse the hostile ones.
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            tar.append(&header, *bytes).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    /// The description of a snapshot of a sandbox with root `root`, 64 MiB of RAM and a
    /// 1 MiB upper.
    fn description(root: msb_types::RootSpec) -> Vec<u8> {
        described(root, |_| {})
    }

    /// [`description`], changed by `edit`.
    fn described(root: msb_types::RootSpec, edit: impl FnOnce(&mut SnapshotInfo)) -> Vec<u8> {
        let mut spec = msb_types::SandboxSpec::new("src", root);
        spec.resources.memory_mib = 64;
        spec.upper_size_mib = 1;
        let mut info = SnapshotInfo {
            name: "snap".into(),
            sandbox: "src".into(),
            created_at: 0,
            image: "img".into(),
            memory_bytes: 5,
            disk_bytes: 0,
            save_ms: 0,
            build: "b".into(),
            spec,
            disks: Vec::new(),
        };
        edit(&mut info);
        serde_json::to_vec(&info).unwrap()
    }

    /// Mounts a writable disk at /data and names its saved copy `file`, of `bytes`.
    fn with_disk(file: &str, bytes: u64) -> impl FnOnce(&mut SnapshotInfo) + '_ {
        move |info| {
            info.spec.mounts.push(msb_types::Mount::Disk {
                image: "/disks/data.img".into(),
                guest: "/data".into(),
                readonly: false,
            });
            info.disks.push(crate::SavedDisk {
                mount: 0,
                file: file.into(),
                bytes,
            });
        }
    }

    #[test]
    fn only_a_snapshots_own_files_are_unpacked_and_zeros_become_holes() {
        let dir = tempfile::tempdir().unwrap();
        let mut upper = vec![0u8; 4 * BLOCK];
        upper[BLOCK + 7] = 1;
        let info = described(
            msb_types::RootSpec::Oci("img".into()),
            with_disk("mount-0.raw", 2 * BLOCK as u64),
        );
        let file = archive(
            dir.path(),
            &[
                (INFO_FILE, tar::EntryType::Regular, &info),
                (MEMORY_FILE, tar::EntryType::Regular, b"guest"),
                (msb_boot::UPPER_FILE, tar::EntryType::Regular, &upper),
                ("mount-0.raw", tar::EntryType::Regular, b"volume"),
            ],
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack(&file, &out).unwrap();
        assert_eq!(std::fs::read(out.join(MEMORY_FILE)).unwrap(), b"guest");
        assert_eq!(std::fs::read(out.join("mount-0.raw")).unwrap(), b"volume");
        assert_eq!(std::fs::read(out.join(msb_boot::UPPER_FILE)).unwrap(), upper);
        let blocks =
            std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(out.join(msb_boot::UPPER_FILE)).unwrap());
        assert!(
            blocks * 512 <= 2 * BLOCK as u64,
            "{blocks} blocks: the zeros were written"
        );
    }

    #[test]
    fn hostile_archives_are_refused_and_write_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let info = description(msb_types::RootSpec::Oci("img".into()));
        let bound = description(msb_types::RootSpec::Bind("/home/u".into()));
        let info_entry = (INFO_FILE, tar::EntryType::Regular, info.as_slice());
        let too_big = vec![1u8; (1 << 20) + 1];
        let oci = || msb_types::RootSpec::Oci("img".into());
        let disk = described(oci(), with_disk("mount-0.raw", 4));
        let disk_entry = (INFO_FILE, tar::EntryType::Regular, disk.as_slice());
        let escaping = described(oci(), with_disk("../../etc/passwd", 4));
        let unsaved = described(oci(), |info| {
            with_disk("mount-0.raw", 4)(info);
            info.disks.clear();
        });
        type Entries<'a> = &'a [(&'a str, tar::EntryType, &'a [u8])];
        let cases: [(Entries, &str); 13] = [
            (
                &[info_entry, ("mount-0.raw", tar::EntryType::Regular, b"x")],
                "not a snapshot archive",
            ),
            (
                &[disk_entry, ("mount-0.raw", tar::EntryType::Regular, b"12345")],
                "longer than",
            ),
            (&[(INFO_FILE, tar::EntryType::Regular, &escaping)], "not one msb took"),
            (&[(INFO_FILE, tar::EntryType::Regular, &unsaved)], "not one msb took"),
            (
                &[("../escape", tar::EntryType::Regular, b"x")],
                "not a snapshot archive",
            ),
            (
                &[("/etc/evil", tar::EntryType::Regular, b"x")],
                "not a snapshot archive",
            ),
            (
                &[info_entry, (MEMORY_FILE, tar::EntryType::Symlink, b"")],
                "not a snapshot archive",
            ),
            (
                &[info_entry, ("sub/memory.vm", tar::EntryType::Regular, b"x")],
                "not a snapshot archive",
            ),
            (
                &[
                    info_entry,
                    (MEMORY_FILE, tar::EntryType::Regular, b"a"),
                    (MEMORY_FILE, tar::EntryType::Regular, b"b"),
                ],
                "twice",
            ),
            (&[(MEMORY_FILE, tar::EntryType::Regular, b"a")], "does not come first"),
            (&[(INFO_FILE, tar::EntryType::Regular, &bound)], "only image roots"),
            (
                &[info_entry, (msb_boot::UPPER_FILE, tar::EntryType::Regular, &too_big)],
                "longer than",
            ),
            (&[(INFO_FILE, tar::EntryType::Regular, &too_big)], "longer than"),
        ];
        for (i, (entries, why)) in cases.iter().enumerate() {
            let file = archive(dir.path(), entries);
            let out = dir.path().join(format!("out{i}"));
            std::fs::create_dir(&out).unwrap();
            let refused = unpack(&file, &out);
            assert!(
                matches!(&refused, Err(MicrosandboxError::InvalidArgument(e)) if e.contains(why)),
                "case {i}: {refused:?}"
            );
        }
        assert!(!dir.path().join("escape").exists());
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, b"not zstd at all").unwrap();
        std::fs::create_dir(dir.path().join("g")).unwrap();
        assert!(unpack(&garbage, &dir.path().join("g")).is_err());
    }
}
