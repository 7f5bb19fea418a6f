//! The VM suites a user meets first (runs on directory and image roots, patches, the
//! confinement of QEMU and virtiofsd, templates, snapshots) run again as an ordinary user:
//! CI runs as root, and msb must work, confined, without it. Everything the user needs is
//! staged into a directory it can read, since the checkout and `~/.cache` of root may not
//! be.

use crate::{paths, setup, util};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The user the suites run as.
const USER: &str = "msb-unprivileged";
/// Where its copies of the binaries, guest artefacts and root go.
const STAGE: &str = "/var/tmp/msb-unprivileged";
/// The suites (`crates/msb-e2e/tests/NAME.rs`).
const SUITES: &[&str] = &[
    "vm_run",
    "vm_image",
    "vm_patches",
    "vm_confinement",
    "vm_templates",
    "vm_snapshots",
];

/// Runs [`SUITES`] as [`USER`], with `msb` and the busybox `root`; pulls from `registry`.
pub fn test(msb: &Path, root: &Path, registry: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("unprivileged: this run is not root already; nothing more to do");
        return Ok(());
    }
    ensure_user()?;
    let stage = PathBuf::from(STAGE);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("clearing {STAGE}"))?;
    }
    std::fs::create_dir_all(&stage)?;
    let lib = paths::msb_lib_dir();
    let copy = |from: &Path, name: &str| -> Result<PathBuf> {
        let to = stage.join(name);
        util::run(Command::new("cp").args(["-a", "--reflink=auto"]).arg(from).arg(&to))?;
        Ok(to)
    };
    let staged_msb = copy(msb, "msb")?;
    let kernel = copy(&lib.join("vmlinux"), "vmlinux")?;
    let initramfs = copy(&lib.join("initramfs.cpio"), "initramfs.cpio")?;
    let virtiofsd = copy(&setup::virtiofsd()?, "virtiofsd")?;
    let rootfs = copy(root, "rootfs")?;
    let suites = SUITES
        .iter()
        .map(|suite| copy(&test_binary(suite)?, suite))
        .collect::<Result<Vec<_>>>()?;
    util::run(Command::new("chown").args(["-R", &format!("{USER}:")]).arg(&stage))?;
    let mut failed = Vec::new();
    for (name, binary) in SUITES.iter().zip(&suites) {
        println!("unprivileged: {name} as {USER}");
        let mut run = Command::new("runuser");
        run.args(["-u", USER, "--", "env", "-i"])
            .arg(format!("HOME=/home/{USER}"))
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(format!("MSB_BIN={}", staged_msb.display()))
            .arg(format!("MSB_KERNEL={}", kernel.display()))
            .arg(format!("MSB_INITRAMFS={}", initramfs.display()))
            .arg(format!("MSB_VIRTIOFSD={}", virtiofsd.display()))
            .arg(format!("MSB_TEST_ROOTFS={}", rootfs.display()))
            .arg(format!("MSB_TEST_REGISTRY={registry}"))
            .arg("MSB_REQUIRE_VM=1")
            .arg("MSB_SUPERVISOR_SECCOMP=kill")
            .arg(binary)
            .arg("--test-threads=2")
            .current_dir(&stage);
        if util::run(&mut run).is_err() {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        bail!("as an unprivileged user, these suites failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Makes [`USER`] if it is missing.
fn ensure_user() -> Result<()> {
    let exists = Command::new("id").arg("-u").arg(USER).output()?.status.success();
    if !exists {
        util::run(Command::new("useradd").args(["--create-home", "--shell", "/usr/sbin/nologin", USER]))
            .with_context(|| format!("adding the user {USER}"))?;
    }
    Ok(())
}

/// The built test binary of `crates/msb-e2e/tests/SUITE.rs`.
fn test_binary(suite: &str) -> Result<PathBuf> {
    let out = Command::new(env!("CARGO"))
        .current_dir(paths::repo_root())
        .args([
            "test",
            "-p",
            "msb-e2e",
            "--test",
            suite,
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .context("building the test binaries")?;
    if !out.status.success() {
        bail!(
            "building the {suite} suite failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["target"]["name"] == suite && msg["profile"]["test"] == true)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo named no executable for the {suite} suite"))
}
