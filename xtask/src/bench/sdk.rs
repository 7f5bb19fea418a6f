//! Measurements through the SDK, in this process: boot, exec round trips, idle memory.

use super::procmem::{self, field_kib, ProcMem};
use anyhow::{bail, Context, Result};
use microsandbox::HostConfig;
use microsandbox::{ExecEvent, Paths, RootSpec, SandboxSpec};
use msb_boot::BootedVm;
use msb_protocol::{ExecRequest, ExitStatus};
use std::path::Path;
use std::time::{Duration, Instant};

/// How the benchmarked VMs are stopped: SIGTERM, 5 s for processes to go.
const STOP: msb_protocol::ShutdownRequest = msb_protocol::ShutdownRequest {
    signal: 15,
    grace_ms: 5_000,
};

/// One boot, measured on the host and reported by the guest.
#[derive(Debug, Clone, Copy)]
pub struct BootSample {
    /// Host: launching the VMM → the agent's `Ready`.
    pub host_ready: Duration,
    /// Guest: kernel start → agent (PID 1) start.
    pub agent_start: Duration,
    /// Guest: kernel start → agent ready (root mounted, handshake answered).
    pub guest_ready: Duration,
    /// Host: asking the agent to shut down → VMM and helpers gone.
    pub shutdown: Duration,
}

/// Memory of an idle VM.
#[derive(Debug, Clone)]
pub struct IdleMemory {
    /// The VM's host processes (QEMU, virtiofsd).
    pub vm: Vec<ProcMem>,
    /// QEMU's RSS by kind of mapping, KiB.
    pub qemu_breakdown: Vec<(&'static str, u64)>,
    /// This process (the SDK side: agent client, tokio runtime).
    pub host_side: ProcMem,
    /// Guest RAM configured, MiB.
    pub guest_configured_mib: u32,
    /// Guest `MemTotal`, KiB.
    pub guest_total_kib: u64,
    /// Guest `MemTotal - MemFree`, KiB.
    pub guest_used_kib: u64,
}

/// A spec for `root` with the default resources (1 vCPU, 512 MiB).
pub fn spec(name: &str, root: &Path) -> SandboxSpec {
    SandboxSpec::new(name, RootSpec::Bind(root.to_path_buf()))
}

/// Boots `spec` in this process, as the supervisor would.
async fn boot(spec: &SandboxSpec, paths: &Paths, host: &HostConfig) -> Result<BootedVm> {
    let plan = msb_boot::plan(spec, paths, host).context("planning the boot")?;
    let qemu = msb_vmm::Qemu::new(plan.vmm.clone());
    BootedVm::boot(&plan, &qemu).await.context("booting the VM")
}

/// Boots once, reads the timings and shuts the VM down.
pub async fn boot_once(spec: &SandboxSpec, paths: &Paths, host: &HostConfig) -> Result<BootSample> {
    let mut vm = boot(spec, paths, host).await?;
    let timings = vm.ready().timings;
    let host_ready = vm.boot_time;
    let started = Instant::now();
    vm.shutdown(STOP).await;
    Ok(BootSample {
        host_ready,
        agent_start: Duration::from_nanos(timings.agent_start_ns),
        guest_ready: Duration::from_nanos(timings.ready_ns),
        shutdown: started.elapsed(),
    })
}

/// Boots one VM, times `execs` × exec `true`, then idles for `idle` and takes its memory.
/// The VM is shut down whatever happens.
pub async fn running_vm(
    spec: &SandboxSpec,
    paths: &Paths,
    host: &HostConfig,
    execs: usize,
    idle: Duration,
) -> Result<(Vec<ExecTiming>, IdleMemory)> {
    let mut vm = boot(spec, paths, host).await?;
    let result = measure_running(&vm, spec, execs, idle).await;
    vm.shutdown(STOP).await;
    result
}

async fn measure_running(
    vm: &BootedVm,
    spec: &SandboxSpec,
    execs: usize,
    idle: Duration,
) -> Result<(Vec<ExecTiming>, IdleMemory)> {
    let mut round_trips = Vec::with_capacity(execs);
    for _ in 0..execs {
        round_trips.push(run(vm, &["true"]).await?.timing);
    }
    tokio::time::sleep(idle).await;
    // Read the host side first: the meminfo exec below wakes the guest up.
    let vm_procs = vm.pids().into_iter().map(ProcMem::read).collect::<Result<Vec<_>>>()?;
    let host_side = ProcMem::this_process()?;
    let qemu = vm_procs
        .iter()
        .find(|p| p.name.starts_with("qemu"))
        .context("no QEMU among the VM's processes")?;
    let qemu_breakdown = procmem::breakdown(qemu.pid)?;
    let meminfo = run(vm, &["cat", "/proc/meminfo"]).await?.stdout;
    let total = field_kib(&meminfo, "MemTotal:").context("no MemTotal in the guest's /proc/meminfo")?;
    let free = field_kib(&meminfo, "MemFree:").context("no MemFree in the guest's /proc/meminfo")?;
    let memory = IdleMemory {
        vm: vm_procs,
        qemu_breakdown,
        host_side,
        guest_configured_mib: spec.resources.memory_mib,
        guest_total_kib: total,
        guest_used_kib: total.saturating_sub(free),
    };
    Ok((round_trips, memory))
}

/// Host-side timing of one exec, from sending the request.
#[derive(Debug, Clone, Copy)]
pub struct ExecTiming {
    /// Until the agent reported the process started (fork + exec done in the guest).
    pub started: Duration,
    /// Until the agent reported its exit: the whole round trip.
    pub exited: Duration,
}

/// What [`run`] saw.
struct Ran {
    stdout: String,
    timing: ExecTiming,
}

/// Runs `argv` in the guest, reading events until it exits.
async fn run(vm: &BootedVm, argv: &[&str]) -> Result<Ran> {
    let req = ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        workdir: None,
        user: None,
        tty: None,
        stdin: Default::default(),
        rlimits: Vec::new(),
    };
    let t0 = Instant::now();
    let mut session = vm.exec(req).await.with_context(|| format!("exec {argv:?}"))?;
    let mut stdout = Vec::new();
    let mut started = Duration::ZERO;
    loop {
        match session.next().await.with_context(|| format!("exec {argv:?}"))? {
            Some(ExecEvent::Started(_)) => started = t0.elapsed(),
            Some(ExecEvent::Stdout(data)) => stdout.extend(data),
            Some(ExecEvent::Exited(status)) => {
                let timing = ExecTiming {
                    started,
                    exited: t0.elapsed(),
                };
                if status != ExitStatus::Code(0) {
                    bail!("{argv:?} in the guest ended with {status:?}");
                }
                let stdout = String::from_utf8_lossy(&stdout).into_owned();
                return Ok(Ran { stdout, timing });
            }
            Some(ExecEvent::SpawnFailed(f)) => bail!("{argv:?} could not start in the guest: {f:?}"),
            Some(_) => {}
            None => bail!("{argv:?}: the event stream ended before the process exited"),
        }
    }
}
