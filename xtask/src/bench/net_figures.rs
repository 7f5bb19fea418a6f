//! The network figures: what a measurement run printed (the probe's lines) and what the
//! world's servers logged (host-clock times), turned into one [`Baseline`] per network
//! path, and msb's figures set beside the best of the others; shared by the QEMU baselines
//! (`net_baseline.rs`) and the run of msb's own stack (`net.rs`).

use anyhow::{bail, Context, Result};
use msb_e2e::networld::{self, Event, Hit, Service};
use std::time::Instant;

/// Printed by the guest's init around the probe's lines.
const BEGIN: &str = "msb-netbench: begin";
const END: &str = "msb-netbench: end";

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// MiB per transfer, each way.
    pub mib: u64,
    /// Sequential connects.
    pub connects: u64,
    /// Sequential DNS queries.
    pub queries: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            mib: 64,
            connects: 200,
            queries: 200,
        }
    }
}

/// One network path's figures (a baseline backend, or msb's own stack).
#[derive(Debug, Clone)]
pub struct Baseline {
    /// What was measured: `slirp`, `passt` (or `msb` for our own stack).
    pub label: String,
    /// The accelerator the guest ran on (`TCG` here: software emulation).
    pub accel: String,
    /// Bytes per transfer.
    pub bytes: u64,
    /// Guest → host TCP throughput, MiB/s.
    pub guest_to_host_mib_s: f64,
    /// Host → guest TCP throughput, MiB/s.
    pub host_to_guest_mib_s: f64,
    /// Sequential TCP connections established per second.
    pub connects_per_s: f64,
    /// Median gap between two accepts, ms.
    pub connect_median_ms: f64,
    /// Median DNS query round trip (gap between queries at the server), ms.
    pub dns_median_ms: f64,
    /// 90th percentile of the same, ms.
    pub dns_p90_ms: f64,
    /// The guest's clocksource, as a reminder of why timings are taken on the host.
    pub guest_clock: String,
    /// The probe's own lines (its timings use the guest clock), for reference.
    pub probe: Vec<serde_json::Value>,
    /// DNS queries without an answer (within 2 s each).
    pub dns_failed: u64,
    /// Connects that failed.
    pub connects_failed: u64,
}

impl Baseline {
    /// The figures as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "label": self.label,
            "accel": self.accel,
            "bytes": self.bytes,
            "guest_to_host_mib_s": self.guest_to_host_mib_s,
            "host_to_guest_mib_s": self.host_to_guest_mib_s,
            "connects_per_s": self.connects_per_s,
            "connect_median_ms": self.connect_median_ms,
            "connects_failed": self.connects_failed,
            "dns_median_ms": self.dns_median_ms,
            "dns_p90_ms": self.dns_p90_ms,
            "dns_failed": self.dns_failed,
            "guest_clock": self.guest_clock,
            "probe": self.probe,
        })
    }
}

/// The measurements as shell lines for a guest that has networking and the probe at
/// `probe`, asking DNS server `dns` (`ADDR:53`): the clocksource, a warm-up (ARP, first
/// connection; not reported), then the four measurements between the markers
/// [`from_run`] reads. Needs `cat` and `echo`; works as `sh -c` inside a sandbox too.
pub fn probe_script(p: &Params, probe: &str, dns: &str) -> String {
    let bytes = p.mib * 1024 * 1024;
    let internet = networld::INTERNET;
    let (sink, source, http) = (networld::SINK_PORT, networld::SOURCE_PORT, networld::HTTP_PORT);
    format!(
        "{CLOCK_LINE}\
         {probe} download {internet}:{source} 65536 >/dev/null\n\
         echo '{BEGIN}'\n\
         {probe} upload {internet}:{sink} {bytes}\n\
         {probe} download {internet}:{source} {bytes}\n\
         {probe} connect {internet}:{http} {connects}\n\
         {probe} dns {dns} allowed.test {queries}\n\
         echo '{END}'\n",
        connects = p.connects,
        queries = p.queries,
    )
}

/// The probe's JSON lines between the markers.
fn probe_lines(log: &str) -> Result<Vec<serde_json::Value>> {
    let text = log.replace('\r', "");
    let (_, rest) = text.split_once(BEGIN).context("the guest never started measuring")?;
    let (body, _) = rest.split_once(END).context("the guest never finished measuring")?;
    body.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("probe output {l:?}")))
        .collect()
}

/// The shell line that prints the guest's clocksource, and what it printed (`?` if nothing).
pub const CLOCK_LINE: &str =
    "echo clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)\n";

pub fn guest_clock(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("clocksource: "))
        .unwrap_or("?")
        .to_string()
}

