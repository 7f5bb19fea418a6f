//! `cargo xtask demo`: from a fresh machine to a command running in a microVM.

use crate::{agent, kernel, paths, rootfs, setup, util};
use anyhow::Result;
use std::path::PathBuf;
use std::process::Command;

/// Builds `msb` (cargo's progress on stderr: minutes on a fresh machine) and returns the
/// path of the binary.
pub fn build_msb(release: bool) -> Result<PathBuf> {
    let root = paths::repo_root();
    println!(
        "msb: building ({}; cargo shows its progress)",
        if release { "release" } else { "debug" }
    );
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&root).args(["build", "-p", "msb-cli"]);
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
    let msb = install(&build_msb(true)?)?;
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

/// Puts `msb` where `cargo install` would (`~/.cargo/bin`, on the PATH of a rustup
/// shell), so the README's next commands work; says how if that is not on the PATH.
fn install(built: &std::path::Path) -> Result<PathBuf> {
    let bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::home().join(".cargo"))
        .join("bin");
    std::fs::create_dir_all(&bin)?;
    let dest = bin.join("msb");
    util::install_if_changed(&std::fs::read(built)?, &dest)?;
    std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let on_path = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == bin));
    println!("msb: installed {}", dest.display());
    if !on_path {
        eprintln!(
            "    {} is not on your PATH: run `export PATH=\"{}:$PATH\"` (or `. ~/.cargo/env`)",
            bin.display(),
            bin.display()
        );
    }
    Ok(dest)
}
