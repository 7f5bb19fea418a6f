//! A layer with every kind of entry, converted and checked three ways: fsck.erofs,
//! the kernel (loop mount) against GNU tar's extraction, and our own Reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fixture::fixture;
use common::*;
use msb_erofs::Reader;

#[test]
fn fixture_roundtrip_fsck_reader_and_kernel() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = fixture();
    if let Ok(p) = std::env::var("MSB_DUMP_FIXTURE") {
        std::fs::write(p, &tar).unwrap();
    }
    let (img, stats) = convert(&tar, tmp.path(), "layer.erofs");
    assert_eq!(stats.bytes_in, tar.len() as u64);
    assert_eq!(stats.hardlinks, 2);

    let ours = snap_image(&img);
    // Spot checks against what the fixture says, independent of any other tool.
    assert_eq!(ours["bin/su"].perm, 0o4755);
    assert_eq!(ours["bin/wall"].perm, 0o2755);
    assert_eq!(ours["tmp"].perm, 0o1777);
    assert_eq!(ours["data/orig"].nlink, 3);
    assert_eq!(ours["implied/deeper/hl2"].group, "data/hl1");
    assert_eq!(ours["dev/bigminor"].rdev, (259, 70000));
    assert_eq!(ours["dev/fifo"].kind, 'p');
    assert_eq!(ours["ids"].uid, 100_000);
    assert_eq!(ours["ids"].gid, 70_000);
    assert_eq!(ours["nanotime"].mtime, (1_650_000_000, 123_456_789));
    assert_eq!(ours["oldtime"].mtime, (1, 0));
    assert_eq!(ours["rep/d"].perm, 0o755);
    assert_eq!(
        ours["xattr-file"].xattrs.get(&b"user.comment"[..]).map(Vec::as_slice),
        Some(&b"hello"[..])
    );
    assert_eq!(ours["implied/a"].perm, 0o755);
    assert_eq!(ours["sparse.img"].size, 20 << 20);
    let mut r = Reader::open(&img).unwrap();
    let rep = r.lookup("rep/file").unwrap().unwrap();
    assert_eq!(r.read_file(&rep).unwrap(), b"second version");
    let chain = r.lookup("links/a").unwrap().unwrap();
    assert_eq!(r.read_link(&chain).unwrap(), b"b");
    let sp = r.lookup("/sparse.img").unwrap().unwrap();
    let mut buf = [0u8; 5];
    r.read_at(&sp, (20 << 20) - 5, &mut buf).unwrap();
    assert_eq!(&buf, b"tail!");
    r.read_at(&sp, 5 << 20, &mut buf).unwrap();
    assert_eq!(buf, [0; 5]);

    if !is_root() {
        skip("comparisons that need ownership preserved need root");
        return;
    }
    // GNU tar's extraction is the reference for the whole tree.
    let gnu_dir = tmp.path().join("gnu");
    gnu_extract(&tar, &gnu_dir);
    let gnu = snap_disk(&gnu_dir);
    // GNU tar stamps directories it creates implicitly with the extraction time; we
    // use the fixed `implied_mtime` (0). Compare those on everything but time.
    let implied: Vec<String> = ours
        .iter()
        .filter(|(_, v)| v.kind == 'd' && v.mtime == (0, 0))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(implied.iter().any(|k| k == "implied/a/b"));
    let norm = |s: &Snap| -> Snap {
        s.iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                if implied.contains(k) {
                    v.mtime = (0, 0);
                }
                if v.kind == 'l' {
                    v.mtime = (0, 0); // GNU tar does not restore symlink times everywhere
                }
                (k.clone(), v)
            })
            .collect()
    };
    assert_same("our Reader vs GNU tar extraction", &norm(&ours), &norm(&gnu));

    if let Some(m) = try_mount(&img) {
        let kernel = snap_disk(m.dir.path());
        assert_same("kernel mount vs our Reader", &kernel, &ours);
    }

    // fsck.erofs --extract as one more reader. erofs-utils 1.5 extracts files with
    // chunk holes wrongly and clears setuid bits (chmod before chown), so compare
    // names, types and contents of everything else.
    let ex = tmp.path().join("fsck-extract");
    fsck_extract(&img, &ex);
    let fs = snap_disk(&ex);
    let keep = |s: &Snap| -> Snap {
        s.iter()
            .filter(|(k, _)| !k.starts_with("sparse") && *k != "zeros")
            .map(|(k, v)| (k.clone(), (v.kind, v.sha.clone(), v.link.clone(), v.size)))
            .map(|(k, (kind, sha, link, size))| {
                let mut r = ours[&k].clone();
                r.kind = kind;
                r.sha = sha;
                r.link = link;
                r.size = size;
                (k, r)
            })
            .collect()
    };
    let ours_kept: Snap = ours
        .iter()
        .filter(|(k, _)| !k.starts_with("sparse") && *k != "zeros")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_same(
        "fsck.erofs --extract vs our Reader (names, types, contents)",
        &keep(&fs),
        &ours_kept,
    );
}

#[test]
fn output_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = fixture();
    let (a, _) = convert(&tar, tmp.path(), "a.erofs");
    let (b, _) = convert(&tar, tmp.path(), "b.erofs");
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn empty_tar_gives_an_empty_root() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = TarBuf::new().finish();
    let (img, stats) = convert(&tar, tmp.path(), "empty.erofs");
    assert_eq!(stats.inodes, 1);
    let snap = snap_image(&img);
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[""].kind, 'd');
    if let Some(m) = try_mount(&img) {
        assert_eq!(std::fs::read_dir(m.dir.path()).unwrap().count(), 0);
    }
}

#[test]
fn big_xattrs_spanning_blocks() {
    // Inline xattr bodies larger than a block (two 30 kB values) sit between small
    // inodes; the kernel and fsck.erofs must read them across block boundaries.
    let tmp = tempfile::tempdir().unwrap();
    let mut t = TarBuf::new();
    for i in 0..40 {
        let big = [vec![b'q'; 30_000], vec![b'r'; 30_000], vec![b'm'; 3000]];
        match i % 7 {
            3 => t.pax(&[
                ("SCHILY.xattr.user.big", &big[0][..]),
                ("SCHILY.xattr.user.big2", &big[1][..]),
            ]),
            1 => t.pax(&[("SCHILY.xattr.user.mid", &big[2][..])]),
            _ => &mut t,
        };
        t.file(&format!("f{i:02}"), &pseudo_random(i * 37, i as u64));
    }
    let (img, _) = convert(&t.finish(), tmp.path(), "x.erofs");
    let ours = snap_image(&img);
    assert_eq!(ours["f03"].xattrs[&b"user.big2"[..]].len(), 30_000);
    if let Some(m) = try_mount(&img) {
        assert_same("kernel vs Reader", &snap_disk(m.dir.path()), &ours);
    }
}
