//! `cargo xtask bench net`: the sandbox network in one run (needs root: network namespaces).
//!
//! 1. Host-only figures from an optimised build (`net_host.rs`): policy evaluation time per
//!    flow and the frame harness's throughput. Measured first, while nothing else runs.
//! 2. Through a VM, inside the network test world (`msb_e2e::networld`; nothing leaves the
//!    machine): `msb run` of the busybox root fixture (a copy, with `msb-netprobe` added)
//!    runs the probe's measurements through msb's own stack — TCP both ways, connection
//!    setup, DNS through the gateway 100.96.0.1, whose upstream is the world's DNS server —
//!    then the same kernel under bare QEMU with slirp and with passt (`net_baseline.rs`),
//!    each in a fresh world. The figures come from the world's request log on the host
//!    clock (`net_figures.rs`), the same way for all three; the ratio msb / best of the two
//!    is printed beside each.
//!
//! VM figures are TCG (software emulation) on hosts without usable KVM, and say so.

use super::net_baseline::{self, Helper};
use super::net_figures::{self, from_run, probe_script, Baseline, Params};
use super::{console, net_host, procs};
use crate::{demo, paths, rootfs, util};
use anyhow::{bail, Context, Result};
use msb_e2e::networld::NetWorld;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The sandbox's gateway and DNS server (msb-net's default slot).
const GATEWAY: &str = "100.96.0.1";
/// Where the probe goes in the sandbox's root.
const PROBE: &str = "/bin/msb-netprobe";
/// The whole `msb run`, boot to exit, at most.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the benchmark and prints its figures (or one JSON object).
pub fn run(p: &Params, json: bool) -> Result<()> {
    if p.mib == 0 || p.connects == 0 || p.queries == 0 {
        bail!("--mib, --connects and --queries must be at least 1");
    }
    let (host, ours, others) = console::stdout_to_stderr(|| -> Result<_> {
        let host = net_host::section(json)?;
        let ours = measure_msb(p)?;
        let others = net_baseline::measure_all(p)?;
        Ok((host, ours, others))
    })??;
    if json {
        let out = serde_json::json!({
            "vm": std::iter::once(&ours).chain(&others).map(Baseline::json).collect::<Vec<_>>(),
            "msb_vs_best": net_figures::comparison_json(&ours, &others),
            "host_only": serde_json::from_str::<serde_json::Value>(&host).context("the host-only figures")?,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    net_figures::print(p, &ours, &others);
    println!();
    print!("{host}");
    println!();
    println!("load average at the end: {}", console::loadavg());
    Ok(())
}

/// msb's figures: one `msb run` of the probe script in a fresh world.
fn measure_msb(p: &Params) -> Result<Baseline> {
    let msb = demo::build_msb(true)?;
    let probe = net_baseline::probe()?;
    let tmp = tempfile::Builder::new().prefix("msb-bench-net-").tempdir()?;
    let root = tmp.path().join("root");
    util::run(Command::new("cp").arg("-a").arg(rootfs::build()?).arg(&root))?;
    let in_root = root.join(PROBE.trim_start_matches('/'));
    std::fs::copy(&probe, &in_root).with_context(|| format!("copying the probe to {}", in_root.display()))?;
    in_fresh_world("net", tmp.path(), |world| run_probe(world, &msb, tmp.path(), &root, p))
}

/// Runs `measure` in a fresh network test world (needs root), then makes sure nothing of
/// the run (whose files are under `tmp`) outlived it.
pub(super) fn in_fresh_world<T>(bench: &str, tmp: &Path, measure: impl FnOnce(&NetWorld) -> Result<T>) -> Result<T> {
    console::progress(bench, "msb in a fresh world");
    let world = NetWorld::try_create().context("creating the network test world (needs root)")?;
    let measured = measure(&world);
    drop(world);
    console::progress_done();
    let sweep = procs::sweep(tmp);
    let figures = measured?;
    if !sweep.leftovers.is_empty() {
        bail!("processes outlived the bench: {:?}", sweep.leftovers);
    }
    Ok(figures)
}

/// `msb run --rootfs ROOT -- sh -c PROBE-SCRIPT` inside `world`'s SBX, bounded by
/// [`RUN_TIMEOUT`], and its figures.
fn run_probe(world: &NetWorld, msb: &Path, tmp: &Path, root: &Path, p: &Params) -> Result<Baseline> {
    let script = probe_script(p, PROBE, &format!("{GATEWAY}:53"));
    let mut cmd = Command::new(msb);
    cmd.arg("run")
        .arg("--rootfs")
        .arg(root)
        .arg("--dns-nameserver")
        .arg(world.dns_server().to_string())
        .args(["--", "sh", "-c", &script]);
    let stdout = run_msb(world, cmd, tmp, RUN_TIMEOUT)?;
    let accel = if super::is_kvm() { "KVM" } else { "TCG" };
    from_run("msb", accel, p, &stdout, &world.hits()).with_context(|| format!("msb run; stdout:\n{stdout}"))
}

/// Runs `cmd` (msb and its arguments) inside `world`'s SBX with its home under `tmp` and
/// the built guest kernel and agent, bounded by `limit`, after clearing the world's log;
/// its stdout, or an error with both outputs if it failed.
pub(super) fn run_msb(world: &NetWorld, mut cmd: Command, tmp: &Path, limit: Duration) -> Result<String> {
    let msb = cmd.get_program().to_owned();
    cmd.env("MSB_HOME", tmp.join("home"))
        .env("MSB_BIN", msb)
        .env("MSB_KERNEL", paths::msb_lib_dir().join("vmlinux"))
        .env("MSB_INITRAMFS", paths::msb_lib_dir().join("initramfs.cpio"));
    let (out_path, err_path) = (tmp.join("msb.stdout"), tmp.join("msb.stderr"));
    let mut cmd = world.wrap(cmd);
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?);
    world.clear_log();
    let mut child = Helper(cmd.spawn().context("starting msb run")?);
    let status = child.wait_within(limit);
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let status = status.with_context(|| format!("msb run; stdout:\n{stdout}\nstderr:\n{stderr}"))?;
    if !status.success() {
        bail!("msb run failed: {status}; stdout:\n{stdout}\nstderr:\n{stderr}");
    }
    Ok(stdout)
}
