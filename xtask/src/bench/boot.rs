//! `cargo xtask bench boot`: boot time, exec round trip and idle memory, against the floor of
//! the same kernel booted by bare QEMU, all measured in the same run.

use super::console;
use super::floor::Floor;
use super::report::Figures;
use super::sdk::{self, BootSample};
use super::template::{ImageRun, Start};
use super::{procs, report};
use crate::{agent, demo, kernel, registry, rootfs, setup, util};
use anyhow::{bail, Context, Result};
use microsandbox::HostConfig;
use microsandbox::{Paths, Resources};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Exec round trips timed in one running VM.
const EXECS: usize = 100;
/// How long the VM idles before its memory is read.
const IDLE: Duration = Duration::from_secs(1);

/// Everything the runs share: artefacts, the rootfs copy, a private `MSB_HOME`, the floor.
struct Setup {
    /// Root of every file and socket the bench creates; removed on drop.
    tmp: tempfile::TempDir,
    msb: PathBuf,
    root: PathBuf,
    paths: Paths,
    host: HostConfig,
    floor: Floor,
    /// The busybox fixture image, pulled into the home.
    image: String,
}

/// Runs the benchmark with `runs` samples per boot figure; prints text or one JSON object.
pub fn run(runs: usize, json: bool) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let accel = msb_vmm::accel::detect(msb_vmm::AccelSetting::Auto);
    // Build output goes to stderr so that `--json` leaves stdout to the JSON object.
    let setup = console::stdout_to_stderr(prepare)??;
    let load_start = console::loadavg();
    let measured = measure(&setup, runs);
    let sweep = procs::sweep(setup.tmp.path());
    let mut figures = match measured {
        Ok(f) => f,
        Err(e) => {
            // Keep the logs the error points at.
            let kept = setup.tmp.keep();
            let killed = &sweep.leftovers;
            return Err(e.context(format!(
                "bench files kept in {}; leftover processes killed: {killed:?}",
                kept.display()
            )));
        }
    };
    figures.accel = Some(accel);
    figures.load = (load_start, console::loadavg());
    figures.sweep = sweep;
    if json {
        println!("{}", serde_json::to_string_pretty(&report::json(&figures))?);
    } else {
        report::print(&figures);
    }
    Ok(())
}

/// Builds (or finds) the kernel, agent, rootfs and release `msb`, and lays out a temp dir.
fn prepare() -> Result<Setup> {
    let kernel = kernel::build()?;
    let initramfs = agent::build()?;
    let rootfs = rootfs::build()?;
    let msb = demo::build_msb(true)?;
    let tmp = tempfile::Builder::new()
        .prefix("msb-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    let root = tmp.path().join("rootfs");
    // A copy: the guest shares its root read-write, and the cached tree must stay pristine.
    util::run(Command::new("cp").arg("-a").arg(&rootfs).arg(&root))?;
    let home = tmp.path().join("home");
    let lib = home.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    for (installed, name) in [(&kernel, "vmlinux"), (&initramfs, "initramfs.cpio")] {
        std::os::unix::fs::symlink(installed, lib.join(name))
            .with_context(|| format!("linking {} into {}", installed.display(), lib.display()))?;
    }
    let paths = Paths::new(home);
    let host = HostConfig {
        kernel: kernel.clone(),
        initramfs,
        qemu: setup::find_in_path("qemu-system-x86_64"),
        virtiofsd: Some(setup::virtiofsd()?),
        templates: true,
        accel: msb_vmm::AccelSetting::Auto,
    };
    let floor = Floor::prepare(&tmp.path().join("floor"), &kernel, host.qemu.clone())?;
    let image = format!("{}/msb-test/busybox", registry::ensure()?);
    let setup = Setup {
        tmp,
        msb,
        root,
        paths,
        host,
        floor,
        image,
    };
    let mut pull = Command::new(&setup.msb);
    pull.envs(setup.image_run().env).args(["pull", "-q", &setup.image]);
    util::run(&mut pull)?;
    Ok(setup)
}

impl Setup {
    fn image_run(&self) -> ImageRun<'_> {
        ImageRun {
            msb: &self.msb,
            env: [
                ("MSB_HOME", self.paths.home()),
                ("MSB_KERNEL", &self.host.kernel),
                ("MSB_INITRAMFS", &self.host.initramfs),
            ],
            image: &self.image,
        }
    }
}

