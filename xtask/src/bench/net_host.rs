//! The host-only figures of `cargo xtask bench net`, which mean something only from an
//! optimised build: policy evaluation time per flow (`net_policy.rs`) and the frame
//! harness's TCP throughput (msb-net's stack with a smoltcp guest on the other end of its
//! socketpair: no VM, no kernel, just the stack and the framing).
//!
//! `cargo xtask` is `cargo run` of a debug build, so a debug xtask does not measure these
//! itself: it runs the same code in a release build of xtask (`cargo run --release -p xtask
//! -- bench net-host`, hidden), which prints this part of the report (text or JSON) for the
//! debug one to place. One code path, calling msb-net directly, with no parsing of a test's
//! prose; the price is a release build of xtask, made once and then cached by cargo.

use super::net_policy::{self, PolicyFigures};
use super::stats::Summary;
use crate::paths;
use anyhow::{bail, Context, Result};
use msb_net::stack::harness;
use serde_json::{json, Value};
use std::fmt::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Goal: one policy decision within this many ns.
const POLICY_GOAL_NS: f64 = 1000.0;
/// Goal: frame-harness throughput each way, Gbit/s.
const HARNESS_GOAL_GBIT: f64 = 2.0;
/// Bytes through the harness, each way, per round.
const HARNESS_BYTES: u64 = 1 << 30;
/// Harness rounds each way; the median is reported (the machine is shared).
const HARNESS_ROUNDS: usize = 3;

/// The host-only figures.
#[derive(Debug, Clone)]
struct HostFigures {
    policy: PolicyFigures,
    /// Guest → host through the harness.
    upload: Rate,
    /// Host → guest through the harness.
    download: Rate,
}

/// Harness throughput over the rounds, Gbit/s.
#[derive(Debug, Clone, Copy)]
struct Rate {
    median: f64,
    /// The slowest round's.
    min: f64,
    /// The fastest round's.
    max: f64,
}

impl Rate {
    /// The rate of moving [`HARNESS_BYTES`] in each of `times`.
    fn of(times: &[Duration]) -> Rate {
        let s = Summary::of(times);
        let gbit = |secs: f64| HARNESS_BYTES as f64 * 8.0 / secs.max(1e-9) / 1e9;
        Rate {
            median: gbit(s.median),
            min: gbit(s.max),
            max: gbit(s.min),
        }
    }

    fn json(&self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}

/// This part of the report, as text or (`json`) one JSON object, measured by an optimised
/// build: this process when it is one, else a release build of xtask.
pub fn section(json: bool) -> Result<String> {
    if !cfg!(debug_assertions) {
        return Ok(render(&measure()?, json));
    }
    in_release("net", &["net-host".into()], json)
}

/// What `cargo run --release -p xtask -- bench ARGS [--json]` prints: a host-only section
/// of `bench` measured by a release build of xtask (the hidden subcommand in `args`).
pub(super) fn in_release(bench: &str, args: &[String], json: bool) -> Result<String> {
    super::console::progress(bench, "host-only figures (release build of xtask)");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(paths::repo_root())
        .args(["run", "--release", "--quiet", "-p", "xtask", "--", "bench"])
        .args(args);
    if json {
        cmd.arg("--json");
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("starting a release build of xtask")?;
    if !out.status.success() {
        bail!("the release build of xtask failed to measure: {}", out.status);
    }
    String::from_utf8(out.stdout).context("its output is not UTF-8")
}

/// `bench net-host`: measures here and prints this part of the report.
pub fn run(json: bool) -> Result<()> {
    print!("{}", render(&measure()?, json));
    Ok(())
}

/// Measures in this process; refuses in a debug build, whose figures would mislead.
fn measure() -> Result<HostFigures> {
    if cfg!(debug_assertions) {
        bail!("host-only network figures need an optimised build: cargo run --release -p xtask -- bench net-host");
    }
    let policy = net_policy::measure()?;
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..HARNESS_ROUNDS {
        let guest_to_host = harness::upload(HARNESS_BYTES).context("frame harness, guest → host")?;
        up.push(guest_to_host.elapsed);
        let host_to_guest = harness::download(HARNESS_BYTES).context("frame harness, host → guest")?;
        down.push(host_to_guest.elapsed);
    }
    Ok(HostFigures {
        policy,
        upload: Rate::of(&up),
        download: Rate::of(&down),
    })
}

fn render(f: &HostFigures, json: bool) -> String {
    if json {
        return format!("{}\n", to_json(f));
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = text(&mut out, f);
    out
}

fn to_json(f: &HostFigures) -> Value {
    let p = &f.policy;
    let flows: Vec<Value> = p
        .flows
        .iter()
        .map(|t| json!({ "what": t.what, "verdict": t.verdict, "ns": t.ns }))
        .collect();
    json!({
        "policy": {
            "rules": p.rules,
            "checks_per_loop": p.checks,
            "loops_per_flow": p.rounds,
            "flows": flows,
            "mean_ns": p.mean_ns(),
            "max_ns": p.max_ns(),
            "goal_max_ns": POLICY_GOAL_NS,
            "met": p.max_ns() <= POLICY_GOAL_NS,
        },
        "harness": {
            "bytes": HARNESS_BYTES,
            "rounds": HARNESS_ROUNDS,
            "guest_to_host_gbit_s": f.upload.json(),
            "host_to_guest_gbit_s": f.download.json(),
            "goal_min_gbit_s": HARNESS_GOAL_GBIT,
            "met": f.upload.median >= HARNESS_GOAL_GBIT && f.download.median >= HARNESS_GOAL_GBIT,
        },
    })
}

/// How a goal is reported beside its figure.
pub(super) fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The figures as text, each with its goal.
fn text(out: &mut String, f: &HostFigures) -> std::fmt::Result {
    let p = &f.policy;
    writeln!(
        out,
        "policy evaluation, release build, no VM: Policy::check, public-only preset + {} rules ({} in all); per kind of flow the median of {} loops of {} checks",
        p.rules.saturating_sub(1),
        p.rules,
        p.rounds,
        p.checks
    )?;
    for t in &p.flows {
        writeln!(out, "  {:>7.1} ns  {:<9}  {}", t.ns, t.verdict, t.what)?;
    }
    let max = p.max_ns();
    writeln!(
        out,
        "  mean {:.1} ns, slowest {:.1} ns per check   goal ≤ {POLICY_GOAL_NS:.0} ns — {}",
        p.mean_ns(),
        max,
        met(max <= POLICY_GOAL_NS)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "frame harness, release build, no VM (msb-net's stack ⇄ socketpair ⇄ smoltcp guest), one TCP flow of {} MiB, {HARNESS_ROUNDS} rounds each way:",
        HARNESS_BYTES >> 20,
    )?;
    for (what, r) in [("guest → host", f.upload), ("host → guest", f.download)] {
        writeln!(
            out,
            "  {what}  {:>5.2} Gbit/s median ({:.2}–{:.2})   goal ≥ {HARNESS_GOAL_GBIT} Gbit/s — {}",
            r.median,
            r.min,
            r.max,
            met(r.median >= HARNESS_GOAL_GBIT)
        )?;
    }
    Ok(())
}
