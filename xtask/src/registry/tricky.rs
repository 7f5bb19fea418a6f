//! `msb-test/tricky`: busybox plus layers that exercise every awkward layer-format case.
//!
//! Layers 2 and 3 come from `umoci unpack` → change the rootfs → `umoci repack`, so umoci
//! writes the whiteouts itself (`.wh.NAME` for deleted files and dirs, one `.wh.NAME` per
//! child for a directory deleted and recreated). umoci 0.4.7's repack never emits an opaque
//! marker and its `insert --opaque` writes a tar without the end-of-archive blocks
//! (umoci#436, fixed after 0.4.7), so layer 4, the opaque directory, is a tar made with GNU
//! tar and appended with `umoci raw add-layer`.

use super::fixtures::{self, busybox_config};
use super::oci::Layout;
use crate::{setup, util};
use anyhow::{Context, Result};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Bump when the layers below change.
const RECIPE: &str = "msb-test/tricky v1";
/// The sparse file's size: umoci writes sparse files out in full, so it stays moderate.
pub const SPARSE_SIZE: u64 = 64 << 20;

/// Builds (or finds cached) the tricky image on top of the busybox layout's `latest`.
pub fn build(busybox: &Layout, busybox_hash: &str) -> Result<Layout> {
    setup::ensure_packages(&["attr", "tar"])?;
    let hash = fixtures::inputs_hash(&[RECIPE.as_bytes(), busybox_hash.as_bytes()]);
    fixtures::cached("tricky", &hash, |layout, work| {
        // Start from the busybox layout so the base layer blob is shared with that image.
        fs::remove_dir_all(&layout.dir).with_context(|| format!("removing {}", layout.dir.display()))?;
        util::run(Command::new("cp").arg("-a").arg(&busybox.dir).arg(&layout.dir))?;
        layout.keep_only(&["latest"])?;
        layout.gc()?;
        let bundle = work.join("bundle");
        layout.unpack("latest", &bundle)?;
        let root = bundle.join("rootfs");
        lower(&root.join("tricky"))?;
        layout.repack("latest", &bundle, "tricky: lower layer")?;
        upper(&root.join("tricky"))?;
        layout.repack("latest", &bundle, "tricky: deletions, links, xattrs, odd files")?;
        let tar = opaque_layer(&work.join("opaque"))?;
        layout.add_layer("latest", &tar, "tricky: opaque directory (GNU tar)")?;
        layout.config("latest", &busybox_config("tricky"))
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Layer 2: what layer 3 deletes, replaces or shadows.
fn lower(t: &Path) -> Result<()> {
    write(&t.join("lower-only.txt"), "from the lower layer\n")?;
    write(&t.join("del/gone.txt"), "deleted in layer 3\n")?;
    write(&t.join("del/stays.txt"), "survives\n")?;
    write(&t.join("deldir/x.txt"), "whole dir deleted in layer 3\n")?;
    write(&t.join("deldir/sub/y.txt"), "nested\n")?;
    write(&t.join("recreated/old.txt"), "dir deleted and recreated in layer 3\n")?;
    write(&t.join("opaque/old.txt"), "hidden by the opaque dir of layer 4\n")?;
    write(&t.join("opaque/sub/old2.txt"), "hidden too\n")?;
    write(&t.join("typechange"), "a file in layer 2, a directory in layer 3\n")
}

/// Layer 3: deletions (umoci writes the whiteouts) and every odd kind of entry.
fn upper(t: &Path) -> Result<()> {
    let rm = |p: &str| -> Result<()> {
        let path = t.join(p);
        let res = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        res.with_context(|| format!("removing {}", path.display()))
    };
    rm("del/gone.txt")?;
    rm("deldir")?;
    rm("recreated")?;
    write(&t.join("recreated/new.txt"), "recreated dir's new file\n")?;
    rm("typechange")?;
    write(&t.join("typechange/inside.txt"), "now a directory\n")?;

    let links = t.join("links");
    write(&links.join("target.txt"), "end of the symlink chain\n")?;
    for (name, to) in [
        ("sym-c", "target.txt"),
        ("sym-b", "sym-c"),
        ("sym-a", "sym-b"),
        ("dangling", "does-not-exist"),
        ("absolute", "/etc/passwd"),
        ("up-and-over", "../lower-only.txt"),
    ] {
        symlink(to, links.join(name)).with_context(|| format!("symlink {name} -> {to}"))?;
    }
    write(&links.join("hl-1"), "one inode, three names\n")?;
    for n in ["hl-2", "hl-3"] {
        fs::hard_link(links.join("hl-1"), links.join(n)).with_context(|| format!("linking {n}"))?;
    }

    let x = t.join("xattr");
    write(&x.join("user.txt"), "has user.* xattrs\n")?;
    write(&x.join("cap-net-raw"), "#!/bin/sh\necho capability fixture\n")?;
    mode(&x.join("cap-net-raw"), 0o755)?;
    // security.capability v2: permitted+effective CAP_NET_RAW (bit 13), as `setcap` writes.
    let cap = "0x0100000200200000000000000000000000000000";
    for (path, name, value) in [
        (x.join("user.txt"), "user.msb.test", "hello"),
        (x.join("user.txt"), "user.msb.second", "2"),
        (x.clone(), "user.msb.dir", "on a directory"),
        (x.join("cap-net-raw"), "security.capability", cap),
    ] {
        let mut cmd = Command::new("setfattr");
        cmd.args(["-n", name, "-v", value]).arg(&path);
        util::run(&mut cmd)?;
    }

    let m = t.join("modes");
    write(&m.join("setuid"), "#!/bin/sh\nid\n")?;
    mode(&m.join("setuid"), 0o4755)?;
    write(&m.join("setgid"), "#!/bin/sh\nid\n")?;
    mode(&m.join("setgid"), 0o2755)?;
    fs::create_dir_all(m.join("sticky"))?;
    mode(&m.join("sticky"), 0o1777)?;
    write(&m.join("alice-only"), "owned by 1000:1000, mode 0600\n")?;
    mode(&m.join("alice-only"), 0o600)?;
    chown(m.join("alice-only"), Some(1000), Some(1000)).context("chown alice-only")?;

    let names = t.join("names");
    write(&names.join(format!("{}.txt", "n".repeat(251))), "255-byte name\n")?;
    write(&names.join("ünïcødé-名前.txt"), "unicode name\n")?;
    write(&names.join("with space.txt"), "space in name\n")?;

    let sparse = t.join("sparse/big.img");
    fs::create_dir_all(t.join("sparse"))?;
    let mut f = fs::File::create(&sparse).with_context(|| format!("creating {}", sparse.display()))?;
    f.set_len(SPARSE_SIZE)?;
    for (at, text) in [(0, "start"), (SPARSE_SIZE / 2, "middle"), (SPARSE_SIZE - 3, "end")] {
        f.seek(SeekFrom::Start(at))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("writing into {}", sparse.display()))?;
    }

    fs::create_dir_all(t.join("special"))?;
    util::run(Command::new("mkfifo").arg(t.join("special/fifo")))?;
    fs::create_dir_all(t.join("empty-dir")).context("creating empty-dir")
}

/// Layer 4 as a tar: `tricky/opaque/` marked opaque (`.wh..wh..opq`) with one new file.
fn opaque_layer(stage: &Path) -> Result<std::path::PathBuf> {
    let dir = stage.join("tricky/opaque");
    write(&dir.join(".wh..wh..opq"), "")?;
    write(&dir.join("new.txt"), "only file visible in the opaque dir\n")?;
    for d in [stage.join("tricky"), dir.clone()] {
        mode(&d, 0o755)?;
    }
    let tar = stage.join("layer.tar");
    let mut cmd = Command::new("tar");
    cmd.arg("-C")
        .arg(stage)
        .args(["--create", "--format=pax", "--numeric-owner", "--owner=0", "--group=0"])
        .args(["--pax-option=delete=atime,delete=ctime", "--no-recursion", "--file"])
        .arg(&tar)
        .args(["tricky", "tricky/opaque", "tricky/opaque/.wh..wh..opq"])
        .arg("tricky/opaque/new.txt");
    util::run(&mut cmd)?;
    Ok(tar)
}