/// The figures of one run of [`probe_script`]: `output` is what the script printed (a
/// console log or a sandbox's stdout), `hits` the world's log since just before it started
/// ([`NetWorld::clear_log`]), `accel` `TCG` or `KVM`.
pub fn from_run(label: &str, accel: &str, p: &Params, output: &str, hits: &[Hit]) -> Result<Baseline> {
    let lines = probe_lines(output)?;
    let guest_clock = guest_clock(output);
    for test in ["upload", "download", "connect", "dns"] {
        let v = lines
            .iter()
            .find(|l| l["test"] == test)
            .with_context(|| format!("no {test} line from the probe"))?;
        if let Some(e) = v["error"].as_str() {
            bail!("{test} failed: {e}");
        }
    }
    let bytes = p.mib * 1024 * 1024;
    let connected = |h: &Hit| h.event == Event::Connected;
    let up = transfer_secs(hits, Service::Sink, &Event::Sunk { bytes }, connected)?;
    let asked = |h: &Hit| h.event == Event::Sourced { bytes };
    let down = transfer_secs(hits, Service::Source, &Event::SourceDone { bytes }, asked)?;
    let accepts: Vec<_> = hits
        .iter()
        .filter(|h| h.service == Service::Http && h.event == Event::Connected)
        .map(|h| h.at)
        .collect();
    let queries: Vec<_> = hits
        .iter()
        .filter(|h| matches!(&h.event, Event::DnsQuery { name, .. } if name == "allowed.test"))
        .map(|h| h.at)
        .collect();
    let connects = gaps(&accepts).context("too few connects reached the server")?;
    let dns = gaps(&queries).context("too few DNS queries reached the server")?;
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let failed = |test: &str| {
        lines
            .iter()
            .find(|l| l["test"] == test)
            .and_then(|l| l["failed"].as_u64())
            .unwrap_or(0)
    };
    Ok(Baseline {
        label: label.to_string(),
        accel: accel.to_string(),
        bytes,
        guest_to_host_mib_s: mib / up,
        host_to_guest_mib_s: mib / down,
        connects_per_s: connects.per_s,
        connect_median_ms: connects.median_ms,
        connects_failed: failed("connect"),
        dns_median_ms: dns.median_ms,
        dns_p90_ms: dns.p90_ms,
        dns_failed: failed("dns"),
        guest_clock,
        probe: lines,
    })
}

/// Seconds from the last hit of `service` matching `start` (same client) before the hit
/// `end`, to that hit.
fn transfer_secs(hits: &[Hit], service: Service, end: &Event, start: impl Fn(&Hit) -> bool) -> Result<f64> {
    let (i, last) = hits
        .iter()
        .enumerate()
        .find(|(_, h)| h.service == service && h.event == *end)
        .with_context(|| format!("the server never logged {end:?}"))?;
    let first = hits[..i]
        .iter()
        .rev()
        .find(|h| h.service == service && h.peer == last.peer && start(h))
        .with_context(|| format!("no start logged before {end:?}"))?;
    Ok(last.at.duration_since(first.at).as_secs_f64().max(1e-6))
}

/// Rate and spread of the gaps between consecutive instants.
#[derive(Debug)]
struct Gaps {
    per_s: f64,
    median_ms: f64,
    p90_ms: f64,
}

fn gaps(times: &[Instant]) -> Option<Gaps> {
    if times.len() < 2 {
        return None;
    }
    let mut d: Vec<f64> = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64() * 1000.0)
        .collect();
    let total: f64 = d.iter().sum();
    d.sort_by(f64::total_cmp);
    let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
    Some(Gaps {
        per_s: d.len() as f64 / (total / 1000.0).max(1e-9),
        median_ms: at(0.5),
        p90_ms: at(0.9),
    })
}

/// The goal for every through-the-VM figure: msb at least as good as the better of slirp
/// and passt (ratio msb / best ≥ this for rates, ≤ for latencies).
const PARITY: f64 = 1.0;

/// One figure of the comparison.
struct Row {
    what: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    of: fn(&Baseline) -> f64,
}

const ROWS: [Row; 5] = [
    Row {
        what: "guest→host TCP",
        unit: "MiB/s",
        higher_is_better: true,
        of: |b| b.guest_to_host_mib_s,
    },
    Row {
        what: "host→guest TCP",
        unit: "MiB/s",
        higher_is_better: true,
        of: |b| b.host_to_guest_mib_s,
    },
    Row {
        what: "TCP connects",
        unit: "/s",
        higher_is_better: true,
        of: |b| b.connects_per_s,
    },
    Row {
        what: "DNS query p50",
        unit: "ms",
        higher_is_better: false,
        of: |b| b.dns_median_ms,
    },
    Row {
        what: "DNS query p90",
        unit: "ms",
        higher_is_better: false,
        of: |b| b.dns_p90_ms,
    },
];

/// How `ours` compares on `row` with the best of `others`: (ours / best, the best's label).
fn vs_best<'a>(row: &Row, ours: &Baseline, others: &'a [Baseline]) -> Option<(f64, &'a str)> {
    let better = |a: f64, b: f64| if row.higher_is_better { a > b } else { a < b };
    let best = others
        .iter()
        .map(|b| ((row.of)(b), b.label.as_str()))
        .reduce(|a, b| if better(b.0, a.0) { b } else { a })?;
    Some(((row.of)(ours) / best.0.max(1e-9), best.1))
}

