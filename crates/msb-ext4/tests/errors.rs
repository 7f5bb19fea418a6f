//! Bad trees and options fail with errors that name the path and what to do; nothing panics.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use msb_ext4::{Data, Dir, Error, File, Metadata, Node, Options, SpecialKind};

fn fails(root: &Dir, opts: &Options) -> Error {
    match make_unchecked(root, opts) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn tree_with(path: &[&[u8]], node: Node) -> Dir {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"d"], dir(0o755)).unwrap();
    let (last, parents) = path.split_last().unwrap();
    root.dir_mut(parents).unwrap().entries.insert(last.to_vec(), node);
    root
}

#[test]
fn bad_names_are_named() {
    for name in [&b"a/b"[..], b"", b".", b"..", b"nul\0", &[b'x'; 256]] {
        let root = tree_with(&[b"d", name], file(0o644, b""));
        let err = fails(&root, &opts(32 << 20));
        assert!(matches!(err, Error::Name { .. }), "{err}");
        assert!(err.to_string().starts_with("/d/"), "{err}");
        assert!(err.to_string().contains("rename"), "{err}");
    }
}

#[test]
fn too_big_xattrs() {
    let xattrs = vec![(b"user.a".to_vec(), vec![1; 4000]), (b"user.b".to_vec(), vec![2; 4000])];
    let node = Node::File(File {
        meta: meta(0o644),
        xattrs,
        data: Data::Bytes(Vec::new()),
        link: None,
    });
    let err = fails(&tree_with(&[b"d", b"f"], node), &opts(32 << 20));
    assert!(
        matches!(err, Error::XattrsTooLarge { ref path, .. } if path == "/d/f"),
        "{err}"
    );
    let xattrs = vec![(b"weird.ns".to_vec(), b"v".to_vec())];
    let mut root = Dir::new(meta(0o755));
    root.xattrs = xattrs;
    let err = fails(&root, &opts(32 << 20));
    assert!(matches!(err, Error::Xattr { ref path, .. } if path == "/"), "{err}");
    assert!(err.to_string().contains("weird.ns"), "{err}");
}

#[test]
fn host_file_that_changed_size() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("changing");
    std::fs::write(&host, b"twelve bytes").unwrap();
    for recorded in [5u64, 100] {
        let node = Node::File(File {
            meta: meta(0o644),
            xattrs: Vec::new(),
            data: Data::Host {
                path: host.clone(),
                len: recorded,
            },
            link: None,
        });
        let err = fails(&tree_with(&[b"d", b"f"], node), &opts(32 << 20));
        let text = err.to_string();
        assert!(matches!(err, Error::HostChanged { actual: 12, .. }), "{text}");
        assert!(
            text.contains("/d/f") && text.contains(&host.display().to_string()),
            "{text}"
        );
    }
    let node = Node::File(File {
        meta: meta(0o644),
        xattrs: Vec::new(),
        data: Data::Host {
            path: tmp.path().join("missing"),
            len: 1,
        },
        link: None,
    });
    let err = fails(&tree_with(&[b"d", b"f"], node), &opts(32 << 20));
    assert!(matches!(err, Error::HostRead { .. }), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn tree_larger_than_the_image() {
    let root = tree_with(&[b"d", b"huge"], file(0o644, &noise(1, 20 << 20)));
    let err = fails(&root, &opts(16 << 20));
    assert!(
        matches!(err, Error::NoSpace { ref path, .. } if path == "/d/huge"),
        "{err}"
    );
    assert!(err.to_string().contains("larger"), "{err}");
    // Too many inodes for the ratio: 16 MiB / 16 KiB = 1024 inodes.
    let mut root = Dir::new(meta(0o755));
    for i in 0..1100 {
        root.insert(&[format!("{i}").as_bytes()], file(0o644, b"")).unwrap();
    }
    let err = fails(&root, &opts(16 << 20));
    assert!(
        matches!(
            err,
            Error::NoInodes {
                needed: 1111,
                available: 1024,
                ..
            }
        ),
        "{err}"
    );
    // The same tree fits with a denser inode ratio.
    make(
        &root,
        &Options {
            bytes_per_inode: 4096,
            ..opts(16 << 20)
        },
    );
}

#[test]
fn bad_options() {
    let root = Dir::new(meta(0o755));
    for size in [0, (16 << 20) - 1, 17 << 40] {
        assert!(matches!(fails(&root, &opts(size)), Error::Size { .. }), "{size}");
    }
    for bpi in [0, 512, 1 << 30] {
        let err = fails(
            &root,
            &Options {
                bytes_per_inode: bpi,
                ..opts(32 << 20)
            },
        );
        assert!(matches!(err, Error::BytesPerInode { .. }), "{err}");
    }
    for jb in [1, 1023, 20_000_000] {
        let err = fails(
            &root,
            &Options {
                journal_blocks: jb,
                ..opts(32 << 20)
            },
        );
        assert!(matches!(err, Error::JournalSize { .. }), "{err}");
    }
    let err = fails(
        &root,
        &Options {
            hash_seed: [0; 16],
            ..opts(32 << 20)
        },
    );
    assert!(matches!(err, Error::HashSeed), "{err}");
    // A journal bigger than the image.
    let err = fails(
        &root,
        &Options {
            journal_blocks: 8192,
            ..opts(16 << 20)
        },
    );
    assert!(
        matches!(err, Error::NoSpace { ref path, .. } if path == "journal"),
        "{err}"
    );
}

/// Whether an error is the expected kind.
type Check = fn(&Error) -> bool;

#[test]
fn bad_nodes() {
    let o = opts(32 << 20);
    let cases: Vec<(Node, Check)> = vec![
        (special(SpecialKind::Char { major: 4096, minor: 0 }), |e| {
            matches!(e, Error::Device { .. })
        }),
        (
            special(SpecialKind::Block {
                major: 1,
                minor: 1 << 20,
            }),
            |e| matches!(e, Error::Device { .. }),
        ),
        (symlink(&[b'a'; 4096]), |e| {
            matches!(e, Error::SymlinkTarget { len: 4096, .. })
        }),
        (symlink(b"a\0b"), |e| matches!(e, Error::SymlinkTarget { .. })),
        (file(0o10644, b""), |e| matches!(e, Error::Mode { .. })),
        (
            Node::File(File {
                meta: Metadata {
                    mtime_nsec: 1_000_000_000,
                    ..meta(0o644)
                },
                xattrs: Vec::new(),
                data: Data::Bytes(Vec::new()),
                link: None,
            }),
            |e| matches!(e, Error::Nanoseconds { .. }),
        ),
        (
            Node::File(File {
                meta: meta(0o644),
                xattrs: vec![(b"user.a".to_vec(), b"1".to_vec()), (b"user.a".to_vec(), b"2".to_vec())],
                data: Data::Bytes(Vec::new()),
                link: None,
            }),
            |e| matches!(e, Error::Xattr { .. }),
        ),
    ];
    for (node, check) in cases {
        let err = fails(&tree_with(&[b"d", b"n\nx"], node), &o);
        assert!(check(&err), "{err}");
        assert!(err.to_string().starts_with("/d/n\\nx:"), "{err}");
    }
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"lost+found"], file(0o644, b"")).unwrap();
    assert!(matches!(fails(&root, &o), Error::LostFound));
}
