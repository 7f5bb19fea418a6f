//! Random small trees: every image passes `e2fsck -fn`, holds as many inodes as the tree
//! has, and `debugfs rdump` gives back the tree (contents, modes, owners, times, symlinks).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use msb_ext4::{Data, Dir, File, Metadata, Node, Options, SpecialKind};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..40).prop_map(|mut n| {
        for b in &mut n {
            if *b == b'/' || *b == 0 {
                *b = b'_';
            }
        }
        if n == b"." || n == b".." || n == b"lost+found" {
            n.push(b'x');
        }
        n
    })
}

fn metadata() -> impl Strategy<Value = Metadata> {
    (
        0u16..=0o7777,
        0u32..100_000,
        0u32..100_000,
        -(1i64 << 31)..(1i64 << 33),
        0u32..1_000_000_000,
    )
        .prop_map(|(mode, uid, gid, mtime, mtime_nsec)| Metadata {
            mode,
            uid,
            gid,
            mtime,
            mtime_nsec,
        })
}

fn xattrs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    btree_map(
        vec(b'a'..=b'z', 1..20),
        prop_oneof![3 => vec(any::<u8>(), 0..60), 1 => vec(any::<u8>(), 500..1500)],
        0..3,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| ([&b"user."[..], &k].concat(), v)).collect())
}

fn contents() -> impl Strategy<Value = Vec<u8>> {
    // Leading zero blocks become holes; the payload may end mid-block.
    (0usize..3, vec(any::<u8>(), 0..9000))
        .prop_map(|(zero_blocks, payload)| [vec![0; zero_blocks * 4096], payload].concat())
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        5 => (metadata(), xattrs(), contents())
            .prop_map(|(meta, xattrs, data)| Node::File(File { meta, xattrs, data: Data::Bytes(data), link: None })),
        1 => (0u64..3).prop_map(|id| Node::File(File {
            meta: Metadata::root(0o644, NOW),
            xattrs: Vec::new(),
            data: Data::Bytes(format!("hard link {id}").into_bytes()),
            link: Some(id),
        })),
        2 => (metadata(), vec(1u8..=255, 1..200))
            .prop_map(|(meta, target)| Node::Symlink { meta: Metadata { mode: 0o777, ..meta }, xattrs: Vec::new(), target }),
        1 => (metadata(), prop_oneof![
            Just(SpecialKind::Fifo),
            Just(SpecialKind::Socket),
            Just(SpecialKind::Char { major: 0, minor: 0 }),
            (0u32..4096, 0u32..(1 << 20)).prop_map(|(major, minor)| SpecialKind::Block { major, minor }),
        ]).prop_map(|(meta, kind)| Node::Special { meta, xattrs: Vec::new(), kind }),
    ]
}

fn directory(entries: impl Strategy<Value = BTreeMap<Vec<u8>, Node>>) -> impl Strategy<Value = Dir> {
    // Directories keep owner rwx so rdump can fill them even without root.
    (metadata(), xattrs(), entries).prop_map(|(meta, xattrs, entries)| Dir {
        meta: Metadata {
            mode: meta.mode | 0o700,
            ..meta
        },
        xattrs,
        entries,
    })
}

fn tree() -> impl Strategy<Value = Dir> {
    let node = leaf().prop_recursive(4, 48, 6, |inner| {
        directory(btree_map(name(), inner, 0..6)).prop_map(Node::Dir)
    });
    directory(btree_map(name(), node, 0..8))
}

/// Inodes the tree needs besides the 11 reserved ones.
fn count_inodes(dir: &Dir, links: &mut BTreeSet<u64>) -> u64 {
    let mut n = 0;
    for node in dir.entries.values() {
        n += match node {
            Node::Dir(d) => 1 + count_inodes(d, links),
            Node::File(File { link: Some(id), .. }) => u64::from(links.insert(*id)),
            _ => 1,
        };
    }
    n
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn check_meta(path: &Path, want: &Metadata, mode_mask: u16) -> Result<(), TestCaseError> {
    let md = std::fs::symlink_metadata(path).unwrap();
    prop_assert_eq!(
        md.mode() as u16 & mode_mask,
        want.mode & mode_mask,
        "mode of {}",
        path.display()
    );
    // debugfs restores only the low 32 bits of a time (no epoch bits); mount.rs checks those.
    prop_assert_eq!(md.mtime() as u32, want.mtime as u32, "mtime of {}", path.display());
    if is_root() {
        prop_assert_eq!(
            (md.uid(), md.gid()),
            (want.uid, want.gid),
            "owner of {}",
            path.display()
        );
    }
    Ok(())
}

/// Compares a dumped directory with the tree. rdump skips devices, FIFOs and sockets and
/// restores only the rwx bits; the kernel tests in `mount.rs` check the rest.
fn compare(dir: &Dir, host: &Path, top: bool) -> Result<(), TestCaseError> {
    let mut found: BTreeSet<Vec<u8>> = std::fs::read_dir(host)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    if top {
        prop_assert!(found.remove(&b"lost+found"[..]));
    }
    let want: BTreeSet<Vec<u8>> = dir
        .entries
        .iter()
        .filter(|(_, n)| !matches!(n, Node::Special { .. }))
        .map(|(k, _)| k.clone())
        .collect();
    prop_assert_eq!(&found, &want, "entries of {}", host.display());
    for (name, node) in &dir.entries {
        let p = host.join(std::ffi::OsStr::from_bytes(name));
        match node {
            Node::Dir(d) => {
                compare(d, &p, false)?;
                check_meta(&p, &d.meta, 0o777)?;
            }
            Node::File(f) => {
                let Data::Bytes(bytes) = &f.data else { unreachable!() };
                prop_assert!(std::fs::read(&p).unwrap() == *bytes, "contents of {}", p.display());
                check_meta(&p, &f.meta, 0o777)?;
            }
            Node::Symlink { target, .. } => {
                let got = std::fs::read_link(&p).unwrap();
                prop_assert_eq!(got.as_os_str().as_bytes(), target.as_slice());
            }
            Node::Special { .. } => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(root in tree(), journal in prop_oneof![Just(0u32), Just(1024)]) {
        let img = make(&root, &Options { journal_blocks: journal, ..opts(32 << 20) });
        let expected = 11 + count_inodes(&root, &mut BTreeSet::new());
        prop_assert_eq!(img.stats.inodes, expected);
        let summary = fsck(&img.path);
        prop_assert!(summary.contains(&format!(" {expected}/")), "{}", summary);
        let dump = rdump(&img.path);
        compare(&root, dump.path(), true)?;
        check_meta(dump.path(), &root.meta, 0o777)?;
    }
}