/// Whether `ratio` (ours / best) meets the parity goal for `row`.
fn meets(row: &Row, ratio: f64) -> bool {
    if row.higher_is_better {
        ratio >= PARITY
    } else {
        ratio <= PARITY
    }
}

/// The through-the-VM figures of `ours` (msb) beside `others` (slirp, passt), one row per
/// figure with the ratio to the best of the others and the goal.
pub fn print(p: &Params, ours: &Baseline, others: &[Baseline]) {
    let accel = if ours.accel == "TCG" {
        "TCG (software emulation; not a KVM figure)"
    } else {
        ours.accel.as_str()
    };
    println!(
        "network through a VM, {accel}: {} MiB each way, {} sequential connects, {} sequential DNS queries; guest MTU 1500",
        p.mib, p.connects, p.queries
    );
    println!("  msb: `msb run` of the busybox root, probe through its stack; slirp, passt: the same kernel");
    println!("  under bare QEMU with a busybox initramfs; same vCPUs and memory, timed on the host clock");
    println!("  msb / best: msb's figure over the better of the others' (rates: >1× = msb ahead; latencies: <1× = msb ahead)");
    print!("  {:<15}", "figure");
    for b in std::iter::once(ours).chain(others) {
        print!(" {:>13}", b.label);
    }
    println!("   {:<13} {:<18} goal (parity)", "msb / best", "reads");
    for row in &ROWS {
        print!("  {:<15}", row.what);
        for b in std::iter::once(ours).chain(others) {
            print!(" {:>13}", format!("{:.2} {}", (row.of)(b), row.unit));
        }
        let Some((ratio, best)) = vs_best(row, ours, others) else {
            println!();
            continue;
        };
        let (reads, goal) = match row.higher_is_better {
            true => ("higher is better", format!("≥ {PARITY:.2}×")),
            false => ("lower is better", format!("≤ {PARITY:.2}×")),
        };
        println!(
            "   {:<13} {reads:<18} {goal} — {}",
            format!("{ratio:.2}× {best}"),
            if meets(row, ratio) { "met" } else { "NOT met" }
        );
    }
    for b in std::iter::once(ours).chain(others) {
        if b.connects_failed + b.dns_failed > 0 {
            println!(
                "  {}: {} connects and {} DNS queries failed",
                b.label, b.connects_failed, b.dns_failed
            );
        }
    }
}

/// The comparison [`print`] shows, as JSON: one object per figure.
pub fn comparison_json(ours: &Baseline, others: &[Baseline]) -> serde_json::Value {
    let rows: Vec<_> = ROWS
        .iter()
        .map(|row| {
            let best = vs_best(row, ours, others);
            serde_json::json!({
                "figure": row.what,
                "unit": row.unit,
                "higher_is_better": row.higher_is_better,
                "msb": (row.of)(ours),
                "best": best.map(|(_, label)| label),
                "ratio_msb_to_best": best.map(|(ratio, _)| ratio),
                "goal_ratio": PARITY,
                "met": best.map(|(ratio, _)| meets(row, ratio)),
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_are_read_between_the_markers() {
        let log = "noise\r\nmsb-netbench: begin\r\n{\"test\":\"upload\",\"mib_per_s\":1.5}\r\nstray\r\n{\"test\":\"dns\"}\r\nmsb-netbench: end\r\n{\"test\":\"late\"}";
        let lines = probe_lines(log).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["mib_per_s"], 1.5);
        assert!(probe_lines("msb-netbench: begin\n").is_err());
    }

    fn path(label: &str, mib_s: f64, dns_ms: f64) -> Baseline {
        Baseline {
            label: label.into(),
            accel: "TCG".into(),
            bytes: 1,
            guest_to_host_mib_s: mib_s,
            host_to_guest_mib_s: mib_s,
            connects_per_s: mib_s,
            connect_median_ms: dns_ms,
            dns_median_ms: dns_ms,
            dns_p90_ms: dns_ms,
            guest_clock: String::new(),
            probe: Vec::new(),
            dns_failed: 0,
            connects_failed: 0,
        }
    }

    #[test]
    fn the_ratio_is_to_the_better_of_the_others_each_way() {
        let others = [path("slirp", 20.0, 0.5), path("passt", 40.0, 0.8)];
        let ours = path("msb", 30.0, 1.0);
        let (rate, latency) = (&ROWS[0], &ROWS[3]);
        assert_eq!(vs_best(rate, &ours, &others), Some((0.75, "passt")));
        assert_eq!(vs_best(latency, &ours, &others), Some((2.0, "slirp")));
        assert!(!meets(rate, 0.75) && meets(rate, 1.0));
        assert!(!meets(latency, 2.0) && meets(latency, 0.9));
        assert_eq!(vs_best(rate, &ours, &[]), None);
    }
}
