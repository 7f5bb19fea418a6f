//! `cargo xtask bench lifecycle`: what managed sandboxes cost, through the release `msb`
//! and the SDK: create + start until a first exec's output, exec round trips in a running
//! sandbox (SDK in this process, also with the supervisor's seccomp filter off, to show
//! what it costs, and `msb exec` processes), stop, rm; then ten sandboxes
//! created at once on this machine: time until all are ready and host memory per sandbox.
//! VM figures are QEMU TCG (software emulation) on hosts without usable KVM, and say so.

use super::console;
use super::procmem::ProcMem;
use super::stats::Summary;
use crate::{demo, paths, registry, util};
use anyhow::{bail, Context, Result};
use microsandbox::Microsandbox;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = "msb-test/python";
/// Exec round trips through the SDK in one running sandbox.
const SDK_EXECS: usize = 100;
/// `msb exec … true` processes timed.
const CLI_EXECS: usize = 20;
/// Sandboxes created at once.
const CROWD: usize = 10;

#[derive(Debug, Default)]
struct Figures {
    accel: String,
    first_output: Vec<Duration>,
    sdk_exec: Vec<Duration>,
    /// The same, into a sandbox whose supervisor runs without its seccomp filter.
    sdk_exec_unfiltered: Vec<Duration>,
    cli_exec: Vec<Duration>,
    stop: Vec<Duration>,
    rm: Vec<Duration>,
    crowd_ready: Duration,
    crowd_pss_kib: Vec<u64>,
}

/// Runs the benchmark; prints text or one JSON object.
pub fn run(runs: usize, json: bool) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let tmp = tempfile::Builder::new().prefix("msb-bench-life-").tempdir()?;
    let (msb, image) = console::stdout_to_stderr(|| prepare(tmp.path()))??;
    let mut f = Figures {
        accel: super::accel_label(),
        ..Figures::default()
    };
    let measured = measure(&mut f, runs, tmp.path(), &msb, &image);
    super::finish(tmp.path(), measured, json, || to_json(&f), || print(&f))
}

fn prepare(tmp: &Path) -> Result<(PathBuf, String)> {
    let addr = registry::ensure()?;
    let msb = demo::build_msb(true)?;
    let image = format!("{addr}/{REPO}");
    util::run(cmd(&msb, tmp).args(["pull", "-q", &image]).stdout(Stdio::null()))?;
    Ok((msb, image))
}

fn cmd(msb: &Path, tmp: &Path) -> Command {
    let mut c = Command::new(msb);
    c.env("MSB_HOME", tmp.join("home"))
        .env("MSB_BIN", msb)
        .env("MSB_KERNEL", paths::msb_lib_dir().join("vmlinux"))
        .env("MSB_INITRAMFS", paths::msb_lib_dir().join("initramfs.cpio"))
        .stdin(Stdio::null());
    c
}

fn timed(c: &mut Command, what: &str) -> Result<Duration> {
    Ok(util::timed(c.stdout(Stdio::null()).stderr(Stdio::piped()), what)?.0)
}

fn measure(f: &mut Figures, runs: usize, tmp: &Path, msb: &Path, image: &str) -> Result<()> {
    for round in 0..=runs {
        let keep = round > 0;
        console::progress(
            "lifecycle",
            &format!("round {round}/{runs}{}", if keep { "" } else { " (warm-up)" }),
        );
        let name = format!("life-{round}");
        let t0 = Instant::now();
        util::run(cmd(msb, tmp).args(["create", image, "-n", &name]).stdout(Stdio::null()))?;
        let out = util::output(cmd(msb, tmp).args(["exec", &name, "--", "echo", "first"]))?;
        let first = t0.elapsed();
        if out != "first\n" {
            bail!("first exec printed {out:?}");
        }
        let stop = timed(cmd(msb, tmp).args(["stop", &name]), "msb stop")?;
        let rm = timed(cmd(msb, tmp).args(["rm", &name]), "msb rm")?;
        if keep {
            f.first_output.push(first);
            f.stop.push(stop);
            f.rm.push(rm);
        }
    }
    console::progress("lifecycle", "exec round trips");
    util::run(
        cmd(msb, tmp)
            .args(["create", image, "-n", "execs"])
            .stdout(Stdio::null()),
    )?;
    for _ in 0..CLI_EXECS {
        f.cli_exec
            .push(timed(cmd(msb, tmp).args(["exec", "execs", "--", "true"]), "msb exec")?);
    }
    f.sdk_exec = sdk_round_trips(&tmp.join("home"), "execs")?;
    util::run(cmd(msb, tmp).args(["rm", "-f", "execs"]).stdout(Stdio::null()))?;
    // What the supervisor's seccomp filter costs: the same round trips without it.
    util::run(
        cmd(msb, tmp)
            .args(["create", image, "-n", "execs-unfiltered"])
            .env("MSB_SUPERVISOR_SECCOMP", "off")
            .stdout(Stdio::null()),
    )?;
    f.sdk_exec_unfiltered = sdk_round_trips(&tmp.join("home"), "execs-unfiltered")?;
    util::run(
        cmd(msb, tmp)
            .args(["rm", "-f", "execs-unfiltered"])
            .stdout(Stdio::null()),
    )?;
    console::progress("lifecycle", &format!("{CROWD} sandboxes at once"));
    crowd(f, tmp, msb, image)
}

