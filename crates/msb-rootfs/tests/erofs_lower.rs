//! The patch engine over real EROFS layers, made from OCI layer tars by `msb-erofs`: OCI
//! whiteouts and opaque markers in the tars are honoured, lower files are read for
//! `Append`, and lower attributes are carried into copied-up entries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::render;
use msb_ext4::{Data, Node};
use msb_rootfs::{build_upper, open_stack, Kind, Lower};
use msb_types::Patch;
use std::path::{Path, PathBuf};

enum E<'a> {
    Dir(&'a str, u32, u32),
    File(&'a str, &'a str, u32),
    Link(&'a str, &'a str),
}

fn layer(dir: &Path, name: &str, entries: &[E]) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_700_000_000);
        match e {
            E::Dir(p, mode, uid) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_uid(u64::from(*uid));
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, text, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(text.len() as u64);
                b.append_data(&mut h, p, text.as_bytes()).unwrap();
            }
            E::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    let tar = b.into_inner().unwrap();
    let out = dir.join(format!("{name}.erofs"));
    let file = std::fs::File::create(&out).unwrap();
    msb_erofs::write_from_tar(tar.as_slice(), file, &Default::default()).unwrap();
    out
}

fn layers(dir: &Path) -> Vec<PathBuf> {
    let bottom = layer(
        dir,
        "bottom",
        &[
            E::Dir("etc/", 0o755, 0),
            E::File("etc/config", "base", 0o644),
            E::File("etc/deleted", "gone", 0o644),
            E::Dir("home/", 0o755, 0),
            E::Dir("home/user/", 0o700, 1000),
            E::File("home/user/.profile", "old", 0o600),
            E::Dir("opt/", 0o755, 0),
            E::File("opt/below", "hidden by opaque", 0o644),
            E::Dir("was-dir/", 0o755, 0),
            E::File("was-dir/inside", "x", 0o644),
        ],
    );
    let top = layer(
        dir,
        "top",
        &[
            E::File("etc/config", "top", 0o640),
            E::File("etc/.wh.deleted", "", 0o644),
            E::File("opt/.wh..wh..opq", "", 0o644),
            E::File("opt/above", "kept", 0o644),
            E::File("was-dir", "now a file", 0o644),
            E::Link("etc/link", "config"),
        ],
    );
    vec![bottom, top]
}

#[test]
fn lookups_follow_overlay_rules_over_erofs_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut stack = open_stack(&layers(tmp.path())).unwrap();
    let kind = |s: &mut msb_rootfs::Stack<_>, p: &[&[u8]]| s.entry(p).unwrap().map(|e| e.kind);
    assert_eq!(kind(&mut stack, &[b"etc", b"config"]), Some(Kind::File));
    assert_eq!(
        kind(&mut stack, &[b"etc", b"deleted"]),
        None,
        "whiteout in the top layer"
    );
    assert_eq!(
        kind(&mut stack, &[b"opt", b"below"]),
        None,
        "opaque dir in the top layer"
    );
    assert_eq!(kind(&mut stack, &[b"opt", b"above"]), Some(Kind::File));
    assert_eq!(kind(&mut stack, &[b"was-dir"]), Some(Kind::File));
    assert_eq!(kind(&mut stack, &[b"was-dir", b"inside"]), None, "nothing below a file");
    assert_eq!(kind(&mut stack, &[b"etc", b"link"]), Some(Kind::Symlink));
    let user = stack.entry(&[b"home", b"user"]).unwrap().unwrap();
    assert_eq!((user.meta.mode, user.meta.uid), (0o700, 1000));
    assert!(
        stack.entry(&[b"opt"]).unwrap().unwrap().xattrs.is_empty(),
        "overlay xattrs are not copied up"
    );
    assert_eq!(stack.read_file(&[b"etc", b"config"]).unwrap(), b"top");
}

#[test]
fn patches_over_erofs_layers_copy_up_attributes_and_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let mut stack = open_stack(&layers(tmp.path())).unwrap();
    let patches = [
        Patch::append("/etc/config", "+patched"),
        Patch::text("/home/user/.bashrc", "alias ll='ls -l'"),
        Patch::remove("/etc/link"),
        Patch::text("/etc/deleted", "recreated"),
        Patch::mkdir("/opt"),
    ];
    let upper = build_upper(&patches, &mut stack, 5).unwrap();
    match upper.get(&[b"etc", b"config"]) {
        Some(Node::File(f)) => {
            assert_eq!(f.data, Data::Bytes(b"top+patched".to_vec()));
            assert_eq!(f.meta.mode, 0o640, "the topmost file's mode comes along");
        }
        other => panic!("{other:?}"),
    }
    match upper.get(&[b"home", b"user"]) {
        Some(Node::Dir(d)) => assert_eq!((d.meta.mode, d.meta.uid), (0o700, 1000)),
        other => panic!("{other:?}"),
    }
    assert!(upper.get(&[b"etc", b"link"]).unwrap().is_whiteout());
    assert!(
        upper.get(&[b"opt"]).is_none(),
        "mkdir over an existing lower dir is a no-op"
    );
    let lines = render(&upper);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("/etc/deleted file 644") && l.ends_with("\"recreated\"")),
        "{lines:#?}"
    );
    let err = build_upper(&[Patch::text("/etc/config", "x")], &mut stack, 5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "path exists in image layer: '/etc/config' (set replace to allow)"
    );
    let err = build_upper(&[Patch::append("/etc", "x")], &mut stack, 5).unwrap_err();
    assert!(
        err.to_string()
            .contains("target in lower layer is not a regular file (directory)"),
        "{err}"
    );
}

#[test]
fn a_corrupt_layer_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.erofs");
    std::fs::write(&bad, vec![0xa5u8; 8192]).unwrap();
    let err = open_stack(&[bad]).unwrap_err();
    assert!(err.to_string().contains("bad.erofs"), "{err}");
}
