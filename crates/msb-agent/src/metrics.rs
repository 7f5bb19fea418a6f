//! Resource counters of the guest, read from /proc and statvfs, for `msb metrics`.

use msb_protocol::GuestMetrics;

/// Reads the counters now; anything unreadable counts as zero.
pub fn sample() -> GuestMetrics {
    let (cpu_busy_ticks, cpu_total_ticks) = cpu_ticks(&read("/proc/stat"));
    let meminfo = read("/proc/meminfo");
    let (disk_total, disk_used) = disk("/");
    let (net_rx, net_tx) = network(&read("/proc/net/dev"));
    let (disk_read, disk_written) = disk_io(&read("/proc/diskstats"));
    let uptime_ms = read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |secs| (secs * 1000.0) as u64);
    GuestMetrics {
        cpu_busy_ticks,
        cpu_total_ticks,
        memory_total: meminfo_kib(&meminfo, "MemTotal:").unwrap_or(0) * 1024,
        memory_available: meminfo_kib(&meminfo, "MemAvailable:").unwrap_or(0) * 1024,
        disk_total,
        disk_used,
        net_rx,
        net_tx,
        uptime_ms,
        disk_read,
        disk_written,
    }
}

/// Bytes read from and written to the virtio disks (`vd*`, whole disks, not loop devices
/// over them, which would count the layers twice), from /proc/diskstats.
fn disk_io(diskstats: &str) -> (u64, u64) {
    const SECTOR: u64 = 512;
    diskstats
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let name = f.get(2)?;
            let whole_disk = name.starts_with("vd") && name[2..].bytes().all(|b| b.is_ascii_lowercase());
            if !whole_disk {
                return None;
            }
            Some((f.get(5)?.parse::<u64>().ok()?, f.get(9)?.parse::<u64>().ok()?))
        })
        .fold((0, 0), |(r, w), (sr, sw)| (r + sr * SECTOR, w + sw * SECTOR))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// (busy, total) ticks from the `cpu` line of /proc/stat; idle and iowait are not busy.
fn cpu_ticks(stat: &str) -> (u64, u64) {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The figure `key` (`"MemTotal:"` …) of a `/proc/meminfo` text, in KiB.
pub(crate) fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn disk(path: &str) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let frag = s.fragment_size();
            let total = s.blocks() * frag;
            (total, total.saturating_sub(s.blocks_free() * frag))
        }
        Err(_) => (0, 0),
    }
}

/// Received and sent bytes over every interface but loopback.
fn network(dev: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for line in dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = counters.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        rx += fields.first().copied().unwrap_or(0);
        tx += fields.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 5 50 800 20 1 2 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(cpu_ticks(stat), (158, 978));
        assert_eq!(
            meminfo_kib("MemTotal:  1000 kB\nMemAvailable:   600 kB\n", "MemAvailable:"),
            Some(600)
        );
        let dev = "Inter-|   Receive\n face |bytes packets\n    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n";
        assert_eq!(network(dev), (1000, 2000));
        assert_eq!(cpu_ticks(""), (0, 0));
    }
}
