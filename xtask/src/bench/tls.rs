//! `cargo xtask bench tls`: what TLS interception (secret substitution) costs against
//! pass-through, in one run (needs root: network namespaces).
//!
//! 1. Host-only figures from an optimised build (`tls_host.rs`): msb-net's HTTPS bench on
//!    the frame harness. Measured first, while nothing else runs.
//! 2. Through a VM, inside the network test world (`msb_e2e::networld`; nothing leaves the
//!    machine): `msb run` of a copy of the Debian fixture runs curl against the world's
//!    HTTPS server under an intercepted name and a passed-through one (`tls_vm.rs`), and
//!    the world's log must show the real value on every intercepted request.
//!
//! VM figures are TCG (software emulation) on hosts without usable KVM, and say so.

use super::net::run_msb;
use super::tls_host::{self, HostParams};
use super::tls_vm::{self, VmFigures, VmParams};
use super::{console, net};
use crate::{debian_rootfs, demo, util};
use anyhow::{bail, Context, Result};
use msb_e2e::networld::NetWorld;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The whole `msb run`, boot to exit, at most.
const RUN_TIMEOUT: Duration = Duration::from_secs(1200);

/// Runs the benchmark and prints its figures (or one JSON object).
pub fn run(host: &HostParams, vm: &VmParams, json: bool) -> Result<()> {
    if host.requests == 0 || host.mib == 0 || host.handshakes == 0 || vm.requests == 0 || vm.handshakes == 0 {
        bail!("every count must be at least 1");
    }
    let (host_section, figures) = console::stdout_to_stderr(|| -> Result<_> {
        let host_section = tls_host::section(host, json)?;
        Ok((host_section, measure(vm)?))
    })??;
    if json {
        let out = serde_json::json!({
            "host_only": serde_json::from_str::<serde_json::Value>(&host_section).context("the host-only figures")?,
            "vm": figures.json(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print!("{host_section}");
    println!();
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = figures.text(&mut text);
    print!("{text}");
    println!();
    println!("load average at the end: {}", console::loadavg());
    Ok(())
}

/// One `msb run` of the guest script in a fresh world, on a private copy of the Debian tree.
fn measure(p: &VmParams) -> Result<VmFigures> {
    let msb = demo::build_msb(true)?;
    let tmp = tempfile::Builder::new().prefix("msb-bench-tls-").tempdir()?;
    let root = tmp.path().join("root");
    util::run(Command::new("cp").arg("-a").arg(debian_rootfs::build()?).arg(&root))?;
    net::in_fresh_world("tls", tmp.path(), |world| run_guest(world, &msb, tmp.path(), &root, p))
}

/// `msb run` with the secret and interception, inside `world`'s SBX, bounded by
/// [`RUN_TIMEOUT`], and its figures.
fn run_guest(world: &NetWorld, msb: &Path, tmp: &Path, root: &Path, p: &VmParams) -> Result<VmFigures> {
    let ca = root.join(tls_vm::WORLD_CA);
    std::fs::write(&ca, world.tls_cert_pem()).with_context(|| format!("writing {}", ca.display()))?;
    let secret = format!("{}={}@{}", tls_vm::SECRET, tls_vm::VALUE, tls_vm::INTERCEPTED);
    let mut cmd = Command::new(msb);
    cmd.arg("run")
        .arg("--rootfs")
        .arg(root)
        .args(["--secret", &secret, "--tls-intercept", "*.wild.test"])
        .arg("--tls-upstream-ca-cert")
        .arg(world.tls_cert_path())
        .args(["--", "sh", "-c", &tls_vm::script(p)]);
    let stdout = run_msb(world, cmd, tmp, RUN_TIMEOUT)?;
    let accel = if super::is_kvm() { "KVM" } else { "TCG" };
    tls_vm::figures(p, accel, &stdout, &world.hits()).with_context(|| format!("msb run; stdout:\n{stdout}"))
}
