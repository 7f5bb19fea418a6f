//! The figures of `bench boot`, printed for people or as one JSON object.

use super::procmem::ProcMem;
use super::procs::Sweep;
use super::sdk::{BootSample, ExecTiming, IdleMemory};
use super::snapshot::{ForkRound, FORKS};
use super::stats::Summary;
use msb_vmm::Accel;
use msb_vmm::AccelChoice as Choice;
use serde_json::{json, Value};
use std::time::Duration;

/// Everything `bench boot` measured.
#[derive(Debug, Default)]
pub struct Figures {
    /// The accelerator the VMs ran on.
    pub accel: Option<Choice>,
    /// Load averages at the start and at the end.
    pub load: (String, String),
    /// Bare QEMU, launch → exit.
    pub floor: Vec<Duration>,
    /// `msb run -- true`, wall time.
    pub msb_run: Vec<Duration>,
    /// The same with QEMU's and the supervisor's confinement off.
    pub msb_run_unconfined: Vec<Duration>,
    /// In-process SDK boots.
    pub boots: Vec<BootSample>,
    /// Exec round trips of `true` in one running VM.
    pub exec: Vec<ExecTiming>,
    /// Memory of an idle VM.
    pub memory: Option<IdleMemory>,
    /// `msb run IMAGE -- echo up`, launch → first output, booting cold.
    pub image_cold: Vec<Duration>,
    /// The same, resuming the image's template.
    pub image_template: Vec<Duration>,
    /// The same with no template yet: it records one, then resumes it.
    pub image_recording: Vec<Duration>,
    /// The template's size on disk.
    pub template_bytes: Option<u64>,
    /// `msb snapshot create` of a running image sandbox, wall time.
    pub snapshot_save: Vec<Duration>,
    /// `msb create --from-snapshot` + `msb exec -- echo up`, wall time.
    pub snapshot_resume: Vec<Duration>,
    /// A snapshot's files on disk.
    pub snapshot_bytes: Option<u64>,
    /// `msb fork --count 4` of a running image sandbox, to four running copies.
    pub fork_four: Vec<Duration>,
    /// That, plus `msb exec -- echo up` in each copy.
    pub fork_four_output: Vec<Duration>,
    /// The last fork round's host memory.
    pub fork_memory: Option<ForkRound>,
    /// Processes left behind and other VMs on the machine.
    pub sweep: Sweep,
}

/// The summaries the text and JSON share.
struct Derived {
    floor: Summary,
    msb_run: Summary,
    msb_run_unconfined: Summary,
    host_ready: Summary,
    agent_start: Summary,
    guest_ready: Summary,
    shutdown: Summary,
    exec: Summary,
    exec_started: Summary,
    image_cold: Summary,
    image_template: Summary,
    image_recording: Summary,
    snapshot_save: Summary,
    snapshot_resume: Summary,
    fork_four: Summary,
    fork_four_output: Summary,
}

impl Derived {
    fn of(f: &Figures) -> Derived {
        let boots = |pick: fn(&BootSample) -> Duration| Summary::of(&f.boots.iter().map(pick).collect::<Vec<_>>());
        Derived {
            floor: Summary::of(&f.floor),
            msb_run: Summary::of(&f.msb_run),
            msb_run_unconfined: Summary::of(&f.msb_run_unconfined),
            host_ready: boots(|b| b.host_ready),
            agent_start: boots(|b| b.agent_start),
            guest_ready: boots(|b| b.guest_ready),
            shutdown: boots(|b| b.shutdown),
            exec: Summary::of(&f.exec.iter().map(|e| e.exited).collect::<Vec<_>>()),
            exec_started: Summary::of(&f.exec.iter().map(|e| e.started).collect::<Vec<_>>()),
            image_cold: Summary::of(&f.image_cold),
            image_template: Summary::of(&f.image_template),
            image_recording: Summary::of(&f.image_recording),
            snapshot_save: Summary::of(&f.snapshot_save),
            snapshot_resume: Summary::of(&f.snapshot_resume),
            fork_four: Summary::of(&f.fork_four),
            fork_four_output: Summary::of(&f.fork_four_output),
        }
    }

