//! The shared layer fixture.

use super::{pseudo_random, TarBuf, MTIME};

/// The fixture: everything an OCI layer can carry except whiteouts (GNU tar would
/// not understand those, so they have their own test).
pub fn fixture() -> Vec<u8> {
    let mut t = TarBuf::new();
    t.dir("./", 0o755);
    t.dir("etc/", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n");
    t.dir("bin/", 0o755)
        .file_mode("bin/sh", &pseudo_random(70_000, 1), 0o755);
    t.file_mode("bin/su", b"setuid", 0o4755)
        .file_mode("bin/wall", b"setgid", 0o2755);
    t.dir("tmp/", 0o1777);
    // Symlink chain, and a long (GNU longlink) target.
    t.dir("links/", 0o755)
        .symlink("links/a", "b")
        .symlink("links/b", "c")
        .symlink("links/c", "../etc/passwd");
    t.symlink("links/long", &"x/".repeat(150));
    // Hard links: three names for one inode.
    t.dir("data/", 0o750).file("data/orig", b"shared content");
    t.hardlink("data/hl1", "data/orig")
        .hardlink("implied/deeper/hl2", "./data/orig");
    // Devices and a FIFO.
    t.dir("dev/", 0o755);
    t.dev("dev/null", tar::EntryType::Char, 1, 3)
        .dev("dev/sda", tar::EntryType::Block, 8, 0);
    t.dev("dev/bigminor", tar::EntryType::Char, 259, 70000)
        .dev("dev/fifo", tar::EntryType::Fifo, 0, 0);
    // Xattrs through PAX records, on a file and on a directory.
    t.pax(&[
        ("SCHILY.xattr.user.comment", b"hello"),
        (
            "SCHILY.xattr.security.capability",
            &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        ("SCHILY.xattr.trusted.note", b"t"),
    ]);
    t.file("xattr-file", b"has xattrs");
    t.pax(&[("SCHILY.xattr.user.big", &pseudo_random(3000, 9)[..])]);
    t.dir("xattr-dir/", 0o755);
    // Names: 255 bytes, unicode, and a path far beyond the 100-byte ustar field.
    t.file(&"n".repeat(255), b"long name");
    t.dir("ünïcødé/", 0o755)
        .file("ünïcødé/日本語.txt", "こんにちは".as_bytes())
        .file("ünïcødé/🦀", b"crab");
    let deep = format!("deep/{}file.txt", "segment0123456789/".repeat(8));
    t.file(&deep, b"deep file");
    // Large ids (need extended inodes) and a sub-second mtime via PAX.
    t.file_full("ids", b"ids", 0o600, 100_000, 70_000, MTIME);
    t.pax(&[("mtime", b"1650000000.123456789")]).file("nanotime", b"ns");
    t.file_full("oldtime", b"old", 0o644, 0, 0, 1);
    // Sizes around block boundaries, and a directory spanning several blocks.
    for (i, n) in [0usize, 1, 4095, 4096, 4097, 8192, 12_345, 300_000].iter().enumerate() {
        t.file(&format!("sizes/s{n}"), &pseudo_random(*n, i as u64 + 2));
    }
    for i in 0..500 {
        t.file(
            &format!("many/file-with-a-longish-name-{i:04}"),
            format!("{i}").as_bytes(),
        );
    }
    // Parents implied by entries without their own directory entries.
    t.file("implied/a/b/c.txt", b"implied parents");
    // Later entries win: a file replaced, a directory's metadata updated.
    t.file("rep/file", b"first version").file("rep/file", b"second version");
    t.dir("rep/d/", 0o700).file("rep/d/kept", b"kept").dir("rep/d/", 0o755);
    // Sparse (PAX 1.0) and a plain file of zeros (stored with holes).
    t.sparse(
        "sparse.img",
        20 << 20,
        &[
            (0, vec![b'A'; 4096]),
            (10 << 20, vec![b'B'; 1024]),
            ((20 << 20) - 5, b"tail!".to_vec()),
        ],
    );
    let mut zeros = vec![0u8; 1 << 20];
    zeros.push(1);
    t.file("zeros", &zeros);
    t.finish()
}
