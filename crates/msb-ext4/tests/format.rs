//! Images checked with e2fsprogs only (no root needed): every image passes `e2fsck -fn`,
//! and `debugfs`/`dumpe2fs` read back what the tree said.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use common::*;
use msb_ext4::{Data, Dir, File, Metadata, Node, Options, SpecialKind};

#[test]
fn empty_tree_default_4g_image() {
    let root = Dir::new(meta(0o755));
    let img = make(&root, &opts(4 << 30));
    let h = dumpe2fs(&img.path);
    assert_eq!(field(&h, "Block count"), "1048576");
    assert_eq!(field(&h, "Inode count"), "262144");
    assert_eq!(field(&h, "Block size"), "4096");
    assert_eq!(field(&h, "Inode size"), "256");
    assert_eq!(field(&h, "Filesystem state"), "clean");
    assert_eq!(field(&h, "Default directory hash"), "half_md4");
    assert_eq!(field(&h, "Journal inode"), "8");
    assert_eq!(field(&h, "Journal backup"), "inode blocks");
    assert_eq!(field(&h, "Total journal blocks"), "2048");
    assert_eq!(field(&h, "Required extra isize"), "32");
    let features: BTreeSet<&str> = field(&h, "Filesystem features").split_whitespace().collect();
    let want = "has_journal ext_attr dir_index filetype extent sparse_super large_file huge_file dir_nlink extra_isize";
    assert_eq!(features, want.split_whitespace().collect());
    assert_eq!(field(&h, "Free inodes"), (262144 - 11).to_string());
    let lf = stat(&img.path, "/lost+found");
    assert!(lf.contains("Mode:  0700"), "{lf}");
    assert_eq!(word_after(&lf, "Size:"), "16384");
    assert_eq!(word_after(&lf, "Blockcount:"), "32");
    assert_eq!(word_after(&lf, "Links:"), "2");
    assert_eq!(word_after(&stat(&img.path, "/"), "Links:"), "3");
    // The backup superblocks and group descriptors are good too.
    for backup in ["32768", "884736"] {
        let out = std::process::Command::new("e2fsck")
            .args(["-fn", "-B", "4096", "-b", backup])
            .arg(&img.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "backup at {backup}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Sparse: only metadata was written, and the file takes little space.
    assert!(img.stats.bytes_written < 2 << 20, "{:?}", img.stats);
    let on_disk = std::fs::metadata(&img.path).unwrap();
    assert_eq!(on_disk.len(), 4 << 30);
    assert!(
        on_disk.blocks() * 512 < 4 << 20,
        "{} bytes on disk",
        on_disk.blocks() * 512
    );
}

#[test]
fn image_sizes_from_16m_to_100g() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"f"], file(0o644, b"data")).unwrap();
    let cases: [(u64, u64); 6] = [
        (16 << 20, 4096),
        (16 << 20 | 12345, 4099),
        ((32768 + 100) * 4096, 32768), // 100-block tail group: dropped
        (200 << 20, 51200),
        (4 << 30, 1 << 20),
        (100 << 30, 25 << 20),
    ];
    for (size, blocks) in cases {
        let img = make(&root, &opts(size));
        let h = dumpe2fs(&img.path);
        assert_eq!(field(&h, "Block count"), blocks.to_string(), "size {size}");
        assert_eq!(img.stats.total_blocks, blocks);
        assert_eq!(std::fs::metadata(&img.path).unwrap().len(), size);
        assert_eq!(debugfs(&img.path, "cat /f"), b"data");
    }
}

#[test]
fn without_journal() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"f"], file(0o644, b"x")).unwrap();
    let img = make(
        &root,
        &Options {
            journal_blocks: 0,
            ..opts(32 << 20)
        },
    );
    let h = dumpe2fs(&img.path);
    assert!(!field(&h, "Filesystem features").contains("has_journal"));
}

#[test]
fn journal_spanning_block_groups() {
    let img = make(
        &Dir::new(meta(0o755)),
        &Options {
            journal_blocks: 100_000,
            ..opts(1 << 30)
        },
    );
    let h = dumpe2fs(&img.path);
    assert_eq!(field(&h, "Total journal blocks"), "100000");
    let ex = String::from_utf8_lossy(&debugfs(&img.path, "ex <8>")).into_owned();
    assert!(ex.lines().filter(|l| l.contains("/  4")).count() == 4, "{ex}");
}

