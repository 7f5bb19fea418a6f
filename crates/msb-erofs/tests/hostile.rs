//! Hostile or broken input on both sides: each tar case gives the expected error
//! (naming the entry), and damaged images give errors, never panics or hangs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Cursor;

use common::*;
use msb_erofs::{Error, FileKind, Reader, WriteOptions};

/// A GNU header written by hand, so names the `tar` crate refuses can be used.
fn raw(name: &[u8], kind: u8, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(MTIME);
    h.set_entry_type(tar::EntryType::new(kind));
    let g = h.as_gnu_mut().unwrap();
    g.name[..name.len()].copy_from_slice(name);
    g.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    let mut v = h.as_bytes().to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn end(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(&[0u8; 1024]);
    v
}

fn convert_err(tar: &[u8]) -> Error {
    match msb_erofs::write_from_tar(tar, Cursor::new(Vec::new()), &WriteOptions::default()) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

fn convert_ok(tar: &[u8]) -> Vec<u8> {
    let (out, _) = msb_erofs::write_from_tar_into(tar, Cursor::new(Vec::new()), &WriteOptions::default()).unwrap();
    out.into_inner()
}

#[test]
fn dotdot_escapes_are_rejected() {
    for name in [&b"../escape"[..], b"a/../../x", b"./../../etc/passwd"] {
        let e = convert_err(&end(raw(name, b'0', b"x", b"")));
        assert!(matches!(e, Error::BadPath { .. }), "{e}");
        assert!(e.to_string().contains(&*String::from_utf8_lossy(name)), "{e}");
    }
}

#[test]
fn absolute_and_dot_paths_are_normalised() {
    let tar = end([
        raw(b"/abs/file", b'0', b"a", b""),
        raw(b"./rel", b'0', b"r", b""),
        raw(b"x/../y", b'0', b"y", b""),
    ]
    .concat());
    let img = convert_ok(&tar);
    let mut r = Reader::new(Cursor::new(img)).unwrap();
    for (p, c) in [("abs/file", b"a"), ("rel", b"r"), ("y", b"y")] {
        let ino = r.lookup(p).unwrap().unwrap();
        assert_eq!(r.read_file(&ino).unwrap(), c);
    }
    assert!(r.lookup("x").unwrap().is_none());
}

#[test]
fn hard_link_targets_must_exist_earlier_and_not_be_dirs() {
    let missing = end(raw(b"link", b'1', b"", b"nowhere"));
    assert!(matches!(convert_err(&missing), Error::LinkTargetMissing { ref path, .. } if path == "link"));
    let later = end([raw(b"link", b'1', b"", b"file"), raw(b"file", b'0', b"x", b"")].concat());
    assert!(matches!(convert_err(&later), Error::LinkTargetMissing { .. }));
    let outside = end([raw(b"file", b'0', b"x", b""), raw(b"link", b'1', b"", b"../../file")].concat());
    assert!(matches!(convert_err(&outside), Error::BadPath { .. }));
    let dir = end([raw(b"d/", b'5', b"", b""), raw(b"link", b'1', b"", b"d")].concat());
    assert!(matches!(convert_err(&dir), Error::LinkTargetIsDir { .. }));
    // A link keeps the inode it was made to, even if the name is replaced later.
    let ok = end([
        raw(b"f", b'0', b"one", b""),
        raw(b"l", b'1', b"", b"f"),
        raw(b"f", b'0', b"two", b""),
    ]
    .concat());
    let mut r = Reader::new(Cursor::new(convert_ok(&ok))).unwrap();
    let l = r.lookup("l").unwrap().unwrap();
    assert_eq!((r.read_file(&l).unwrap(), l.nlink), (b"one".to_vec(), 1));
}

#[test]
fn truncated_and_garbage_streams() {
    let mut t = TarBuf::new();
    t.file("big", &pseudo_random(100_000, 4));
    let full = t.finish();
    let e = convert_err(&full[..50_000]);
    assert!(matches!(e, Error::EntryData { ref path, .. } if path == "big"), "{e}");
    let e = convert_err(&full[..300]);
    assert!(matches!(e, Error::Tar { .. }), "{e}");
    let e = convert_err(&pseudo_random(10_000, 5));
    assert!(
        matches!(e, Error::Tar { .. }) && e.to_string().contains("checksum"),
        "{e}"
    );
    // A PAX header with nothing after it.
    let mut t = TarBuf::new();
    t.pax(&[("path", b"x")]);
    let e = convert_err(&end(t.finish()[..1024].to_vec()));
    assert!(matches!(e, Error::Tar { .. }), "{e}");
    // Malformed PAX record.
    let bad = end([raw(b"PaxHeader", b'x', b"99 path=x\n", b""), raw(b"f", b'0', b"", b"")].concat());
    assert!(matches!(convert_err(&bad), Error::Tar { .. }));
}

#[test]
fn bytes_after_the_end_marker_are_read_and_counted() {
    let mut tar = end(raw(b"f", b'0', b"x", b""));
    tar.extend_from_slice(&[0xAB; 3000]);
    let stats = msb_erofs::write_from_tar(&tar[..], Cursor::new(Vec::new()), &WriteOptions::default()).unwrap();
    assert_eq!(stats.bytes_in, tar.len() as u64);
}

fn pax_then(recs: &[(&str, &[u8])], entry: Vec<u8>) -> Vec<u8> {
    let mut t = TarBuf::new();
    t.pax(recs);
    let mut v = t.b.into_inner().unwrap();
    v.truncate(v.len() - 1024); // drop the end marker `into_inner` wrote
    end([v, entry].concat())
}

#[test]
fn absurd_fields_are_rejected_with_the_entry_named() {
    let file = || raw(b"victim", b'0', b"", b"");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (pax_then(&[("size", b"4611686018427387904")], file()), "beyond"),
        (pax_then(&[("uid", b"8589934592")], file()), "uid"),
        (pax_then(&[("path", "n".repeat(256).as_bytes())], file()), "255"),
        (pax_then(&[("path", b"a\0b")], file()), "NUL"),
        (
            pax_then(&[("SCHILY.xattr.user.big", &vec![b'v'; 70_000])], file()),
            "65535",
        ),
        (pax_then(&[("mtime", b"yesterday")], file()), "mtime"),
        (
            pax_then(
                &[
                    ("GNU.sparse.major", b"1"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.realsize", b"10"),
                ],
                raw(b"victim", b'0', b"1\n20\n5\n", b""),
            ),
            "sparse",
        ),
        (end(raw(b"victim", b'2', b"", b"")), "symlink"),
        (end(raw(b"victim", b'Z', b"", b"")), "unsupported"),
        (
            end([raw(b"victim", b'0', b"", b""), raw(b"victim/x", b'0', b"", b"")].concat()),
            "not a directory",
        ),
        (end(raw(b".", b'0', b"x", b"")), "root"),
        (end(raw(b"dir/.wh.", b'0', b"", b"")), "whiteout"),
    ];
    for (tar, needle) in cases {
        let e = convert_err(&tar);
        let msg = e.to_string();
        assert!(msg.contains(needle), "expected {needle:?} in: {msg}");
    }
    // Device numbers out of range.
    let mut t = TarBuf::new();
    t.dev("dev/x", tar::EntryType::Char, 5000, 1);
    let e = convert_err(&t.finish());
    assert!(
        matches!(e, Error::InvalidEntry { ref path, .. } if path == "dev/x"),
        "{e}"
    );
    // A huge declared size with no data behind it fails fast as truncated.
    let e = convert_err(&pax_then(&[("size", b"36028797018963968")], file()));
    assert!(matches!(e, Error::EntryData { .. }), "{e}");
}

fn small_image() -> Vec<u8> {
    let mut t = TarBuf::new();
    t.dir("a/", 0o755)
        .dir("a/b/", 0o755)
        .file("a/b/f", b"file in b")
        .symlink("a/l", "b/f");
    t.pax(&[("SCHILY.xattr.user.k", b"v")])
        .file("x", &pseudo_random(9000, 7));
    t.dev("c", tar::EntryType::Char, 1, 2);
    t.file("z", &[&[1u8][..], &[0u8; 8192], &[2]].concat());
    convert_ok(&t.finish())
}

#[test]
fn reader_rejects_bad_superblocks() {
    assert!(matches!(
        Reader::new(Cursor::new(vec![0u8; 100])),
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        Reader::new(Cursor::new(vec![0u8; 8192])),
        Err(Error::Corrupt(_))
    ));
    let mut img = small_image();
    img.truncate(4096);
    assert!(Reader::new(Cursor::new(img)).is_err());
}

#[test]
fn reader_detects_directory_cycles() {
    let mut img = small_image();
    let (b_nid, a_nid, meta) = {
        let mut r = Reader::new(Cursor::new(img.clone())).unwrap();
        let a = r.lookup("a").unwrap().unwrap();
        let b = r.lookup("a/b").unwrap().unwrap();
        (b.nid, a.nid, u64::from(r.superblock().meta_blkaddr))
    };
    // a's entries (".", "..", "b", "l") are packed right after its 32-byte inode;
    // point "b" back at "a".
    let dirents = (meta * 4096 + a_nid * 32 + 32) as usize;
    let b_entry = dirents + 2 * 12;
    assert_eq!(
        u64::from_le_bytes(img[b_entry..b_entry + 8].try_into().unwrap()),
        b_nid,
        "layout as expected"
    );
    img[b_entry..b_entry + 8].copy_from_slice(&a_nid.to_le_bytes());
    let mut r = Reader::new(Cursor::new(img)).unwrap();
    let e = r.walk(|_, _| Ok(())).unwrap_err();
    assert!(e.to_string().contains("cycle"), "{e}");
}

/// Random damage to an image: every outcome is Ok or Err, never a panic or a hang.
#[test]
fn reader_survives_random_corruption() {
    let img = small_image();
    let meta = u64::from(Reader::new(Cursor::new(img.clone())).unwrap().superblock().meta_blkaddr) as usize * 4096;
    let mut rng = pseudo_random(4 * 3000 * 4, 11).into_iter();
    let mut next = move || rng.next().unwrap_or(0) as usize;
    let mut errors = 0;
    for round in 0..3000 {
        let mut bad = img.clone();
        for _ in 0..1 + next() % 4 {
            // Mostly the metadata and superblock, sometimes anywhere.
            let pos = if round % 4 == 0 {
                (next() << 8 | next()) % bad.len()
            } else {
                meta + (next() << 8 | next()) % (bad.len() - meta)
            };
            bad[pos] = next() as u8;
        }
        if round % 10 == 0 {
            bad[1024 + next() % 128] = next() as u8;
        }
        let result = (|| -> msb_erofs::Result<()> {
            let mut r = Reader::new(Cursor::new(bad))?;
            let mut found = Vec::new();
            r.walk(|_, ino| {
                found.push(ino.clone());
                Ok(())
            })?;
            for ino in found {
                match ino.kind {
                    FileKind::File if ino.size < 1 << 20 => drop(r.read_file(&ino)?),
                    FileKind::Symlink => drop(r.read_link(&ino)?),
                    _ => {}
                }
            }
            Ok(())
        })();
        errors += usize::from(result.is_err());
    }
    assert!(errors > 100, "corruption is noticed at least sometimes ({errors})");
}