/// `exec true` through the SDK in this process, into the running sandbox `name`.
fn sdk_round_trips(home: &Path, name: &str) -> Result<Vec<Duration>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let sb = Microsandbox::at(home)
            .connect(name)
            .await
            .context("connecting to the sandbox")?;
        let mut samples = Vec::with_capacity(SDK_EXECS);
        for _ in 0..SDK_EXECS {
            let t = Instant::now();
            let out = sb.exec("true", Vec::<String>::new()).await?;
            samples.push(t.elapsed());
            if !out.success() {
                bail!("`true` failed in the guest: {:?}", out.status);
            }
        }
        Ok(samples)
    })
}

/// Creates `CROWD` sandboxes at once, times until every `msb create` returned (each
/// returns once its sandbox is ready), and sums the host memory of each one's processes.
fn crowd(f: &mut Figures, tmp: &Path, msb: &Path, image: &str) -> Result<()> {
    let t0 = Instant::now();
    let children: Vec<_> = (0..CROWD)
        .map(|i| {
            cmd(msb, tmp)
                .args(["create", image, "-n", &format!("crowd-{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("msb create failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    f.crowd_ready = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..CROWD {
        let info: Value = serde_json::from_str(&util::output(cmd(msb, tmp).args(["inspect", &format!("crowd-{i}")]))?)?;
        let mut pss = 0;
        for key in ["supervisor_pid", "vmm_pid"] {
            if let Some(pid) = info[key].as_u64() {
                pss += ProcMem::read(pid as u32)?.pss_kib;
            }
        }
        f.crowd_pss_kib.push(pss);
    }
    let names: Vec<String> = (0..CROWD).map(|i| format!("crowd-{i}")).collect();
    util::run(cmd(msb, tmp).args(["rm", "-f"]).args(&names).stdout(Stdio::null()))
}

fn print(f: &Figures) {
    let s = |v: &[Duration]| Summary::of(v);
    println!("managed sandboxes, python fixture image, release msb, {}:", f.accel);
    println!("  create + start → first exec output   {}", s(&f.first_output).secs());
    println!(
        "  exec `true` via SDK ({SDK_EXECS}×)         {}",
        s(&f.sdk_exec).millis_p99()
    );
    let (on, off) = (s(&f.sdk_exec).median, s(&f.sdk_exec_unfiltered).median);
    println!(
        "  … supervisor without its seccomp filter {}  (filtered/unfiltered median {:.2}×)",
        s(&f.sdk_exec_unfiltered).millis_p99(),
        on / off.max(1e-9)
    );
    println!(
        "  `msb exec … true` process ({CLI_EXECS}×)   {}",
        s(&f.cli_exec).millis_p99()
    );
    println!("  stop                                  {}", s(&f.stop).millis_p99());
    println!("  rm                                    {}", s(&f.rm).millis_p99());
    let mean = f.crowd_pss_kib.iter().sum::<u64>() / f.crowd_pss_kib.len().max(1) as u64;
    println!(
        "  {CROWD} sandboxes created at once: all ready after {:.2} s; host memory per sandbox {:.1} MiB PSS (supervisor + QEMU)",
        f.crowd_ready.as_secs_f64(),
        mean as f64 / 1024.0
    );
}

fn to_json(f: &Figures) -> Value {
    let s = |v: &[Duration]| Summary::of(v).json(true);
    json!({
        "accel": f.accel,
        "create_to_first_output_s": s(&f.first_output),
        "sdk_exec_true_s": s(&f.sdk_exec),
        "sdk_exec_true_unfiltered_supervisor_s": s(&f.sdk_exec_unfiltered),
        "cli_exec_true_s": s(&f.cli_exec),
        "stop_s": s(&f.stop),
        "rm_s": s(&f.rm),
        "crowd": {"sandboxes": CROWD, "all_ready_s": f.crowd_ready.as_secs_f64(), "pss_kib_each": f.crowd_pss_kib},
    })
}
