//! `cargo xtask bench e2b`: what the E2B-compatible listener costs an E2B program, measured
//! in one run against one release `msb serve`: rounds of the stock E2B SDK's
//! `Sandbox.create()` + `commands.run("true")` + `kill()` beside microsandbox's own Python SDK
//! creating a sandbox from the same image + exec `true` + remove, alternating. VM figures are
//! QEMU TCG (software emulation) on hosts without usable KVM, and say so.

use super::console;
use super::serve::Server;
use super::stats::Summary;
use crate::{demo, e2b, paths, python, registry};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The steps of a round, as the driver names them.
const STEPS: [&str; 4] = ["create", "exec", "remove", "total"];

/// The goal: an E2B program within this factor of the same work through our own SDK.
const GOAL: f64 = 1.2;

/// Seconds per step of every measured round, for one client.
type Rounds = Vec<Value>;

#[derive(Debug, Default)]
struct Figures {
    accel: String,
    e2b_version: String,
    e2b: Rounds,
    ours: Rounds,
}

/// The Python environments and their drivers' settings.
struct Clients {
    e2b_python: PathBuf,
    ours_python: PathBuf,
    e2b_version: String,
    image: String,
}

/// Runs the benchmark; prints text or one JSON object.
pub fn run(runs: usize, json: bool) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let tmp = tempfile::Builder::new().prefix("msb-bench-e2b-").tempdir()?;
    let (msb, clients) = console::stdout_to_stderr(|| prepare(tmp.path()))??;
    let mut f = Figures {
        accel: super::accel_label(),
        e2b_version: clients.e2b_version.clone(),
        ..Figures::default()
    };
    let measured =
        super::serve::start(&msb, tmp.path(), true).and_then(|server| measure(&mut f, runs, &server, &clients));
    super::finish(tmp.path(), measured, json, || to_json(&f), || print(&f))
}

/// The release `msb`, a home whose default E2B template is the fixture busybox, and both
/// clients' Python environments.
fn prepare(tmp: &Path) -> Result<(PathBuf, Clients)> {
    let msb = demo::build_msb(true)?;
    let registry = registry::ensure()?;
    let home = tmp.join("home");
    std::fs::create_dir_all(home.join("lib"))?;
    for file in ["vmlinux", "initramfs.cpio"] {
        std::os::unix::fs::symlink(paths::msb_lib_dir().join(file), home.join("lib").join(file))?;
    }
    e2b::configure(&home, &registry)?;
    let current = e2b::venvs()?
        .into_iter()
        .next()
        .context("no E2B SDK release to bench")?;
    let clients = Clients {
        e2b_python: current.venv.join("bin/python"),
        ours_python: python::venv()?.join("bin/python"),
        e2b_version: current.version.to_string(),
        image: e2b::image(&registry),
    };
    Ok((msb, clients))
}

/// One round through one client: the driver's seconds per step.
fn round(python: &Path, mode: &str, s: &Server, c: &Clients) -> Result<Value> {
    let e2b_url = s.e2b_url.as_deref().context("the server has no E2B listener")?;
    let driver = paths::repo_root().join("xtask/src/bench/e2b_driver.py");
    let out = Command::new(python)
        .arg(&driver)
        .arg(mode)
        .env("E2B_API_URL", e2b_url)
        .env("E2B_SANDBOX_URL", e2b_url)
        .env(
            "E2B_API_KEY",
            format!("e2b_{}", s.api.token.trim_start_matches("msbt_")),
        )
        .env("MSB_SERVER_URL", &s.api.url)
        .env("MSB_SERVER_TOKEN", &s.api.token)
        .env("MSB_BENCH_IMAGE", &c.image)
        .env("PYTHONPATH", paths::repo_root().join("sdk/python/src"))
        .output()
        .with_context(|| format!("starting {}", driver.display()))?;
    if !out.status.success() {
        bail!(
            "the {mode} round failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("the {mode} driver printed {:?}", out.stdout))
}

/// One warm-up round each (it pulls the image), then `runs` rounds each, alternating so
/// drift in the machine's load touches both alike.
fn measure(f: &mut Figures, runs: usize, s: &Server, c: &Clients) -> Result<()> {
    for i in 0..=runs {
        console::progress("e2b", &format!("round {i}/{runs}"));
        let e2b = round(&c.e2b_python, "e2b", s, c)?;
        let ours = round(&c.ours_python, "msb", s, c)?;
        if i > 0 {
            f.e2b.push(e2b);
            f.ours.push(ours);
        }
    }
    Ok(())
}

/// The samples of `step` over `rounds`.
fn samples(rounds: &Rounds, step: &str) -> Vec<Duration> {
    rounds
        .iter()
        .filter_map(|r| r[step].as_f64())
        .map(Duration::from_secs_f64)
        .collect()
}

/// The nearest-rank 90th percentile, seconds (0 when empty).
fn p90(samples: &[Duration]) -> f64 {
    let mut s: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    let rank = (0.9 * s.len() as f64).ceil() as usize;
    s.get(rank.clamp(1, s.len().max(1)) - 1).copied().unwrap_or(0.0)
}

fn print(f: &Figures) {
    println!("e2b — VMs under {}", f.accel);
    println!(
        "one round: create + run `true` + remove, {} rounds each, alternating (after one warm-up each)",
        f.e2b.len()
    );
    println!(
        "  E2B SDK {} through the E2B listener, against microsandbox's Python SDK:",
        f.e2b_version
    );
    for step in STEPS {
        let (e, o) = (samples(&f.e2b, step), samples(&f.ours, step));
        let (es, os) = (Summary::of(&e), Summary::of(&o));
        println!(
            "  {step:<7} e2b median {:>7.3} s  p90 {:>7.3} s   ours median {:>7.3} s  p90 {:>7.3} s   e2b/ours {:.2}x",
            es.median,
            p90(&e),
            os.median,
            p90(&o),
            es.median / os.median.max(f64::EPSILON)
        );
    }
    let ratio = ratio(f);
    let verdict = if ratio <= GOAL { "within" } else { "outside" };
    println!("  a round through E2B costs {ratio:.2}x ours at the median ({verdict} the {GOAL}x goal)");
}

/// E2B's median round over ours.
fn ratio(f: &Figures) -> f64 {
    let (e, o) = (
        Summary::of(&samples(&f.e2b, "total")),
        Summary::of(&samples(&f.ours, "total")),
    );
    e.median / o.median.max(f64::EPSILON)
}

fn to_json(f: &Figures) -> Value {
    let side = |rounds: &Rounds| -> Value {
        STEPS
            .iter()
            .map(|&step| {
                let s = samples(rounds, step);
                let mut v = Summary::of(&s).json(false);
                v["p90"] = json!(p90(&s));
                (step.to_string(), v)
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "accel": f.accel,
        "e2b_sdk": f.e2b_version,
        "e2b": side(&f.e2b),
        "ours": side(&f.ours),
        "ratio_total_median": ratio(f),
        "goal": GOAL,
    })
}
