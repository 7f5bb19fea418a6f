//! The kernel's view: images are loop-mounted (root only), read back with std::fs and
//! xattr syscalls, written to, unmounted and checked by `e2fsck -fn` again; one is used
//! as an overlayfs upper layer. Without root these tests skip with a message, unless
//! `MSB_REQUIRE_MOUNT=1`, which makes that a failure.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use msb_ext4::{Data, Dir, File, Metadata, Node, SpecialKind};

/// Whether this process may mount; panics when mounting is required but impossible.
fn can_mount() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    assert!(
        std::env::var("MSB_REQUIRE_MOUNT").as_deref() != Ok("1"),
        "MSB_REQUIRE_MOUNT=1 but not running as root: the mount tests cannot run"
    );
    eprintln!("skipping: loop mounts need root (MSB_REQUIRE_MOUNT=1 turns this into a failure)");
    false
}

/// A mount that is undone when dropped.
struct Mounted {
    at: PathBuf,
}

impl Mounted {
    fn new(args: &[&str], at: &Path) -> Mounted {
        std::fs::create_dir_all(at).unwrap();
        // A loop device released by a previous unmount can take a moment to go away.
        let mut tries = 0;
        loop {
            let out = Command::new("mount").args(args).arg(at).output().unwrap();
            if out.status.success() {
                return Mounted { at: at.to_path_buf() };
            }
            let err = String::from_utf8_lossy(&out.stderr);
            tries += 1;
            assert!(
                tries < 50 && err.contains("already mounted"),
                "mount {args:?} {}: {err}",
                at.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn image(img: &Path, at: &Path) -> Mounted {
        Mounted::new(&["-t", "ext4", "-o", "loop", img.to_str().unwrap()], at)
    }

    fn unmount(self) {
        drop(self);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Retry while the kernel still holds the mount busy, then detach it lazily so a
        // failing test does not leave a mount behind.
        for _ in 0..20 {
            let out = Command::new("umount").arg("-d").arg(&self.at).output();
            if matches!(&out, Ok(o) if o.status.success()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = Command::new("umount").arg("-l").arg(&self.at).output();
        eprintln!("umount {} needed a lazy unmount: {out:?}", self.at.display());
    }
}

/// `lgetxattr`, or `None` when the attribute is absent.
fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: both strings are NUL-terminated and outlive the call; buf is writable for its length.
    let len = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

fn with_meta(node: Node, m: Metadata) -> Node {
    match node {
        Node::File(mut f) => {
            f.meta = m;
            Node::File(f)
        }
        Node::Dir(mut d) => {
            d.meta = m;
            Node::Dir(d)
        }
        Node::Symlink { xattrs, target, .. } => Node::Symlink {
            meta: m,
            xattrs,
            target,
        },
        Node::Special { xattrs, kind, .. } => Node::Special { meta: m, xattrs, kind },
    }
}

fn acl_xattr() -> Vec<u8> {
    // user::rw-, user:1000:r--, group::r--, mask::r--, other::--- in getxattr format.
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, 1000),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

#[test]
fn kernel_reads_the_tree_and_writes_to_it() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.bin");
    let host_data = noise(5, (3 << 20) + 17);
    std::fs::write(&host, &host_data).unwrap();

    let mut root = Dir::new(Metadata {
        mode: 0o755,
        uid: 1000,
        gid: 1001,
        mtime: NOW,
        mtime_nsec: 42,
    });
    let m = |mode, uid, gid, mtime, mtime_nsec| Metadata {
        mode,
        uid,
        gid,
        mtime,
        mtime_nsec,
    };
    root.insert(&[b"suid"], with_meta(file(0, b"#!/bin/sh\n"), m(0o4755, 0, 0, NOW, 0)))
        .unwrap();
    root.insert(
        &[b"sgid"],
        with_meta(file(0, b"g"), m(0o2710, 70000, 123456, NOW, 999_999_999)),
    )
    .unwrap();
    root.insert(&[b"sticky"], with_meta(dir(0), m(0o1777, 0, 0, -86_400, 500)))
        .unwrap();
    root.insert(
        &[b"old"],
        with_meta(file(0, b"1960"), m(0o644, 1, 2, -315_619_200, 123_456_789)),
    )
    .unwrap();
    root.insert(
        &[b"future"],
        with_meta(file(0, b"2100"), m(0o644, 1, 2, 4_102_444_800, 7)),
    )
    .unwrap();
    root.insert(
        &[b"host"],
        Node::File(File {
            meta: meta(0o640),
            xattrs: Vec::new(),
            data: Data::Host {
                path: host.clone(),
                len: host_data.len() as u64,
            },
            link: None,
        }),
    )
    .unwrap();
    root.insert(&[b"empty"], file(0o644, b"")).unwrap();
    root.insert(&[b"links"], dir(0o755)).unwrap();
    for name in [&b"a"[..], b"b", b"c"] {
        root.insert(&[b"links", name], linked(9, b"one inode")).unwrap();
    }
    let t59 = vec![b'x'; 59];
    let t60 = vec![b'y'; 60];
    let t4095: Vec<u8> = (0..4095).map(|i| b'a' + (i % 26) as u8).collect();
    for t in [&t59, &t60, &t4095] {
        root.insert(&[format!("sym{}", t.len()).as_bytes()], symlink(t))
            .unwrap();
    }
    root.insert(&[b"null"], special(SpecialKind::Char { major: 1, minor: 3 }))
        .unwrap();
    root.insert(
        &[b"nvme"],
        special(SpecialKind::Block {
            major: 259,
            minor: 70000,
        }),
    )
    .unwrap();
    root.insert(&[b"fifo"], special(SpecialKind::Fifo)).unwrap();
    root.insert(&[b"sock"], special(SpecialKind::Socket)).unwrap();
    root.insert(&[b"whiteout"], Node::whiteout()).unwrap();
    root.insert(&[b"opaque"], dir(0o755)).unwrap();
    if let Some(Node::Dir(d)) = root.get_mut(&[b"opaque"]) {
        d.set_opaque(true);
    }
    let big = noise(6, 3500);
    let xattrs = vec![
        (b"user.big".to_vec(), big.clone()),
        (b"user.small".to_vec(), b"s".to_vec()),
        (b"system.posix_acl_access".to_vec(), acl_xattr()),
    ];
    root.insert(
        &[b"xattrs"],
        Node::File(File {
            meta: meta(0o640),
            xattrs,
            data: Data::Bytes(b"x".to_vec()),
            link: None,
        }),
    )
    .unwrap();
    root.insert(&[b"odd"], dir(0o755)).unwrap();
    let odd: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| {
            let mut n = format!("{i}").into_bytes();
            n.extend_from_slice(match i % 4 {
                0 => &b"\n"[..],
                1 => &[0xff, 0x01],
                2 => b" \\ ",
                _ => &[b'q'; 250],
            });
            n
        })
        .collect();
    for n in &odd {
        root.dir_mut(&[b"odd"])
            .unwrap()
            .entries
            .insert(n.clone(), file(0o644, n));
    }

    let img = make(&root, &opts(256 << 20));
    let mnt = tmp.path().join("mnt");
    let mounted = Mounted::image(&img.path, &mnt);

    let md = |p: &str| std::fs::symlink_metadata(mnt.join(p)).unwrap();
    let rootmd = std::fs::metadata(&mnt).unwrap();
    assert_eq!(
        (rootmd.mode() & 0o7777, rootmd.uid(), rootmd.gid()),
        (0o755, 1000, 1001)
    );
    assert_eq!((rootmd.mtime(), rootmd.mtime_nsec()), (NOW, 42));
    for (p, mode, uid, gid, mtime, nsec) in [
        ("suid", 0o104755, 0, 0, NOW, 0),
        ("sgid", 0o102710, 70000, 123456, NOW, 999_999_999),
        ("sticky", 0o41777, 0, 0, -86_400, 500),
        ("old", 0o100644, 1, 2, -315_619_200, 123_456_789),
        ("future", 0o100644, 1, 2, 4_102_444_800, 7),
    ] {
        let s = md(p);
        assert_eq!((s.mode(), s.uid(), s.gid()), (mode, uid, gid), "{p}");
        assert_eq!((s.mtime(), s.mtime_nsec()), (mtime, nsec), "{p}");
        assert_eq!((s.ctime(), s.atime()), (mtime, mtime), "{p}");
    }
    assert_eq!(std::fs::read(mnt.join("host")).unwrap(), host_data);
    assert_eq!(std::fs::read(mnt.join("empty")).unwrap(), b"");
    let (a, b) = (md("links/a"), md("links/c"));
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 3));
    assert_eq!(std::fs::read(mnt.join("links/b")).unwrap(), b"one inode");
    for t in [&t59, &t60, &t4095] {
        let got = std::fs::read_link(mnt.join(format!("sym{}", t.len()))).unwrap();
        assert_eq!(got.as_os_str().as_bytes(), t.as_slice());
    }
    let null = md("null");
    assert!(null.file_type().is_char_device());
    assert_eq!((libc::major(null.rdev()), libc::minor(null.rdev())), (1, 3));
    let nvme = md("nvme");
    assert!(nvme.file_type().is_block_device());
    assert_eq!((libc::major(nvme.rdev()), libc::minor(nvme.rdev())), (259, 70000));
    assert!(md("fifo").file_type().is_fifo());
    assert!(md("sock").file_type().is_socket());
    let wh = md("whiteout");
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "whiteout is 0:0");
    assert_eq!(
        getxattr(&mnt.join("opaque"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(getxattr(&mnt.join("xattrs"), "user.big"), Some(big));
    assert_eq!(getxattr(&mnt.join("xattrs"), "user.small").as_deref(), Some(&b"s"[..]));
    assert_eq!(
        getxattr(&mnt.join("xattrs"), "system.posix_acl_access"),
        Some(acl_xattr())
    );
    let mut listed: Vec<Vec<u8>> = std::fs::read_dir(mnt.join("odd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    listed.sort();
    let mut want = odd.clone();
    want.sort();
    assert!(listed == want, "odd names differ");
    let some = &odd[1];
    let p = mnt.join("odd").join(std::ffi::OsStr::from_bytes(some));
    assert_eq!(&std::fs::read(p).unwrap(), some);

    // Write through the kernel: 1000 new files, deletions, appends, renames, new xattrs.
    let work = mnt.join("new");
    std::fs::create_dir(&work).unwrap();
    for i in 0..1000 {
        std::fs::write(work.join(format!("f{i}")), format!("file {i}").repeat(i % 50 + 1)).unwrap();
    }
    for i in (0..1000).step_by(3) {
        std::fs::remove_file(work.join(format!("f{i}"))).unwrap();
    }
    for i in 0..100 {
        std::fs::write(mnt.join("odd").join(format!("added{i}")), b"x").unwrap();
    }
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(mnt.join("host")).unwrap();
        f.write_all(&noise(7, 5 << 20)).unwrap();
    }
    std::fs::remove_file(mnt.join("links/a")).unwrap();
    std::fs::rename(mnt.join("suid"), mnt.join("sticky/moved")).unwrap();
    std::fs::write(mnt.join("empty"), noise(8, 100_000)).unwrap();
    mounted.unmount();
    fsck(&img.path);

    let again = Mounted::image(&img.path, &mnt);
    assert_eq!(std::fs::read_dir(mnt.join("new")).unwrap().count(), 666);
    assert_eq!(
        std::fs::metadata(mnt.join("host")).unwrap().len(),
        host_data.len() as u64 + (5 << 20)
    );
    assert_eq!(std::fs::metadata(mnt.join("links/b")).unwrap().nlink(), 2);
    again.unmount();
    fsck(&img.path);
}

#[test]
fn empty_default_image_is_writable() {
    if !can_mount() {
        return;
    }
    let img = make(&Dir::new(meta(0o755)), &opts(4 << 30));
    let mnt = img.dir.path().join("mnt");
    let mounted = Mounted::image(&img.path, &mnt);
    std::fs::write(mnt.join("big"), noise(1, 40 << 20)).unwrap();
    std::fs::create_dir_all(mnt.join("a/b/c")).unwrap();
    mounted.unmount();
    fsck(&img.path);
}

#[test]
fn overlayfs_sees_whiteouts_and_opaque_dirs() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    std::fs::create_dir_all(lower.join("opq")).unwrap();
    std::fs::create_dir_all(lower.join("plain")).unwrap();
    std::fs::write(lower.join("keep"), b"lower keep").unwrap();
    std::fs::write(lower.join("gone"), b"hidden by a whiteout").unwrap();
    std::fs::write(lower.join("opq/old"), b"hidden by opacity").unwrap();
    std::fs::write(lower.join("plain/old"), b"visible").unwrap();
    std::fs::write(lower.join("changed"), b"old").unwrap();

    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"upper"], dir(0o755)).unwrap();
    root.insert(&[b"work"], dir(0o755)).unwrap();
    root.insert(&[b"upper", b"gone"], Node::whiteout()).unwrap();
    root.insert(&[b"upper", b"opq"], dir(0o755)).unwrap();
    if let Some(Node::Dir(d)) = root.get_mut(&[b"upper", b"opq"]) {
        d.set_opaque(true);
    }
    root.insert(&[b"upper", b"opq", b"new"], file(0o644, b"upper new"))
        .unwrap();
    root.insert(&[b"upper", b"plain"], dir(0o755)).unwrap();
    root.insert(&[b"upper", b"plain", b"added"], file(0o644, b"added"))
        .unwrap();
    root.insert(&[b"upper", b"changed"], file(0o644, b"new")).unwrap();
    let img = make(&root, &opts(64 << 20));

    let disk = tmp.path().join("disk");
    let disk_mount = Mounted::image(&img.path, &disk);
    let merged = tmp.path().join("merged");
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        disk.join("upper").display(),
        disk.join("work").display()
    );
    let overlay = Mounted::new(&["-t", "overlay", "overlay", "-o", &options], &merged);
    let names = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&merged), ["changed", "keep", "opq", "plain"]);
    assert_eq!(names(&merged.join("opq")), ["new"]);
    assert_eq!(names(&merged.join("plain")), ["added", "old"]);
    assert_eq!(std::fs::read(merged.join("changed")).unwrap(), b"new");
    assert_eq!(std::fs::read(merged.join("keep")).unwrap(), b"lower keep");
    // Writing through the overlay copies up and makes new whiteouts in our image.
    std::fs::write(merged.join("keep"), b"copied up").unwrap();
    std::fs::remove_file(merged.join("plain/old")).unwrap();
    overlay.unmount();
    let wh = std::fs::symlink_metadata(disk.join("upper/plain/old")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    disk_mount.unmount();
    fsck(&img.path);
}