#[test]
fn more_subdirectories_than_the_link_limit() {
    // With dir_nlink, a directory with more than 65000 subdirectories has link count 1.
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"wide"], dir(0o755)).unwrap();
    let wide = root.dir_mut(&[b"wide"]).unwrap();
    for i in 0..65_001 {
        wide.entries.insert(format!("d{i}").into_bytes(), dir(0o755));
    }
    let img = make(&root, &opts(1 << 30));
    assert_eq!(word_after(&stat(&img.path, "/wide"), "Links:"), "1");
    assert_eq!(word_after(&stat(&img.path, "/wide/d7"), "Links:"), "2");
}

#[test]
fn thousand_small_files() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"many"], dir(0o755)).unwrap();
    for i in 0..1000u32 {
        let name = format!("file{i:04}");
        root.insert(
            &[b"many", name.as_bytes()],
            file(0o644, format!("content {i}\n").as_bytes()),
        )
        .unwrap();
    }
    let img = make(&root, &opts(256 << 20));
    assert_eq!(img.stats.inodes, 11 + 1 + 1000);
    let dump = rdump(&img.path);
    for i in [0u32, 1, 500, 999] {
        let got = std::fs::read(dump.path().join(format!("many/file{i:04}"))).unwrap();
        assert_eq!(got, format!("content {i}\n").as_bytes());
    }
    assert_eq!(std::fs::read_dir(dump.path().join("many")).unwrap().count(), 1000);
}

#[test]
fn deep_nesting_200_levels() {
    let mut root = Dir::new(meta(0o755));
    let mut path: Vec<Vec<u8>> = Vec::new();
    for i in 0..200 {
        path.push(format!("d{i}").into_bytes());
        let comps: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
        root.insert(&comps, dir(0o755)).unwrap();
    }
    let mut leaf: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
    leaf.push(b"leaf");
    root.insert(&leaf, file(0o600, b"bottom")).unwrap();
    let img = make(&root, &opts(64 << 20));
    let text: Vec<String> = leaf.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    assert_eq!(debugfs(&img.path, &format!("cat /{}", text.join("/"))), b"bottom");
    let dump = rdump(&img.path);
    let host: std::path::PathBuf = text.iter().collect();
    assert_eq!(std::fs::read(dump.path().join(host)).unwrap(), b"bottom");
}

/// Names of 1 to 255 bytes with newlines, spaces, backslashes and non-UTF-8 bytes.
fn odd_name(i: u32) -> Vec<u8> {
    let mut n = format!("{i:05}").into_bytes();
    match i % 5 {
        0 => n.resize(255, b'x'),
        1 => n.extend_from_slice(b"\nnew\nline"),
        2 => n.extend_from_slice(&[0xff, 0xfe, b' ', b'\\', 0x80]),
        3 => n.extend_from_slice("é ü 漢字".as_bytes()),
        _ => {}
    }
    n
}