    /// How much longer `msb run` takes confined than unconfined (0.05: 5%).
    fn confinement_cost(&self) -> f64 {
        if self.msb_run_unconfined.median > 0.0 {
            self.msb_run.median / self.msb_run_unconfined.median - 1.0
        } else {
            0.0
        }
    }

    fn ratio(&self, s: &Summary) -> f64 {
        if self.floor.median > 0.0 {
            s.median / self.floor.median
        } else {
            0.0
        }
    }
}

fn accel_header(choice: Option<&Choice>) -> String {
    match choice.map(|c| c.accel) {
        Some(Accel::Kvm) => "accel: KVM (hardware virtualisation)".into(),
        Some(Accel::Tcg) => "accel: TCG (software emulation) — these are TCG figures, not KVM".into(),
        None => "accel: unknown".into(),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Prints the figures for people.
pub fn print(f: &Figures) {
    let d = Derived::of(f);
    println!("== cargo xtask bench boot ==");
    println!("{}", accel_header(f.accel.as_ref()));
    if let Some(reason) = f.accel.as_ref().and_then(|c| c.reason.as_deref()) {
        println!("   (why not KVM: {reason})");
    }
    println!(
        "host: {} CPUs; load average {} at start, {} at end; {} other QEMU process(es) running (not ours)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        f.load.0,
        f.load.1,
        f.sweep.other_qemu
    );
    let r = microsandbox::Resources::default();
    println!(
        "{} rounds of (floor, msb run, msb run unconfined, SDK boot, image runs recording, resuming, cold, snapshot save and resume, fork of 4) interleaved, after 1 warm-up round; guest {} vCPU, {} MiB",
        d.floor.n, r.cpus, r.memory_mib
    );
    println!();
    println!("boot");
    println!("  bare-QEMU floor, launch → exit           {}", d.floor.secs());
    println!("    (same kernel, machine options and cmdline, no devices; init: ~200-byte static ELF, write + reboot)");
    println!(
        "  msb run --rootfs <busybox> -- true       {} = {:.2}× bare-QEMU floor {:.3} s",
        d.msb_run.secs(),
        d.ratio(&d.msb_run),
        d.floor.median
    );
    println!(
        "  the same, host confinement off           {} (confinement costs {:+.1}%)",
        d.msb_run_unconfined.secs(),
        d.confinement_cost() * 100.0
    );
    println!("    (MSB_QEMU_CONFINEMENT=off MSB_SUPERVISOR_SECCOMP=off MSB_SUPERVISOR_LANDLOCK=off: no -sandbox, Landlock, own ids, rlimits, supervisor walls)");
    println!(
        "  SDK: VMM launch → agent Ready            {} = {:.2}× bare-QEMU floor {:.3} s",
        d.host_ready.secs(),
        d.ratio(&d.host_ready),
        d.floor.median
    );
    println!("    guest: kernel start → agent start      {}", d.agent_start.secs());
    println!("    guest: kernel start → agent Ready      {}", d.guest_ready.secs());
    println!(
        "    outside the guest's clock              {:.3} s (launch→Ready − guest Ready: QEMU + virtiofsd start, early kernel setup, handshake)",
        d.host_ready.median - d.guest_ready.median
    );
    println!("  SDK: shutdown (request → VM gone)        {}", d.shutdown.secs());
    println!(
        "  msb run − (launch→Ready + shutdown)     {:.3} s (difference of medians, noisy: process start, exec `true`, cleanup)",
        d.msb_run.median - d.host_ready.median - d.shutdown.median
    );
    println!();
    println!("start from a template: msb run <busybox image> -- echo up, launch → first output");
    println!(
        "  booted cold (MSB_NO_TEMPLATE=1)          {} = {:.2}× bare-QEMU floor",
        d.image_cold.secs(),
        d.ratio(&d.image_cold)
    );
    println!(
        "  resumed from the template                {} = {:.2}× bare-QEMU floor ({:.2}× cold)",
        d.image_template.secs(),
        d.ratio(&d.image_template),
        d.image_template.median / d.image_cold.median.max(f64::EPSILON)
    );
    println!(
        "  first of its make (records, then resumes) {} (recording costs {:.3} s once)",
        d.image_recording.secs(),
        d.image_recording.median - d.image_template.median
    );
    if let Some(bytes) = f.template_bytes {
        println!(
            "  template on disk                         {:.1} MiB",
            bytes as f64 / (1 << 20) as f64
        );
    }
    println!();
    println!("snapshots of a running sandbox of the image");
    println!("  msb snapshot create (guest paused)       {}", d.snapshot_save.secs());
    if let Some(bytes) = f.snapshot_bytes {
        println!(
            "  snapshot on disk                         {:.1} MiB",
            bytes as f64 / (1 << 20) as f64
        );
    }
    println!(
        "  create --from-snapshot + exec echo up    {} = {:.2}× bare-QEMU floor ({:.2}× cold image run)",
        d.snapshot_resume.secs(),
        d.ratio(&d.snapshot_resume),
        d.snapshot_resume.median / d.image_cold.median.max(f64::EPSILON)
    );
    println!(
        "  msb fork --count {FORKS} (to {FORKS} running copies) {} = {:.2}× {FORKS} creates from a snapshot",
        d.fork_four.secs(),
        d.fork_four.median / (FORKS as f64 * d.snapshot_resume.median).max(f64::EPSILON)
    );
    println!(
        "    + echo up in each copy in turn         {} = {:.2}× bare-QEMU floor",
        d.fork_four_output.secs(),
        d.ratio(&d.fork_four_output)
    );
    if let Some(m) = &f.fork_memory {
        println!(
            "    host memory of the {FORKS} copies' QEMUs    PSS {:.1} MiB in all = {:.2}× {FORKS} unshared (one copy maps {:.1} MiB; the forked VM {:.1} MiB)",
            mib(m.copies_pss_kib),
            m.copies_pss_kib as f64 / (FORKS as u64 * m.copy_rss_kib).max(1) as f64,
            mib(m.copy_rss_kib),
            mib(m.source_rss_kib)
        );
    }
    println!();
    println!("exec round trip of `true` in a running VM ({} execs)", d.exec.n);
    println!("  request → Exited   {}", d.exec.millis_p99());
    println!("  request → Started  {}", d.exec_started.millis_p99());
    if let Some(m) = &f.memory {
        println!();
        print_memory(m);
    }
    println!();
    match f.sweep.leftovers.as_slice() {
        [] => println!("processes left running by this bench: none (checked /proc for our temp dir)"),
        left => println!(
            "processes left running by this bench: {} — killed: {left:?}",
            left.len()
        ),
    }
}

fn print_memory(m: &IdleMemory) {
    let (rss, pss) = vm_totals(m);
    println!("host memory of an idle VM (after boot, the exec round trips and 1 s idle)");
    let row = |label: &str, p: &ProcMem| {
        println!(
            "  {label:<38} RSS {:>7.1} MiB   PSS {:>7.1} MiB",
            mib(p.rss_kib),
            mib(p.pss_kib)
        )
    };
    for p in &m.vm {
        row(&format!("{} (pid {})", p.name, p.pid), p);
        if p.name.starts_with("qemu") {
            for (kind, kib) in &m.qemu_breakdown {
                println!("      {kind:<56} RSS {:>7.1} MiB", mib(*kib));
            }
        }
    }
    println!(
        "  {:<38} RSS {:>7.1} MiB   PSS {:>7.1} MiB",
        "VM total",
        mib(rss),
        mib(pss)
    );
    row("this process (SDK side, in-process)", &m.host_side);
    println!(
        "  guest RAM: {} MiB configured, MemTotal {:.1} MiB, in use (MemTotal − MemFree) {:.1} MiB",
        m.guest_configured_mib,
        mib(m.guest_total_kib),
        mib(m.guest_used_kib)
    );
    println!(
        "  host overhead beyond guest RAM in use: {:.1} MiB by RSS, {:.1} MiB by PSS",
        mib(rss) - mib(m.guest_used_kib),
        mib(pss) - mib(m.guest_used_kib)
    );
}

fn vm_totals(m: &IdleMemory) -> (u64, u64) {
    (
        m.vm.iter().map(|p| p.rss_kib).sum(),
        m.vm.iter().map(|p| p.pss_kib).sum(),
    )
}

/// All figures as one JSON object (times in seconds, memory in KiB).
pub fn json(f: &Figures) -> Value {
    let d = Derived::of(f);
    let memory = f.memory.as_ref().map(|m| {
        let (rss, pss) = vm_totals(m);
        json!({
            "vm_processes": m.vm.iter().map(ProcMem::json).collect::<Vec<_>>(),
            "qemu_rss_by_kind_kib": m.qemu_breakdown.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "vm_rss_kib": rss,
            "vm_pss_kib": pss,
            "host_side_process": m.host_side.json(),
            "guest_configured_mib": m.guest_configured_mib,
            "guest_total_kib": m.guest_total_kib,
            "guest_used_kib": m.guest_used_kib,
            "overhead_rss_kib": rss as i64 - m.guest_used_kib as i64,
            "overhead_pss_kib": pss as i64 - m.guest_used_kib as i64,
        })
    });
    json!({
        "accel": f.accel.as_ref().map(|c| c.accel.to_string()),
        "accel_note": f.accel.as_ref().and_then(|c| c.reason.clone()),
        "load_average": { "start": f.load.0, "end": f.load.1 },
        "other_qemu_processes": f.sweep.other_qemu,
        "floor_s": d.floor.json(false),
        "msb_run_true_s": d.msb_run.json(false),
        "msb_run_true_unconfined_s": d.msb_run_unconfined.json(false),
        "confinement_cost": d.confinement_cost(),
        "sdk_launch_to_ready_s": d.host_ready.json(false),
        "guest_agent_start_s": d.agent_start.json(false),
        "guest_ready_s": d.guest_ready.json(false),
        "shutdown_s": d.shutdown.json(false),
        "image_first_output_cold_s": d.image_cold.json(false),
        "image_first_output_template_s": d.image_template.json(false),
        "image_first_output_recording_s": d.image_recording.json(false),
        "template_bytes": f.template_bytes,
        "snapshot_save_s": d.snapshot_save.json(false),
        "snapshot_resume_to_output_s": d.snapshot_resume.json(false),
        "snapshot_bytes": f.snapshot_bytes,
        "fork_4_to_running_s": d.fork_four.json(false),
        "fork_4_to_output_s": d.fork_four_output.json(false),
        "fork_4_memory_kib": f.fork_memory.as_ref().map(|m| json!({
            "copies_pss": m.copies_pss_kib,
            "copy_rss": m.copy_rss_kib,
            "source_rss": m.source_rss_kib,
        })),
        "ratio_to_floor": {
            "msb_run_true": d.ratio(&d.msb_run),
            "sdk_launch_to_ready": d.ratio(&d.host_ready),
            "image_first_output_cold": d.ratio(&d.image_cold),
            "image_first_output_template": d.ratio(&d.image_template),
            "snapshot_resume_to_output": d.ratio(&d.snapshot_resume),
        },
        "exec_true_s": d.exec.json(true),
        "exec_true_to_started_s": d.exec_started.json(true),
        "idle_memory": memory,
        "leftover_processes": f.sweep.leftovers.iter().map(|(pid, name)| json!({"pid": pid, "argv0": name})).collect::<Vec<_>>(),
    })
}
