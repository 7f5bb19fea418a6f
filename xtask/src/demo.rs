//! `cargo xtask demo`: from a fresh machine to a command running in a microVM.

use crate::{agent, kernel, paths, rootfs, setup, util};
use anyhow::Result;
use std::path::PathBuf;
use std::process::Command;

/// Builds `msb` and returns the path of the binary.
pub fn build_msb(release: bool) -> Result<PathBuf> {
    let root = paths::repo_root();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&root).args(["build", "--quiet", "-p", "msb-cli"]);
    if release {
        cmd.arg("--release");
    }
    util::run(&mut cmd)?;
    Ok(root
        .join("target")
        .join(if release { "release" } else { "debug" })
        .join("msb"))
}

/// Sets everything up and runs a few commands in a VM.
pub fn run() -> Result<()> {
    setup::run()?;
    kernel::build()?;
    agent::build()?;
    let root = rootfs::build()?;
    let msb = build_msb(true)?;
    let script = "echo \"hello from $(hostname), kernel $(uname -r), $(nproc) cpu\"; \
                  echo \"uptime at exec: $(cut -d' ' -f1 /proc/uptime) s\"; id; exit 0";
    println!("$ msb run --rootfs {} -- sh -c '…'", root.display());
    let started = std::time::Instant::now();
    util::run(
        Command::new(&msb)
            .arg("run")
            .arg("--rootfs")
            .arg(&root)
            .args(["--", "sh", "-c", script]),
    )?;
    println!("(msb run took {:.2} s wall time)", started.elapsed().as_secs_f64());
    Ok(())
}
