//! Patches on a host-directory root stay inside it: symlinks planted in the rootfs
//! (absolute, `../..`, to files and to directories outside) and hard links to outside files
//! never make a patch read or write anything outside. The reference only checks paths
//! lexically; these would escape it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_rootfs::apply_to_host_dir;
use msb_types::Patch;
use std::os::unix::fs::symlink;
use std::path::Path;

/// A snapshot of everything below `dir`: paths, kinds, contents.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else {
                format!("{:?}", std::fs::read(&p).unwrap())
            };
            out.push(format!("{} {what}", p.display()));
        }
    }
    out.sort();
    out
}

struct World {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

/// A rootfs full of traps, beside an `outside` directory that must never change.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("etc")).unwrap();
    std::fs::write(outside.join("etc/passwd"), "host secret").unwrap();
    std::fs::write(outside.join("file"), "outside file").unwrap();
    std::fs::create_dir_all(root.join("real")).unwrap();
    symlink(outside.join("etc"), root.join("etc")).unwrap(); // absolute, out
    symlink("../outside", root.join("up")).unwrap(); // relative, out
    symlink("../../outside/file", root.join("real/leak")).unwrap(); // file, out
    symlink(outside.join("etc"), root.join("real/etclink")).unwrap();
    std::fs::hard_link(outside.join("file"), root.join("hardlink")).unwrap();
    World {
        _tmp: tmp,
        root,
        outside,
    }
}

#[test]
fn symlinks_in_the_rootfs_never_lead_a_patch_outside() {
    let attempts: Vec<(Patch, Option<&str>)> = vec![
        (
            Patch::text("/etc/passwd", "pwned").replacing(),
            Some("parent is not a directory: '/etc' (symlink)"),
        ),
        (
            Patch::text("/up/etc/passwd", "pwned").replacing(),
            Some("'/up' (symlink)"),
        ),
        (Patch::mkdir("/etc/newdir"), Some("'/etc' (symlink)")),
        (
            Patch::copy_dir("/usr", "/up/copied").replacing(),
            Some("'/up' (symlink)"),
        ),
        (
            Patch::symlink("x", "/real/etclink/passwd").replacing(),
            Some("'/real/etclink' (symlink)"),
        ),
        (
            Patch::append("/real/leak", "pwned"),
            Some("not a regular file (symlink)"),
        ),
        (Patch::append("/etc/passwd", "pwned"), Some("file not found")),
        // Replacing the link itself is allowed and touches only the link.
        (Patch::text("/real/leak", "mine").replacing(), None),
        (Patch::remove("/etc"), None),
        // Removing below a symlink is refused like every other patch there, not ignored.
        (Patch::remove("/up/file"), Some("'/up' (symlink)")),
        (Patch::remove("/real/etclink/passwd"), Some("'/real/etclink' (symlink)")),
    ];
    for (patch, error) in attempts {
        let w = world();
        let before = snapshot(&w.outside);
        let result = apply_to_host_dir(&w.root, std::slice::from_ref(&patch), 0);
        match (result, error) {
            (Err(e), Some(fragment)) => assert!(e.to_string().contains(fragment), "{patch:?}: {e}"),
            (Ok(()), None) => {}
            (got, want) => panic!("{patch:?}: got {got:?}, want error {want:?}"),
        }
        assert_eq!(
            snapshot(&w.outside),
            before,
            "{patch:?} changed something outside the root"
        );
    }
}

#[test]
fn replacing_a_symlink_or_removing_one_never_touches_its_target() {
    let w = world();
    let before = snapshot(&w.outside);
    let patches = [
        Patch::text("/real/leak", "mine").replacing(),
        Patch::remove("/etc"),
        Patch::remove("/up"),
    ];
    apply_to_host_dir(&w.root, &patches, 0).unwrap();
    assert_eq!(std::fs::read_to_string(w.root.join("real/leak")).unwrap(), "mine");
    assert!(!w.root.join("etc").exists() && std::fs::symlink_metadata(w.root.join("up")).is_err());
    assert_eq!(snapshot(&w.outside), before);
}

#[test]
fn hard_links_to_outside_files_are_replaced_not_written_through() {
    let w = world();
    let patches = [Patch::append("/hardlink", " + appended")];
    apply_to_host_dir(&w.root, &patches, 0).unwrap();
    assert_eq!(
        std::fs::read_to_string(w.root.join("hardlink")).unwrap(),
        "outside file + appended"
    );
    assert_eq!(std::fs::read_to_string(w.outside.join("file")).unwrap(), "outside file");
    apply_to_host_dir(&w.root, &[Patch::text("/hardlink", "new").replacing()], 0).unwrap();
    assert_eq!(std::fs::read_to_string(w.outside.join("file")).unwrap(), "outside file");
}

#[test]
fn a_directory_swapped_for_a_symlink_after_checking_is_not_followed() {
    // The patches are checked, then /d is swapped for a symlink to outside, then written:
    // the write goes through handles opened name by name, so it lands inside the root.
    let w = world();
    std::fs::create_dir(w.root.join("d")).unwrap();
    let mut host = msb_rootfs::HostRoot::open(&w.root).unwrap();
    let upper = msb_rootfs::build_upper(&[Patch::text("/d/passwd", "x")], &mut host, 0).unwrap();
    std::fs::remove_dir(w.root.join("d")).unwrap();
    symlink(w.outside.join("etc"), w.root.join("d")).unwrap();
    let before = snapshot(&w.outside);
    host.apply(&upper).unwrap();
    assert_eq!(snapshot(&w.outside), before);
    assert!(std::fs::symlink_metadata(w.root.join("d")).unwrap().is_dir());
    assert_eq!(std::fs::read_to_string(w.root.join("d/passwd")).unwrap(), "x");
}
