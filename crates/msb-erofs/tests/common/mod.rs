//! Shared helpers for the integration tests: building tars, converting, checking
//! with erofs-utils, mounting, and snapshotting trees for comparison.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fixture;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use msb_erofs::{FileKind, Reader, WriteOptions, WriteStats};
use sha2::{Digest, Sha256};

/// Deterministic pseudo-random bytes (xorshift), so fixtures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A tar builder with terse helpers for each entry kind.
pub struct TarBuf {
    pub b: tar::Builder<Vec<u8>>,
}

pub const MTIME: u64 = 1_700_000_000;

impl TarBuf {
    pub fn new() -> Self {
        TarBuf {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(size);
        h
    }

    pub fn pax(&mut self, recs: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    pub fn file_full(&mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64, mtime: u64) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.file_full(path, data, 0o644, 0, 0, MTIME)
    }

    pub fn file_mode(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.file_full(path, data, mode, 0, 0, MTIME)
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn dev(&mut self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, 0o644, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// A PAX 1.0 sparse file: `segs` are (offset, data) in ascending order.
    pub fn sparse(&mut self, path: &str, real_size: u64, segs: &[(u64, Vec<u8>)]) -> &mut Self {
        let real = real_size.to_string();
        self.pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", path.as_bytes()),
            ("GNU.sparse.realsize", real.as_bytes()),
        ]);
        let mut map = format!("{}\n", segs.len());
        for (off, d) in segs {
            map.push_str(&format!("{off}\n{}\n", d.len()));
        }
        let mut data = map.into_bytes();
        data.resize(data.len().div_ceil(512) * 512, 0);
        for (_, d) in segs {
            data.extend_from_slice(d);
        }
        // GNU tar only honours PAX sparse records on POSIX (ustar) headers.
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        let placeholder = format!("GNUSparseFile.0/{}", path.rsplit('/').next().unwrap());
        self.b.append_data(&mut h, placeholder, &data[..]).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// Converts a tar held in memory into an image file inside `dir`, checked by fsck.
pub fn convert(tar: &[u8], dir: &Path, name: &str) -> (PathBuf, WriteStats) {
    convert_with(tar, dir, name, &WriteOptions::default())
}

pub fn convert_with(tar: &[u8], dir: &Path, name: &str, opts: &WriteOptions) -> (PathBuf, WriteStats) {
    let path = dir.join(name);
    let out = fs::File::create(&path).unwrap();
    let stats = msb_erofs::write_from_tar(tar, out, opts).unwrap();
    assert_eq!(
        stats.bytes_out,
        fs::metadata(&path).unwrap().len(),
        "bytes_out matches file size"
    );
    (path, stats)
}

/// Converts in memory, checks the result with fsck.erofs, returns the image bytes.
pub fn convert_mem(tar: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = convert(tar, dir.path(), "mem.erofs");
    fs::read(path).unwrap()
}

/// Runs erofs-utils' fsck in full-check mode; panics with its output on failure.
pub fn fsck(img: &Path) {
    let out = Command::new("fsck.erofs")
        .arg("--extract")
        .arg(img)
        .output()
        .expect("fsck.erofs is installed");
    assert!(
        out.status.success(),
        "fsck.erofs failed on {}:\n{}{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Extracts an image with fsck.erofs into `dest`.
pub fn fsck_extract(img: &Path, dest: &Path) {
    let out = Command::new("fsck.erofs")
        .arg(format!("--extract={}", dest.display()))
        .arg(img)
        .output()
        .expect("fsck.erofs is installed");
    assert!(
        out.status.success(),
        "fsck.erofs --extract failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A read-only kernel mount of an image, unmounted on drop.
pub struct Mount {
    pub dir: tempfile::TempDir,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Notes that a check is skipped for `why`; with `MSB_REQUIRE_MOUNT=1` (CI, as root) a skip
/// is a failure instead, so nothing is skipped silently where it could run.
pub fn skip(why: &str) {
    assert!(
        std::env::var("MSB_REQUIRE_MOUNT").as_deref() != Ok("1"),
        "MSB_REQUIRE_MOUNT=1 but this check would be skipped: {why}"
    );
    eprintln!("note: skipping: {why}");
}

/// Mounts `img` with the kernel's erofs driver, or returns `None` (with a note) when
/// not root or the kernel lacks erofs. `MSB_REQUIRE_MOUNT=1` turns that into a failure.
pub fn try_mount(img: &Path) -> Option<Mount> {
    let have = is_root() && fs::read_to_string("/proc/filesystems").is_ok_and(|s| s.contains("erofs"));
    if !have {
        skip("the kernel mount check needs root and erofs support");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args(["-t", "erofs", "-o", "loop,ro"])
        .arg(img)
        .arg(dir.path())
        .output()
        .unwrap();
    if !st.status.success() {
        skip(&format!(
            "the kernel mount failed: {}",
            String::from_utf8_lossy(&st.stderr)
        ));
        return None;
    }
    Some(Mount { dir })
}

/// What we compare about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub kind: char,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size for files and symlinks (0 for directories, whose size is fs specific).
    pub size: u64,
    pub mtime: (i64, u32),
    pub sha: Option<String>,
    pub link: Option<Vec<u8>>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub rdev: (u32, u32),
    pub nlink: u64,
    /// First path (in sorted order) of this inode: shows which paths are hard links.
    pub group: String,
}

pub type Snap = BTreeMap<String, Rec>;

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha_of(mut r: impl Read) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

fn finish_groups(snap: &mut Snap, ids: &BTreeMap<String, u64>) {
    let mut first: BTreeMap<u64, String> = BTreeMap::new();
    for (p, id) in ids {
        first.entry(*id).or_insert_with(|| p.clone());
    }
    for (p, rec) in snap.iter_mut() {
        rec.group = first[&ids[p]].clone();
    }
}

/// Snapshot of a directory tree on disk (paths relative to `root`; root itself is "").
pub fn snap_disk(root: &Path) -> Snap {
    let mut snap = Snap::new();
    let mut ids = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let md = fs::symlink_metadata(&full).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        let rdev = md.rdev();
        let rdev = if kind == 'c' || kind == 'b' {
            (
                (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32,
                ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32,
            )
        } else {
            (0, 0)
        };
        let mut xattrs = BTreeMap::new();
        if let Ok(names) = xattr::list(&full) {
            for n in names {
                if let Ok(Some(v)) = xattr::get(&full, &n) {
                    xattrs.insert(n.as_encoded_bytes().to_vec(), v);
                }
            }
        }
        let key = rel.to_string_lossy().into_owned();
        snap.insert(
            key.clone(),
            Rec {
                kind,
                perm: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if kind == 'd' { 0 } else { md.size() },
                mtime: (md.mtime(), md.mtime_nsec() as u32),
                sha: (kind == 'f').then(|| sha_of(fs::File::open(&full).unwrap())),
                link: (kind == 'l').then(|| fs::read_link(&full).unwrap().into_os_string().into_encoded_bytes()),
                xattrs,
                rdev,
                nlink: md.nlink(),
                group: String::new(),
            },
        );
        ids.insert(key, md.ino());
        if kind == 'd' {
            for e in fs::read_dir(&full).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
    }
    finish_groups(&mut snap, &ids);
    snap
}

/// Snapshot of an image as our `Reader` sees it.
pub fn snap_image(img: &Path) -> Snap {
    let mut r = Reader::open(img).unwrap();
    let mut found = Vec::new();
    r.walk(|p, ino| {
        found.push((String::from_utf8_lossy(p).into_owned(), ino.clone()));
        Ok(())
    })
    .unwrap();
    let mut snap = Snap::new();
    let mut ids = BTreeMap::new();
    for (p, ino) in found {
        let kind = match ino.kind {
            FileKind::Dir => 'd',
            FileKind::File => 'f',
            FileKind::Symlink => 'l',
            FileKind::CharDevice => 'c',
            FileKind::BlockDevice => 'b',
            FileKind::Fifo => 'p',
            FileKind::Socket => 's',
        };
        let sha = (kind == 'f').then(|| sha_of(r.open_file(&ino)));
        let link = (kind == 'l').then(|| r.read_link(&ino).unwrap());
        snap.insert(
            p.clone(),
            Rec {
                kind,
                perm: u32::from(ino.perm()),
                uid: ino.uid,
                gid: ino.gid,
                size: if kind == 'd' { 0 } else { ino.size },
                mtime: (ino.mtime, ino.mtime_nsec),
                sha,
                link,
                xattrs: ino.xattrs.iter().cloned().collect(),
                rdev: ino.rdev,
                nlink: u64::from(ino.nlink),
                group: String::new(),
            },
        );
        ids.insert(p, ino.nid);
    }
    finish_groups(&mut snap, &ids);
    snap
}

/// Panics with a readable list of differences between two snapshots.
pub fn assert_same(what: &str, a: &Snap, b: &Snap) {
    let mut diffs = Vec::new();
    for k in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x != y => diffs.push(format!("{k:?}:\n  left  {x:?}\n  right {y:?}")),
            (Some(_), None) => diffs.push(format!("{k:?}: only on the left")),
            (None, Some(_)) => diffs.push(format!("{k:?}: only on the right")),
            _ => {}
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// Applies `f` to every record (to blank out fields a tool does not preserve).
pub fn map_recs(s: &Snap, f: impl Fn(&mut Rec)) -> Snap {
    s.iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            f(&mut v);
            (k.clone(), v)
        })
        .collect()
}

/// Extracts a tar with GNU tar as the reference view (as root: owners and xattrs kept).
pub fn gnu_extract(tar: &[u8], dest: &Path) {
    let tar_path = dest.with_extension("tar");
    fs::write(&tar_path, tar).unwrap();
    fs::create_dir_all(dest).unwrap();
    let out = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "GNU tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
