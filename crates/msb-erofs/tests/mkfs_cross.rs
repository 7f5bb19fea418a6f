//! Cross-check of both sides against erofs-utils: our Reader on images made by
//! `mkfs.erofs` (several layouts), compared with the directory they were made from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::fixture::fixture;
use common::*;
use msb_erofs::{Error, FileKind, Reader};

fn mkfs(args: &[&str], img: &std::path::Path, src: &std::path::Path) {
    let out = Command::new("mkfs.erofs")
        .arg("--quiet")
        .args(args)
        .arg(img)
        .arg(src)
        .output()
        .expect("mkfs.erofs is installed");
    assert!(
        out.status.success(),
        "mkfs.erofs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixture tree as GNU tar extracts it (devices need root; skip without it).
fn source_tree(tmp: &std::path::Path) -> Option<std::path::PathBuf> {
    if !is_root() {
        skip("the mkfs cross-check needs root to extract device nodes");
        return None;
    }
    let src = tmp.join("src");
    gnu_extract(&fixture(), &src);
    // mkfs.erofs 1.5 cannot take a 255-byte file name ("Could not format the device");
    // our side of that is checked in the roundtrip test.
    std::fs::remove_file(src.join("n".repeat(255))).unwrap();
    Some(src)
}

#[test]
fn reader_reads_mkfs_images() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = source_tree(tmp.path()) else {
        return;
    };
    let disk = snap_disk(&src);
    let variants: &[(&str, &[&str])] = &[
        ("default", &[]),
        ("shared-xattrs", &["-x1"]),
        ("no-inline", &["-Enoinline_data"]),
        ("chunks-4k", &["--chunksize=4096"]),
        ("chunks-64k", &["--chunksize=65536", "-x1"]),
    ];
    for (name, args) in variants {
        let img = tmp.path().join(format!("{name}.erofs"));
        let mut all = vec!["--preserve-mtime", "-Uc1b9d5a2-f162-11cf-9ece-0020afc76f16"];
        all.extend_from_slice(args);
        mkfs(&all, &img, &src);
        let snap = snap_image(&img);
        assert_same(
            &format!("mkfs.erofs {args:?} image read by our Reader vs source dir"),
            &snap,
            &disk,
        );
    }
}

#[test]
fn compressed_images_give_metadata_and_a_clear_error_for_data() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = source_tree(tmp.path()) else {
        return;
    };
    let img = tmp.path().join("lz4.erofs");
    mkfs(&["-zlz4hc", "--preserve-mtime"], &img, &src);
    let mut r = Reader::open(&img).unwrap();
    let mut unsupported = 0;
    let mut files = Vec::new();
    r.walk(|p, ino| {
        if ino.kind == FileKind::File {
            files.push((p.to_vec(), ino.clone()));
        }
        Ok(())
    })
    .unwrap();
    for (_, ino) in &files {
        match r.read_file(ino) {
            Ok(_) => {}
            Err(Error::Unsupported(_)) => unsupported += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(unsupported > 0, "the 300 kB file at least is compressed");
    let sh = r.lookup("bin/sh").unwrap().unwrap();
    assert_eq!((sh.perm(), sh.size), (0o755, 70_000));
}

#[test]
fn both_writers_agree_on_the_same_tree() {
    // Our image of the fixture and mkfs.erofs's image of GNU tar's extraction of it,
    // both read back by our Reader, must describe the same tree (implied directories
    // aside, whose times GNU tar sets to the extraction time).
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = source_tree(tmp.path()) else {
        return;
    };
    let theirs_img = tmp.path().join("mkfs.erofs");
    mkfs(&["--preserve-mtime"], &theirs_img, &src);
    let (ours_img, _) = convert(&fixture(), tmp.path(), "ours.erofs");
    let mut ours = snap_image(&ours_img);
    ours.remove(&"n".repeat(255));
    let theirs = snap_image(&theirs_img);
    let implied: Vec<String> = ours
        .iter()
        .filter(|(_, v)| v.kind == 'd' && v.mtime == (0, 0))
        .map(|(k, _)| k.clone())
        .collect();
    let norm = |s: &Snap| {
        map_recs(s, |_| {})
            .into_iter()
            .map(|(k, mut v)| {
                // The root's time changed when the 255-byte name was removed from the source.
                if implied.contains(&k) || v.kind == 'l' || k.is_empty() {
                    v.mtime = (0, 0);
                }
                (k, v)
            })
            .collect::<Snap>()
    };
    assert_same("our image vs mkfs.erofs image", &norm(&ours), &norm(&theirs));
}
