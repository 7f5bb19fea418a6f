//! The network figures: what a measurement run printed (the probe's lines) and what the
//! world's servers logged (host-clock times), turned into one [`Baseline`] per network
//! path; shared by the QEMU baselines (`net_baseline.rs`) and a run of msb's own stack.

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
        "echo clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)\n\
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

/// The figures of one run of [`probe_script`]: `output` is what the script printed (a
/// console log or a sandbox's stdout), `hits` the world's log since just before it started
/// ([`NetWorld::clear_log`]), `accel` `TCG` or `KVM`.
pub fn from_run(label: &str, accel: &str, p: &Params, output: &str, hits: &[Hit]) -> Result<Baseline> {
    let lines = probe_lines(output)?;
    let guest_clock = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("clocksource: "))
        .unwrap_or("?")
        .to_string();
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

/// The figures as a table.
pub fn print(figures: &[Baseline]) {
    let Some(first) = figures.first() else { return };
    let accel = if first.accel == "TCG" {
        "TCG (software emulation; not a KVM figure)"
    } else {
        first.accel.as_str()
    };
    println!(
        "net baselines, guest kernel under bare QEMU, {accel}; {} MiB each way, guest MTU 1500",
        first.bytes / (1024 * 1024)
    );
    println!(
        "{:<8} {:>14} {:>14} {:>12} {:>12} {:>12} {:>12}",
        "path", "guest→host", "host→guest", "connects/s", "connect p50", "DNS p50", "DNS p90"
    );
    for f in figures {
        println!(
            "{:<8} {:>9.1} MiB/s {:>9.1} MiB/s {:>12.1} {:>9.2} ms {:>9.2} ms {:>9.2} ms{}",
            f.label,
            f.guest_to_host_mib_s,
            f.host_to_guest_mib_s,
            f.connects_per_s,
            f.connect_median_ms,
            f.dns_median_ms,
            f.dns_p90_ms,
            match (f.connects_failed, f.dns_failed) {
                (0, 0) => String::new(),
                (c, d) => format!("  ({c} connects, {d} queries failed)"),
            }
        );
    }
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
}
