//! Builds the static guest agent and packs it as `/init` into an uncompressed initramfs.

use crate::{paths, util};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds `msb-agent` (static glibc) and installs `initramfs.cpio` into the msb lib dir.
pub fn build() -> Result<PathBuf> {
    pack("msb-agent", paths::msb_lib_dir().join("initramfs.cpio"))
}

/// Builds the test-only `msb-hostile-agent` into an initramfs of its own under the guest
/// target dir (never the lib dir: no sandbox but the hostile-guest tests' boots it).
pub fn build_hostile() -> Result<PathBuf> {
    let out = paths::repo_root().join("target/guest/hostile-initramfs.cpio");
    pack("msb-hostile-agent", out)
}

/// Builds the guest program `package` and installs it as `/init` of the initramfs `out`.
fn pack(package: &str, out: PathBuf) -> Result<PathBuf> {
    let agent = build_static(&["-p", package], package)?;
    let binary = std::fs::read(&agent).with_context(|| format!("reading {}", agent.display()))?;
    let cpio = initramfs(&binary);
    util::install_if_changed(&cpio, &out)?;
    println!("{package}: {} ({} KiB)", out.display(), cpio.len() / 1024);
    Ok(out)
}

/// Builds a guest program (`cargo build --release SELECT…`, binary `name`) linked
/// statically against glibc, as the guest has no libc of its own; returns its path.
pub fn build_static(select: &[&str], name: &str) -> Result<PathBuf> {
    let root = paths::repo_root();
    let target_dir = root.join("target/guest");
    // A separate target dir: the static RUSTFLAGS would otherwise invalidate the host build.
    // `--target` keeps those flags away from build scripts and proc macros.
    util::run(
        Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--release", "--quiet"])
            .args(select)
            .args(["--target", TARGET])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    let path = target_dir.join(TARGET).join("release").join(name);
    let binary = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if binary.windows(12).any(|w| w == b"/lib64/ld-li") {
        bail!(
            "{} is dynamically linked; the guest needs a static binary",
            path.display()
        );
    }
    Ok(path)
}

/// A newc cpio archive: the mount points the agent needs, /dev/console, and the agent as /init.
fn initramfs(agent: &[u8]) -> Vec<u8> {
    let mut entries: Vec<CpioEntry> = ["dev", "proc", "sys", "newroot"]
        .into_iter()
        .map(CpioEntry::dir)
        .collect();
    entries.push(CpioEntry::console());
    entries.push(CpioEntry::file("init", 0o755, agent));
    newc(&entries)
}

/// One member of a newc cpio archive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpioEntry<'a> {
    /// Path inside the archive, without a leading `/`.
    pub name: &'a str,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Device major and minor, for device nodes.
    pub rdev: (u32, u32),
    /// File contents (empty for directories and devices).
    pub data: &'a [u8],
}

impl<'a> CpioEntry<'a> {
    /// A directory, mode 0755.
    pub fn dir(name: &'a str) -> Self {
        CpioEntry {
            name,
            mode: 0o040755,
            rdev: (0, 0),
            data: &[],
        }
    }

    /// `dev/console` (char 5:1), so the kernel can open the console for PID 1.
    pub fn console() -> Self {
        CpioEntry {
            name: "dev/console",
            mode: 0o020600,
            rdev: (5, 1),
            data: &[],
        }
    }

    /// A regular file with permission bits `perm`.
    pub fn file(name: &'a str, perm: u32, data: &'a [u8]) -> Self {
        CpioEntry {
            name,
            mode: 0o100000 | perm,
            rdev: (0, 0),
            data,
        }
    }
}

/// A newc cpio archive of `entries` followed by the trailer.
/// Written by hand: the format is a few fixed-width hex fields, and this lets us add device
/// nodes without root.
pub(crate) fn newc(entries: &[CpioEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer = CpioEntry {
        name: "TRAILER!!!",
        mode: 0,
        rdev: (0, 0),
        data: &[],
    };
    for (ino, e) in (1u32..).zip(entries.iter().chain([&trailer])) {
        let fields = [
            ino,
            e.mode,
            0,
            0,
            1,
            0,
            e.data.len() as u32,
            0,
            0,
            e.rdev.0,
            e.rdev.1,
            e.name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(e.name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(e.data);
        pad4(&mut out);
    }
    out
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}
