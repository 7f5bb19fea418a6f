//! OCI layer semantics: whiteouts, opaque directories, and the image used for real
//! as an overlayfs lower layer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::process::Command;

use common::*;
use msb_erofs::{FileKind, Reader, WriteOptions};

fn layer() -> Vec<u8> {
    let mut t = TarBuf::new();
    t.dir("etc/", 0o755)
        .file("etc/.wh.removed.conf", b"")
        .file("etc/new.conf", b"new");
    t.dir("var/", 0o755)
        .dir("var/cache/", 0o700)
        .file("var/cache/.wh..wh..opq", b"")
        .file("var/cache/fresh", b"fresh");
    // A whiteout whose parent is only implied, and aufs bookkeeping that is skipped.
    t.file("usr/share/.wh.doc", b"").file(".wh..wh.plnk", b"");
    // Opaque marker before the directory's own entry: the marker must survive it.
    t.file("opt/app/.wh..wh..opq", b"").dir("opt/app/", 0o750);
    t.finish()
}

#[test]
fn whiteouts_and_opaque_dirs_in_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, stats) = convert(&layer(), tmp.path(), "layer.erofs");
    assert_eq!((stats.whiteouts, stats.opaque_dirs, stats.skipped), (2, 2, 1));
    let mut r = Reader::open(&img).unwrap();
    for wh in ["etc/removed.conf", "usr/share/doc"] {
        let ino = r.lookup(wh).unwrap().unwrap_or_else(|| panic!("{wh} missing"));
        assert_eq!(ino.kind, FileKind::CharDevice, "{wh}");
        assert_eq!(ino.rdev, (0, 0));
    }
    for name in [
        "etc/.wh.removed.conf",
        "var/cache/.wh..wh..opq",
        ".wh..wh.plnk",
        "opt/app/.wh..wh..opq",
    ] {
        assert!(r.lookup(name).unwrap().is_none(), "{name} must not be emitted");
    }
    for dir in ["var/cache", "opt/app"] {
        let d = r.lookup(dir).unwrap().unwrap();
        assert_eq!(d.xattr(b"trusted.overlay.opaque"), Some(&b"y"[..]), "{dir}");
    }
    assert_eq!(r.lookup("opt/app").unwrap().unwrap().perm(), 0o750);
    assert!(r
        .lookup("etc")
        .unwrap()
        .unwrap()
        .xattr(b"trusted.overlay.opaque")
        .is_none());

    // Same view through the kernel.
    if let Some(m) = try_mount(&img) {
        let snap = snap_disk(m.dir.path());
        assert_eq!(snap["etc/removed.conf"].kind, 'c');
        assert_eq!(
            snap["var/cache"]
                .xattrs
                .get(&b"trusted.overlay.opaque"[..])
                .map(Vec::as_slice),
            Some(&b"y"[..])
        );
        assert_same("kernel vs Reader", &snap, &snap_image(&img));
    }
}

#[test]
fn whiteouts_can_be_kept_literal() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = WriteOptions {
        oci_whiteouts: false,
        ..WriteOptions::default()
    };
    let (img, _) = convert_with(&layer(), tmp.path(), "literal.erofs", &opts);
    let mut r = Reader::open(&img).unwrap();
    assert_eq!(r.lookup("etc/.wh.removed.conf").unwrap().unwrap().kind, FileKind::File);
}

#[test]
fn overlay_xattrs_from_the_tar_are_dropped_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = TarBuf::new();
    t.pax(&[
        ("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere"),
        ("SCHILY.xattr.user.keep", b"1"),
    ]);
    t.dir("d/", 0o755);
    let tar = t.finish();
    let (img, stats) = convert(&tar, tmp.path(), "x.erofs");
    assert_eq!(stats.dropped_xattrs, 1);
    let d = Reader::open(&img).unwrap().lookup("d").unwrap().unwrap();
    assert_eq!(d.xattrs, vec![(b"user.keep".to_vec(), b"1".to_vec())]);
    let opts = WriteOptions {
        keep_overlay_xattrs: true,
        ..WriteOptions::default()
    };
    let (img, _) = convert_with(&tar, tmp.path(), "y.erofs", &opts);
    let d = Reader::open(&img).unwrap().lookup("d").unwrap().unwrap();
    assert_eq!(d.xattr(b"trusted.overlay.redirect"), Some(&b"/elsewhere"[..]));
}

/// The real use: our image as the upper of two read-only overlayfs lowers.
#[test]
fn overlayfs_honours_whiteouts_and_opaque_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, _) = convert(&layer(), tmp.path(), "layer.erofs");
    let Some(top) = try_mount(&img) else { return };
    // The lower layer, as a plain directory.
    let base = tmp.path().join("base");
    for d in ["etc", "var/cache", "usr/share/doc", "opt/app"] {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    fs::write(base.join("etc/removed.conf"), "old").unwrap();
    fs::write(base.join("etc/kept.conf"), "kept").unwrap();
    fs::write(base.join("var/cache/stale"), "stale").unwrap();
    fs::write(base.join("usr/share/doc/readme"), "doc").unwrap();
    fs::write(base.join("opt/app/old-bin"), "old").unwrap();
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lower = format!("lowerdir={}:{}", top.dir.path().display(), base.display());
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &lower])
        .arg(&merged)
        .output()
        .unwrap();
    if !st.status.success() {
        skip(&format!(
            "the overlayfs mount failed: {}",
            String::from_utf8_lossy(&st.stderr)
        ));
        return;
    }
    let check = || {
        assert!(
            !merged.join("etc/removed.conf").exists(),
            "whiteout hides the lower file"
        );
        assert_eq!(fs::read_to_string(merged.join("etc/kept.conf")).unwrap(), "kept");
        assert_eq!(fs::read_to_string(merged.join("etc/new.conf")).unwrap(), "new");
        assert!(
            !merged.join("usr/share/doc").exists(),
            "whiteout hides the lower directory"
        );
        assert!(
            !merged.join("var/cache/stale").exists(),
            "opaque dir hides lower contents"
        );
        assert!(merged.join("var/cache/fresh").exists());
        assert!(!merged.join("opt/app/old-bin").exists());
    };
    let result = std::panic::catch_unwind(check);
    let _ = Command::new("umount").arg(&merged).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
