//! Removing a tree deeper than the open-file limit (as a guest can leave in a directory
//! root or volume): nothing recursive, a bounded number of descriptors, nothing followed.
//! Its own test binary: it lowers the process's open-file limit.

#![allow(clippy::unwrap_used)]

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::os::fd::AsFd;

#[test]
fn a_tree_deeper_than_the_open_file_limit_is_removed_and_nothing_outside_is_touched() {
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"keep").unwrap();
    let root = rustix::fs::open(base.path(), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    // 3,000 levels, each with a file, a symlink out of the tree and (every 100) a sibling
    // directory, made with *at calls since the path is far longer than PATH_MAX.
    let mut dir = rustix::fs::open(base.path(), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    rustix::fs::mkdirat(&dir, "deep", Mode::from_raw_mode(0o755)).unwrap();
    dir = rustix::fs::openat(&dir, "deep", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    for i in 0..3000 {
        let file = rustix::fs::openat(&dir, "f", OFlags::CREATE | OFlags::WRONLY, Mode::from_raw_mode(0o644)).unwrap();
        drop(file);
        rustix::fs::symlinkat(outside.as_os_str(), &dir, "out").unwrap();
        if i % 100 == 0 {
            rustix::fs::mkdirat(&dir, "side", Mode::from_raw_mode(0o755)).unwrap();
        }
        rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(&dir, "d", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    }
    drop(dir);
    let old = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(256),
            maximum: old.maximum,
        },
    )
    .unwrap();
    let removed = msb_rootfs::remove_tree(root.as_fd(), b"deep");
    setrlimit(Resource::Nofile, old).unwrap();
    removed.unwrap();
    assert!(rustix::fs::statat(&root, "deep", AtFlags::SYMLINK_NOFOLLOW).is_err());
    assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
}
