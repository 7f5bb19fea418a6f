//! `unpack_contained`: a tar from a hostile guest lands inside the target or not at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_rootfs::{unpack_contained, UnpackOptions};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A tar built header by header, names and all written raw (the tar crate's builder
/// refuses `..`, which is the point here).
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn entry(mut self, name: &str, kind: tar::EntryType, link: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, "", 0o644, data)
    }

    fn bytes(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

/// Every path below `dir`, sorted, with a mark of what it is.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for item in fs::read_dir(dir).unwrap() {
            let p = item.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if meta.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn a_tree_lands_with_its_modes_symlinks_empty_dirs_mtimes_and_hard_links() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = RawTar::default()
        .entry(".", tar::EntryType::Directory, "", 0o750, b"")
        .entry("./bin", tar::EntryType::Directory, "", 0o555, b"")
        .entry("./bin/tool", tar::EntryType::Regular, "", 0o755, b"#!/bin/sh\n")
        .entry("./bin/again", tar::EntryType::Link, "./bin/tool", 0o755, b"")
        .entry("./empty", tar::EntryType::Directory, "", 0o700, b"")
        .entry("./etc", tar::EntryType::Symlink, "/etc", 0o777, b"")
        .bytes();
    let target = tmp.path().join("out");
    let stats = unpack_contained(&target, &tar[..], UnpackOptions::default()).unwrap();
    assert_eq!(
        (stats.files, stats.dirs, stats.symlinks, stats.hard_links),
        (1, 3, 1, 1)
    );
    assert_eq!(listing(&target), ["bin", "bin/again", "bin/tool", "empty", "etc"]);
    let mode = |p: &str| fs::symlink_metadata(target.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(
        (mode(""), mode("bin"), mode("bin/tool"), mode("empty")),
        (0o750, 0o555, 0o755, 0o700)
    );
    assert_eq!(fs::read_link(target.join("etc")).unwrap(), Path::new("/etc"));
    let tool = fs::metadata(target.join("bin/tool")).unwrap();
    assert_eq!(tool.ino(), fs::metadata(target.join("bin/again")).unwrap().ino());
    assert_eq!(tool.mtime(), 1_600_000_000);
    assert_eq!(fs::metadata(&target).unwrap().mtime(), 1_600_000_000);
}

#[test]
fn a_single_file_becomes_the_target_and_loses_setuid() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = RawTar::default()
        .entry(".", tar::EntryType::Regular, "", 0o4755, b"payload")
        .bytes();
    let target = tmp.path().join("f");
    unpack_contained(&target, &tar[..], UnpackOptions { owners: true }).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"payload");
    assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o755);
}

#[test]
fn nothing_escapes_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"mine").unwrap();
    let outside_s = outside.to_str().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a parent name", RawTar::default().file("../escaped", b"x").bytes()),
        (
            "a parent name deeper",
            RawTar::default().file("a/../../escaped", b"x").bytes(),
        ),
        (
            "a planted absolute symlink, then a file through it",
            RawTar::default()
                .entry("link", tar::EntryType::Symlink, outside_s, 0o777, b"")
                .file("link/escaped", b"x")
                .bytes(),
        ),
        (
            "a planted relative symlink, then a file through it",
            RawTar::default()
                .entry("up", tar::EntryType::Symlink, "../outside", 0o777, b"")
                .file("up/escaped", b"x")
                .bytes(),
        ),
        (
            "the target itself made a symlink, then a file below it",
            RawTar::default()
                .entry(".", tar::EntryType::Symlink, outside_s, 0o777, b"")
                .file("escaped", b"x")
                .bytes(),
        ),
        (
            "a hard link to a file outside",
            RawTar::default()
                .entry("h", tar::EntryType::Link, "../outside/keep", 0o644, b"")
                .bytes(),
        ),
        (
            "a hard link through a planted symlink",
            RawTar::default()
                .entry("link", tar::EntryType::Symlink, outside_s, 0o777, b"")
                .entry("h", tar::EntryType::Link, "link/keep", 0o644, b"")
                .bytes(),
        ),
    ];
    for (what, tar) in cases {
        let target = tmp.path().join("dest").join("t");
        let _ = fs::remove_dir_all(tmp.path().join("dest"));
        fs::create_dir(tmp.path().join("dest")).unwrap();
        let result = unpack_contained(&target, &tar[..], UnpackOptions::default());
        assert!(result.is_err(), "{what}: was accepted");
        assert_eq!(listing(&outside), ["keep"], "{what}: wrote outside");
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"mine", "{what}");
        assert!(!tmp.path().join("escaped").exists(), "{what}");
        assert!(!tmp.path().join("dest/escaped").exists(), "{what}");
    }
    // An absolute name is a name below the target, not a host path.
    let target = tmp.path().join("abs");
    let tar = RawTar::default().file(&format!("{outside_s}/planted"), b"x").bytes();
    unpack_contained(&target, &tar[..], UnpackOptions::default()).unwrap();
    assert!(target.join(outside.strip_prefix("/").unwrap()).join("planted").exists());
    assert_eq!(listing(&outside), ["keep"]);
}

#[test]
fn long_names_are_read_but_a_huge_one_is_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let long = format!("{0}/{0}/{0}/file", "d".repeat(120));
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    builder.append_data(&mut h, &long, &b"ok"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let target = tmp.path().join("t");
    unpack_contained(&target, &tar[..], UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(target.join(&long)).unwrap(), b"ok");
    // A GNU long-name header claiming 1 TiB: refused from its header, nothing allocated.
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(1 << 40);
    h.set_cksum();
    let mut huge = h.as_bytes().to_vec();
    huge.extend_from_slice(&[b'x'; 4096]);
    let err = unpack_contained(&tmp.path().join("u"), &huge[..], UnpackOptions::default()).unwrap_err();
    assert!(err.to_string().contains("at most 65536 bytes"), "{err}");
}

#[test]
fn devices_and_fifos_are_left_out_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = RawTar::default()
        .entry("deep/er/sda", tar::EntryType::Block, "", 0o666, b"")
        .entry("pipe", tar::EntryType::Fifo, "", 0o666, b"")
        .file("ok", b"fine")
        .bytes();
    let target = tmp.path().join("t");
    let stats = unpack_contained(&target, &tar[..], UnpackOptions::default()).unwrap();
    assert_eq!(stats.skipped.len(), 2);
    // Not even their directories are made.
    assert_eq!(listing(&target), ["ok"]);
}

#[test]
fn an_existing_directory_is_merged_into_and_keeps_its_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("t");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(target.join("old"), b"old").unwrap();
    let tar = RawTar::default()
        .entry(".", tar::EntryType::Directory, "", 0o777, b"")
        .file("new", b"new")
        .bytes();
    unpack_contained(&target, &tar[..], UnpackOptions::default()).unwrap();
    assert_eq!(listing(&target), ["new", "old"]);
    assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o700);
    // A file is not replaced by a directory, nor a directory by a file.
    let tar = RawTar::default()
        .entry("old", tar::EntryType::Directory, "", 0o755, b"")
        .bytes();
    assert!(unpack_contained(&target, &tar[..], UnpackOptions::default()).is_err());
    fs::create_dir(target.join("d")).unwrap();
    let tar = RawTar::default().file("d", b"x").bytes();
    assert!(unpack_contained(&target, &tar[..], UnpackOptions::default()).is_err());
    assert!(target.join("d").is_dir());
}

#[test]
fn garbage_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_contained(&tmp.path().join("t"), &[7u8; 1024][..], UnpackOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not a well-formed tar"), "{err}");
}
