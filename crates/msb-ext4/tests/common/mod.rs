//! Helpers shared by the integration tests: building trees, writing images, and reading
//! them back with e2fsprogs (`e2fsck -fn`, `debugfs`, `dumpe2fs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use msb_ext4::{Data, Dir, File, Metadata, Node, Options, SpecialKind, Stats};

/// Time used for deterministic images (2023-11-14).
pub const NOW: i64 = 1_700_000_000;

/// Deterministic options for an image of `size` bytes.
pub fn opts(size: u64) -> Options {
    Options {
        size,
        now: NOW,
        ..Options::default()
    }
}

/// Root-owned metadata at [`NOW`].
pub fn meta(mode: u16) -> Metadata {
    Metadata::root(mode, NOW)
}

/// A regular file with `text`.
pub fn file(mode: u16, text: &[u8]) -> Node {
    Node::File(File {
        meta: meta(mode),
        xattrs: Vec::new(),
        data: Data::Bytes(text.to_vec()),
        link: None,
    })
}

/// A regular file in hard-link group `id`.
pub fn linked(id: u64, text: &[u8]) -> Node {
    Node::File(File {
        meta: meta(0o644),
        xattrs: Vec::new(),
        data: Data::Bytes(text.to_vec()),
        link: Some(id),
    })
}

/// An empty directory.
pub fn dir(mode: u16) -> Node {
    Node::Dir(Dir::new(meta(mode)))
}

/// A symlink to `target`.
pub fn symlink(target: &[u8]) -> Node {
    Node::Symlink {
        meta: meta(0o777),
        xattrs: Vec::new(),
        target: target.to_vec(),
    }
}

/// A device, FIFO or socket.
pub fn special(kind: SpecialKind) -> Node {
    Node::Special {
        meta: meta(0o644),
        xattrs: Vec::new(),
        kind,
    }
}

/// Bytes of a deterministic pseudo-random stream (xorshift), never a whole zero block.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An image on disk, removed with its temp dir.
pub struct Image {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub stats: Stats,
}

/// Writes `root` with `opts` into a fresh temp file and checks it with `e2fsck -fn`.
pub fn make(root: &Dir, opts: &Options) -> Image {
    let img = make_unchecked(root, opts).expect("write image");
    fsck(&img.path);
    img
}

/// Writes `root` with `opts` into a fresh temp file.
pub fn make_unchecked(root: &Dir, opts: &Options) -> Result<Image, msb_ext4::Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.ext4");
    let out = std::fs::File::create(&path).unwrap();
    let stats = msb_ext4::write(root, &out, opts)?;
    Ok(Image { dir, path, stats })
}

/// Runs `e2fsck -fn`, fails the test with its output unless it exits 0, returns stdout.
pub fn fsck(img: &Path) -> String {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(img)
        .output()
        .expect("run e2fsck (install e2fsprogs)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "e2fsck -fn {} failed ({}):\n{stdout}\n{}",
        img.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs one `debugfs` request and returns its stdout.
pub fn debugfs(img: &Path, request: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(img)
        .output()
        .expect("run debugfs");
    assert!(
        out.status.success(),
        "debugfs -R {request:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `debugfs stat` output as text.
pub fn stat(img: &Path, path: &str) -> String {
    String::from_utf8_lossy(&debugfs(img, &format!("stat \"{path}\""))).into_owned()
}

/// The first whitespace-separated word after `label` (e.g. `"Links:"`) in `text`.
pub fn word_after<'a>(text: &'a str, label: &str) -> &'a str {
    let at = text.find(label).unwrap_or_else(|| panic!("{label} not in:\n{text}"));
    text[at + label.len()..].split_whitespace().next().unwrap_or("")
}

/// `dumpe2fs -h` output.
pub fn dumpe2fs(img: &Path) -> String {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .expect("run dumpe2fs");
    assert!(
        out.status.success(),
        "dumpe2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `Field:   value` in dumpe2fs output.
pub fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(str::trim))
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}

/// Dumps the whole image with `debugfs rdump` into a new temp dir.
pub fn rdump(img: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    debugfs(img, &format!("rdump / \"{}\"", out.path().display()));
    out
}