#[test]
fn directory_of_20000_odd_names() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"big"], dir(0o755)).unwrap();
    let big = root.dir_mut(&[b"big"]).unwrap();
    for i in 0..20_000 {
        big.entries.insert(odd_name(i), file(0o644, b""));
    }
    big.entries.insert(vec![b'z'; 255], file(0o644, b"long"));
    let img = make(&root, &opts(512 << 20));
    let st = stat(&img.path, "/big");
    let size: u64 = word_after(&st, "Size:").parse().unwrap();
    assert!(size > 300 * 4096 && size % 4096 == 0, "{size}");
    let dump = rdump(&img.path);
    let names: BTreeSet<Vec<u8>> = std::fs::read_dir(dump.path().join("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    let want: BTreeSet<Vec<u8>> = big_names().collect();
    assert_eq!(names.len(), want.len());
    assert!(names == want, "names differ");
    assert_eq!(
        std::fs::read(dump.path().join("big").join("z".repeat(255))).unwrap(),
        b"long"
    );
}

fn big_names() -> impl Iterator<Item = Vec<u8>> {
    (0..20_000).map(odd_name).chain(std::iter::once(vec![b'z'; 255]))
}

#[test]
fn sparse_300m_host_file_needs_a_depth_1_extent_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("big.bin");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&host).unwrap();
        f.set_len(300 << 20).unwrap();
        // 140 MiB dense at the start crosses block groups; then a few islands of data.
        let mib = noise(1, 1 << 20);
        for i in 0..140u64 {
            f.write_all_at(&mib, i << 20).unwrap();
            f.write_all_at(&i.to_le_bytes(), i << 20).unwrap();
        }
        for i in 0..8u64 {
            f.write_all_at(&noise(i + 2, 10_000), (150 << 20) + i * (17 << 20) + 123)
                .unwrap();
        }
        f.write_all_at(b"tail", (300 << 20) - 4).unwrap();
    }
    let len = std::fs::metadata(&host).unwrap().len();
    let mut root = Dir::new(meta(0o755));
    let node = Node::File(File {
        meta: meta(0o644),
        xattrs: Vec::new(),
        data: Data::Host {
            path: host.clone(),
            len,
        },
        link: None,
    });
    root.insert(&[b"big"], node).unwrap();
    let img = make(&root, &opts(4 << 30));
    let ex = String::from_utf8_lossy(&debugfs(&img.path, "ex /big")).into_owned();
    assert!(
        ex.lines().any(|l| l.trim_start().starts_with("0/ 1")),
        "depth 1 expected:\n{ex}"
    );
    assert!(ex.lines().any(|l| l.trim_start().starts_with("1/ 1")), "{ex}");
    let st = stat(&img.path, "/big");
    assert_eq!(word_after(&st, "Size:"), (300u64 << 20).to_string());
    // Holes stay holes: far fewer than 300 MiB of blocks.
    let sectors: u64 = word_after(&st, "Blockcount:").parse().unwrap();
    assert!(sectors * 512 < 150 << 20, "{sectors}");
    let image_sum = sh(&format!(
        "debugfs -R 'cat /big' {} 2>/dev/null | sha256sum",
        img.path.display()
    ));
    let host_sum = sh(&format!("sha256sum < {}", host.display()));
    assert_eq!(image_sum, host_sum);
    assert!(image_sum.starts_with(|c: char| c.is_ascii_hexdigit()), "{image_sum}");
}

/// Runs a shell pipeline and returns its stdout.
fn sh(script: &str) -> String {
    let out = std::process::Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn thousands_of_extents_make_a_depth_2_tree() {
    // 1500 data blocks separated by holes: 1500 extents > 4 leaves of 340.
    let mut data = vec![0u8; 3000 * 4096];
    for i in 0..1500 {
        data[i * 2 * 4096] = 1 + (i % 250) as u8;
    }
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"holey"], file(0o644, &data)).unwrap();
    let img = make(&root, &opts(64 << 20));
    let ex = String::from_utf8_lossy(&debugfs(&img.path, "ex /holey")).into_owned();
    assert!(
        ex.lines().any(|l| l.trim_start().starts_with("2/ 2")),
        "depth 2 expected"
    );
    assert_eq!(debugfs(&img.path, "cat /holey"), data);
}

#[test]
fn hard_links_share_one_inode() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"a"], linked(1, b"shared")).unwrap();
    root.insert(&[b"sub"], dir(0o755)).unwrap();
    root.insert(&[b"sub", b"b"], linked(1, b"ignored: first met wins"))
        .unwrap();
    root.insert(&[b"sub", b"c"], linked(1, b"ignored")).unwrap();
    root.insert(&[b"other"], linked(2, b"solo")).unwrap();
    // "first met" is depth-first in name order: d/first comes before z.
    root.insert(&[b"z"], linked(3, b"later")).unwrap();
    root.insert(&[b"d"], dir(0o755)).unwrap();
    root.insert(&[b"d", b"first"], linked(3, b"first")).unwrap();
    let img = make(&root, &opts(32 << 20));
    let a = stat(&img.path, "/a");
    let b = stat(&img.path, "/sub/b");
    assert_eq!(word_after(&a, "Inode:"), word_after(&b, "Inode:"));
    assert_eq!(word_after(&a, "Links:"), "3");
    assert_eq!(word_after(&stat(&img.path, "/other"), "Links:"), "1");
    assert_eq!(debugfs(&img.path, "cat /sub/c"), b"shared");
    assert_eq!(debugfs(&img.path, "cat /z"), b"first");
    assert_eq!(img.stats.inodes, 11 + 5);
}