/// One warm-up round, then `runs` rounds of (floor, msb run, msb run unconfined, SDK boot,
/// image runs recording a template, resuming it, booting cold, a snapshot saved and
/// resumed, a fork of four) interleaved so that load from other work on the machine hits all alike; then
/// the running-VM figures.
fn measure(setup: &Setup, runs: usize) -> Result<Figures> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // The floor gets the RAM our VMs get (the SDK's and msb run's default).
    let memory_mib = Resources::default().memory_mib;
    let mut f = Figures::default();
    setup.image_run().begin_snapshots()?;
    for round in 0..=runs {
        console::progress(
            "boot",
            &format!("round {round}/{runs}{}", if round == 0 { " (warm-up)" } else { "" }),
        );
        let floor = setup.floor.boot(memory_mib)?;
        let cli = msb_run_true(setup, true)?;
        let unconfined = msb_run_true(setup, false)?;
        let spec = sdk::spec(&format!("bench-{round}"), &setup.root);
        let boot: BootSample = rt.block_on(sdk::boot_once(&spec, &setup.paths, &setup.host))?;
        let image = setup.image_run();
        let recording = image.first_output(Start::Recording)?;
        let template = image.first_output(Start::Template)?;
        let cold = image.first_output(Start::Cold)?;
        let snapshot = image.snapshot_round(round)?;
        let fork = image.fork_round(round)?;
        if round > 0 {
            f.fork_four.push(fork.fork);
            f.fork_four_output.push(fork.to_output);
            f.fork_memory = Some(fork);
            f.snapshot_save.push(snapshot.save);
            f.snapshot_resume.push(snapshot.resume);
            f.snapshot_bytes = Some(snapshot.bytes);
            f.image_recording.push(recording);
            f.image_template.push(template);
            f.image_cold.push(cold);
            f.floor.push(floor);
            f.msb_run.push(cli);
            f.msb_run_unconfined.push(unconfined);
            f.boots.push(boot);
        }
    }
    setup.image_run().end_snapshots()?;
    console::progress(
        "boot",
        &format!("{EXECS} exec round trips, then {} s idle", IDLE.as_secs()),
    );
    let spec = sdk::spec("bench-exec", &setup.root);
    let (execs, memory) = rt.block_on(sdk::running_vm(&spec, &setup.paths, &setup.host, EXECS, IDLE))?;
    console::progress_done();
    f.exec = execs;
    f.memory = Some(memory);
    f.template_bytes = setup.image_run().template_bytes();
    Ok(f)
}

/// Wall time of `msb run --rootfs ROOT -- true`, as a user would run it; with
/// `confined` false, with the host's walls off (QEMU's and the supervisor's), to measure
/// what they cost.
fn msb_run_true(setup: &Setup, confined: bool) -> Result<Duration> {
    let mut cmd = Command::new(&setup.msb);
    if !confined {
        cmd.env("MSB_QEMU_CONFINEMENT", "off")
            .env("MSB_SUPERVISOR_SECCOMP", "off")
            .env("MSB_SUPERVISOR_LANDLOCK", "off");
    }
    cmd.arg("run")
        .arg("--rootfs")
        .arg(&setup.root)
        .args(["--", "true"])
        .env("MSB_HOME", setup.paths.home())
        .env("MSB_KERNEL", &setup.host.kernel)
        .env("MSB_INITRAMFS", &setup.host.initramfs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::util::timed(&mut cmd, "msb run -- true").map(|(t, _)| t)
}
