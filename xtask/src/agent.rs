//! Builds the static guest agent and packs it as `/init` into an uncompressed initramfs.

use crate::{paths, util};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds `msb-agent` (static glibc) and installs `initramfs.cpio` into the msb lib dir.
pub fn build() -> Result<PathBuf> {
    let root = paths::repo_root();
    let target_dir = root.join("target/guest");
    // A separate target dir: the static RUSTFLAGS would otherwise invalidate the host build.
    // `--target` keeps those flags away from build scripts and proc macros.
    util::run(
        Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--release", "--quiet", "-p", "msb-agent", "--target", TARGET])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    let agent = target_dir.join(TARGET).join("release/msb-agent");
    let binary = std::fs::read(&agent).with_context(|| format!("reading {}", agent.display()))?;
    if binary.windows(12).any(|w| w == b"/lib64/ld-li") {
        bail!(
            "{} is dynamically linked; the guest needs a static binary",
            agent.display()
        );
    }
    let cpio = initramfs(&binary);
    let out = paths::msb_lib_dir().join("initramfs.cpio");
    util::install_if_changed(&cpio, &out)?;
    println!("agent: {} ({} KiB)", out.display(), cpio.len() / 1024);
    Ok(out)
}

/// A newc cpio archive: the mount points the agent needs, /dev/console, and the agent as /init.
/// Written by hand: the format is a few fixed-width hex fields, and this lets us add the
/// console device node without root.
fn initramfs(agent: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ino = 1;
    let mut entry = |name: &str, mode: u32, rdev: (u32, u32), data: &[u8]| {
        let fields = [
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        ino += 1;
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(data);
        pad4(&mut out);
    };
    for dir in ["dev", "proc", "sys", "newroot"] {
        entry(dir, 0o040755, (0, 0), &[]);
    }
    entry("dev/console", 0o020600, (5, 1), &[]);
    entry("init", 0o100755, (0, 0), agent);
    entry("TRAILER!!!", 0, (0, 0), &[]);
    out
}

fn pad4(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}