#[test]
fn fast_and_slow_symlinks() {
    let mut root = Dir::new(meta(0o755));
    let targets: Vec<Vec<u8>> = [1usize, 59, 60, 61, 4095]
        .iter()
        .map(|&n| noise(n as u64, n).iter().map(|b| b'a' + b % 26).collect())
        .collect();
    for t in &targets {
        root.insert(&[format!("l{}", t.len()).as_bytes()], symlink(t)).unwrap();
    }
    let img = make(&root, &opts(32 << 20));
    for t in &targets {
        let st = stat(&img.path, &format!("/l{}", t.len()));
        assert_eq!(word_after(&st, "Size:"), t.len().to_string());
        if t.len() < 60 {
            assert!(st.contains("Fast link dest:"), "{st}");
            assert_eq!(word_after(&st, "Flags:"), "0x0");
        } else {
            assert_eq!(word_after(&st, "Flags:"), "0x80000");
            assert_eq!(word_after(&st, "Blockcount:"), "8");
        }
    }
    let dump = rdump(&img.path);
    for t in &targets {
        let got = std::fs::read_link(dump.path().join(format!("l{}", t.len()))).unwrap();
        assert_eq!(got.as_os_str().as_bytes(), t.as_slice());
    }
}

#[test]
fn devices_fifos_sockets_and_whiteouts() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"null"], special(SpecialKind::Char { major: 1, minor: 3 }))
        .unwrap();
    root.insert(
        &[b"big"],
        special(SpecialKind::Block {
            major: 259,
            minor: 70000,
        }),
    )
    .unwrap();
    root.insert(&[b"fifo"], special(SpecialKind::Fifo)).unwrap();
    root.insert(&[b"sock"], special(SpecialKind::Socket)).unwrap();
    root.insert(&[b"gone"], Node::whiteout()).unwrap();
    let img = make(&root, &opts(32 << 20));
    let null = stat(&img.path, "/null");
    assert!(null.contains("Type: character special"), "{null}");
    assert!(null.contains("Device major/minor number: 01:03"), "{null}");
    let big = stat(&img.path, "/big");
    assert!(big.contains("Type: block special"), "{big}");
    assert!(big.contains("(hex 103:11170)"), "{big}");
    assert!(stat(&img.path, "/fifo").contains("Type: FIFO"));
    assert!(stat(&img.path, "/sock").contains("Type: socket"));
    let gone = stat(&img.path, "/gone");
    assert!(
        gone.contains("Type: character special") && gone.contains("number: 00:00"),
        "{gone}"
    );
    assert!(gone.contains("Mode:  0000"), "{gone}");
}

#[test]
fn modes_owners_and_times() {
    let mut root = Dir::new(Metadata {
        mode: 0o1777,
        uid: 0,
        gid: 0,
        mtime: NOW,
        mtime_nsec: 5,
    });
    let cases: [(&[u8], Metadata); 5] = [
        (
            b"suid",
            Metadata {
                mode: 0o4755,
                uid: 0,
                gid: 0,
                mtime: NOW,
                mtime_nsec: 0,
            },
        ),
        (
            b"sgid",
            Metadata {
                mode: 0o2711,
                uid: 70000,
                gid: 123456,
                mtime: NOW,
                mtime_nsec: 999_999_999,
            },
        ),
        (
            b"old",
            Metadata {
                mode: 0o644,
                uid: 1,
                gid: 2,
                mtime: -1_000_000_000,
                mtime_nsec: 123_456_789,
            },
        ),
        (
            b"y2100",
            Metadata {
                mode: 0o644,
                uid: 65536,
                gid: 65535,
                mtime: 4_102_444_800,
                mtime_nsec: 1,
            },
        ),
        (
            b"epoch",
            Metadata {
                mode: 0o444,
                uid: 2_000_000_000,
                gid: 0,
                mtime: 0,
                mtime_nsec: 0,
            },
        ),
    ];
    for (name, m) in &cases {
        root.insert(
            &[name],
            Node::File(File {
                meta: *m,
                xattrs: Vec::new(),
                data: Data::Bytes(b"x".to_vec()),
                link: None,
            }),
        )
        .unwrap();
    }
    let img = make(&root, &opts(32 << 20));
    assert!(stat(&img.path, "/").contains("Mode:  01777"));
    for (name, m) in &cases {
        let st = stat(&img.path, &format!("/{}", String::from_utf8_lossy(name)));
        assert!(st.contains(&format!("Mode:  0{:03o}", m.mode)), "{st}");
        assert_eq!(word_after(&st, "User:"), m.uid.to_string());
        assert_eq!(word_after(&st, "Group:"), m.gid.to_string());
        // debugfs prints "mtime: 0xLOW:EXTRA" with EXTRA = nsec << 2 | epoch bits.
        let raw = word_after(&st, " mtime:");
        let (lo, extra) = raw.trim_start_matches("0x").split_once(':').unwrap();
        let lo = u32::from_str_radix(lo, 16).unwrap();
        let extra = u32::from_str_radix(extra, 16).unwrap();
        let secs = i64::from(lo as i32) + (i64::from(extra & 3) << 32);
        assert_eq!((secs, extra >> 2), (m.mtime, m.mtime_nsec), "{st}");
    }
}

