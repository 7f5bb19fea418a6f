//! The host-only figures of `cargo xtask bench tls`, from an optimised build (see
//! `net_host.rs` for why a debug xtask re-runs itself as `bench tls-host`): msb-net's HTTPS
//! bench on the frame harness (`msb_net::stack::harness::https`), the same local echo server
//! reached through interception (secret substituted in every request) and passed through.

use super::net_host::{in_release, met};
use anyhow::{bail, Context, Result};
use msb_net::stack::harness::{self, HttpsBench, HttpsFigures};
use serde_json::{json, Value};
use std::fmt::Write;
use std::time::Duration;

/// Goal: interception adds less than this per request on an established connection.
pub(super) const ADDED_GOAL_MS: f64 = 1.0;
/// Goal: interception keeps at least this share of pass-through throughput.
pub(super) const RATIO_GOAL: f64 = 0.8;

/// What the harness measures.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct HostParams {
    /// Host-only: small requests on one kept-alive connection, each path.
    #[arg(long, default_value_t = 300)]
    pub requests: u32,
    /// Host-only: MiB echoed, each path.
    #[arg(long, default_value_t = 32)]
    pub mib: u64,
    /// Host-only: handshakes of each kind.
    #[arg(long, default_value_t = 100)]
    pub handshakes: u32,
}

impl HostParams {
    /// The hidden subcommand that measures these in a release build.
    fn args(&self) -> Vec<String> {
        [
            "tls-host",
            "--requests",
            &self.requests.to_string(),
            "--mib",
            &self.mib.to_string(),
            "--handshakes",
            &self.handshakes.to_string(),
        ]
        .map(String::from)
        .to_vec()
    }
}

/// This part of the report, text or (`json`) one JSON object, from an optimised build.
pub fn section(p: &HostParams, json: bool) -> Result<String> {
    if cfg!(debug_assertions) {
        return in_release("tls", &p.args(), json);
    }
    Ok(render(p, &measure(p)?, json))
}

/// `bench tls-host`: measures here and prints this part of the report.
pub fn run(p: &HostParams, json: bool) -> Result<()> {
    print!("{}", render(p, &measure(p)?, json));
    Ok(())
}

fn measure(p: &HostParams) -> Result<HttpsBench> {
    if cfg!(debug_assertions) {
        bail!("host-only TLS figures need an optimised build: cargo run --release -p xtask -- bench tls-host");
    }
    harness::https(p.requests, p.mib << 20, p.handshakes).context("msb-net's HTTPS bench on the frame harness")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Interception's added time per request (ms) and its throughput over pass-through's.
fn costs(b: &HttpsBench) -> (f64, f64) {
    let added = ms(b.intercepted.request_latency) - ms(b.passthrough.request_latency);
    let ratio = b.intercepted.echo.gbit_per_s() / b.passthrough.echo.gbit_per_s().max(1e-12);
    (added, ratio)
}

fn render(p: &HostParams, b: &HttpsBench, json: bool) -> String {
    if json {
        return format!("{}\n", to_json(p, b));
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = text(&mut out, p, b);
    out
}

fn to_json(p: &HostParams, b: &HttpsBench) -> Value {
    let (added, ratio) = costs(b);
    let path = |f: &HttpsFigures| json!({ "request_ms": ms(f.request_latency), "echo_gbit_s": f.echo.gbit_per_s() });
    json!({
        "requests": p.requests,
        "echo_bytes": p.mib << 20,
        "handshakes": p.handshakes,
        "intercepted": path(&b.intercepted),
        "passthrough": path(&b.passthrough),
        "added_ms_per_request": { "value": added, "goal_lt": ADDED_GOAL_MS, "met": added < ADDED_GOAL_MS },
        "echo_ratio": { "value": ratio, "goal_ge": RATIO_GOAL, "met": ratio >= RATIO_GOAL },
        "handshake_ms": {
            "cached_leaf": ms(b.handshake_cached),
            "fresh_leaf": ms(b.handshake_fresh),
            "passthrough": ms(b.handshake_passthrough),
        },
    })
}

fn text(out: &mut String, p: &HostParams, b: &HttpsBench) -> std::fmt::Result {
    let (added, ratio) = costs(b);
    let (i, t) = (&b.intercepted, &b.passthrough);
    writeln!(
        out,
        "TLS interception, release build, no VM (frame harness: msb-net's stack ⇄ rustls client on a smoltcp guest ⇄ local HTTPS echo server):"
    )?;
    writeln!(
        out,
        "  request, {} on one connection   intercepted {:>7.3} ms   pass-through {:>7.3} ms   added {:>6.3} ms   goal < {ADDED_GOAL_MS} ms — {}",
        p.requests,
        ms(i.request_latency),
        ms(t.request_latency),
        added,
        met(added < ADDED_GOAL_MS)
    )?;
    writeln!(
        out,
        "  echo of {} MiB                 intercepted {:>7.2} Gbit/s pass-through {:>7.2} Gbit/s ratio {ratio:>5.2}   goal ≥ {RATIO_GOAL} — {}",
        p.mib,
        i.echo.gbit_per_s(),
        t.echo.gbit_per_s(),
        met(ratio >= RATIO_GOAL)
    )?;
    writeln!(
        out,
        "  handshake, mean of {}          cached leaf {:>7.3} ms   fresh leaf {:>7.3} ms   pass-through {:>7.3} ms",
        p.handshakes,
        ms(b.handshake_cached),
        ms(b.handshake_fresh),
        ms(b.handshake_passthrough)
    )
}