#[test]
fn xattrs_in_inode_and_in_block() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"opaque"], dir(0o755)).unwrap();
    if let Some(Node::Dir(d)) = root.get_mut(&[b"opaque"]) {
        d.set_opaque(true);
    }
    let big = noise(9, 3000);
    let xattrs = vec![
        (b"user.big".to_vec(), big.clone()),
        (b"user.small".to_vec(), b"v".to_vec()),
        (b"security.selinux".to_vec(), b"system_u:object_r:etc_t:s0\0".to_vec()),
        (b"trusted.x".to_vec(), Vec::new()),
    ];
    root.insert(
        &[b"f"],
        Node::File(File {
            meta: meta(0o644),
            xattrs,
            data: Data::Bytes(b"x".to_vec()),
            link: None,
        }),
    )
    .unwrap();
    root.xattrs.push((b"user.root".to_vec(), b"yes".to_vec()));
    let img = make(&root, &opts(32 << 20));
    let list = String::from_utf8_lossy(&debugfs(&img.path, "ea_list /opaque")).into_owned();
    assert!(
        list.contains("trusted.overlay.opaque") && list.contains("\"y\""),
        "{list}"
    );
    assert_eq!(
        word_after(&stat(&img.path, "/opaque"), "File ACL:"),
        "0",
        "opaque fits in the inode"
    );
    let st = stat(&img.path, "/f");
    assert_ne!(word_after(&st, "File ACL:"), "0", "big xattrs go to a block");
    assert_eq!(word_after(&st, "Blockcount:"), "16", "data block + xattr block");
    let out = img.dir.path().join("big.val");
    debugfs(&img.path, &format!("ea_get -f {} /f user.big", out.display()));
    assert_eq!(std::fs::read(&out).unwrap(), big);
    let list = String::from_utf8_lossy(&debugfs(&img.path, "ea_list /f")).into_owned();
    for name in ["user.small", "security.selinux", "trusted.x"] {
        assert!(list.contains(name), "{name} missing: {list}");
    }
    assert!(String::from_utf8_lossy(&debugfs(&img.path, "ea_list /")).contains("user.root"));
}

#[test]
fn lost_and_found_from_the_tree_is_reused() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"lost+found"], dir(0o700)).unwrap();
    root.insert(&[b"lost+found", b"orphan"], file(0o600, b"o")).unwrap();
    let img = make(&root, &opts(32 << 20));
    let st = stat(&img.path, "/lost+found");
    assert_eq!(word_after(&st, "Inode:"), "11");
    assert_eq!(word_after(&st, "Size:"), "16384");
    assert_eq!(debugfs(&img.path, "cat /lost+found/orphan"), b"o");
}

#[test]
fn random_ids_are_used_and_checked() {
    let o = opts(32 << 20).with_random_ids().unwrap();
    assert_ne!(o.uuid, Options::default().uuid);
    let img = make(&Dir::new(meta(0o755)), &o);
    let h = dumpe2fs(&img.path);
    let uuid: String = o.uuid.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(field(&h, "Filesystem UUID").replace('-', ""), uuid);
}

#[test]
fn reports_a_summary_consistent_with_e2fsck() {
    let mut root = Dir::new(meta(0o755));
    root.insert(&[b"f"], file(0o644, &noise(3, 10 * 4096))).unwrap();
    let img = make(&root, &opts(32 << 20));
    let out = fsck(&img.path);
    let summary = out.lines().last().unwrap();
    assert!(
        summary.contains(&format!("{}/", img.stats.inodes)),
        "{summary} vs {:?}",
        img.stats
    );
}
