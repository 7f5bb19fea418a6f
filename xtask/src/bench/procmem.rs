//! Host memory of processes, from /proc.

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// Resident memory of one host process, in KiB.
#[derive(Debug, Clone)]
pub struct ProcMem {
    /// Pid.
    pub pid: u32,
    /// Command name (`/proc/PID/comm`).
    pub name: String,
    /// `VmRSS` from `/proc/PID/status`: every page mapped, shared ones counted in full.
    pub rss_kib: u64,
    /// `Pss` from `/proc/PID/smaps_rollup`: shared pages split among their users.
    pub pss_kib: u64,
}

impl ProcMem {
    /// Reads the figures of `pid`.
    pub fn read(pid: u32) -> Result<ProcMem> {
        let dir = format!("/proc/{pid}");
        let read = |file: &str| {
            std::fs::read_to_string(format!("{dir}/{file}")).with_context(|| format!("reading {dir}/{file}"))
        };
        let status = read("status")?;
        let rollup = read("smaps_rollup")?;
        Ok(ProcMem {
            pid,
            name: read("comm")?.trim().to_string(),
            rss_kib: field_kib(&status, "VmRSS:").with_context(|| format!("no VmRSS in {dir}/status"))?,
            pss_kib: field_kib(&rollup, "Pss:").with_context(|| format!("no Pss in {dir}/smaps_rollup"))?,
        })
    }

    /// The figures of this process.
    pub fn this_process() -> Result<ProcMem> {
        ProcMem::read(std::process::id())
    }

    /// As JSON, in KiB.
    pub fn json(&self) -> Value {
        json!({ "pid": self.pid, "name": self.name, "rss_kib": self.rss_kib, "pss_kib": self.pss_kib })
    }
}

/// Resident memory of `pid` by kind of mapping, from `/proc/PID/smaps`: (kind, RSS KiB), in a
/// fixed order. Tells guest RAM the guest touched from QEMU's own costs.
pub fn breakdown(pid: u32) -> Result<Vec<(&'static str, u64)>> {
    let path = format!("/proc/{pid}/smaps");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let mut sums = [
        ("guest RAM touched (memfd)", 0),
        ("TCG code cache (anonymous rwx)", 0),
        ("files (binary, libraries, kernel and initramfs copies)", 0),
        ("other anonymous (heap, stacks, device state)", 0),
    ];
    let mut kind = 3;
    for line in text.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            sums[kind].1 += kib(rss).unwrap_or(0);
        } else if is_mapping_header(line) {
            kind = mapping_kind(line);
        }
    }
    Ok(sums.to_vec())
}

/// `start-end perms offset dev inode [path]`: the first field is a hex range.
fn is_mapping_header(line: &str) -> bool {
    line.split_whitespace()
        .next()
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(a, b)| u64::from_str_radix(a, 16).is_ok() && u64::from_str_radix(b, 16).is_ok())
}

/// Index into the sums of [`breakdown`] for a mapping header line.
fn mapping_kind(header: &str) -> usize {
    let fields: Vec<&str> = header.split_whitespace().collect();
    let perms = fields.get(1).copied().unwrap_or("");
    let path = fields.get(5).copied().unwrap_or("");
    if path.contains("memfd:") {
        0
    } else if path.is_empty() && perms.contains('w') && perms.contains('x') {
        1
    } else if path.starts_with('/') {
        2
    } else {
        3
    }
}

/// The value of a `Name:   1234 kB` line (as in /proc/meminfo, status, smaps_rollup).
pub fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)).and_then(kib)
}

/// `  1234 kB` → 1234.
fn kib(value: &str) -> Option<u64> {
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_this_process() {
        let text = "MemTotal:         500000 kB\nMemFree:   1200 kB\n";
        assert_eq!(field_kib(text, "MemFree:"), Some(1200));
        assert_eq!(field_kib(text, "Nope:"), None);
        let me = ProcMem::this_process().unwrap();
        assert!(me.rss_kib > 0 && me.pss_kib > 0);
        let kinds = breakdown(std::process::id()).unwrap();
        assert!(kinds[2].1 > 0, "our own binary is file-backed: {kinds:?}");
    }

    #[test]
    fn classifies_mappings() {
        let memfd = "7fcc17fff000-7fcc37fff000 rw-s 00000000 00:01 1196   /memfd:memory-backend-memfd (deleted)";
        assert_eq!(mapping_kind(memfd), 0);
        assert_eq!(mapping_kind("7fcc38000000-7fcc77fff000 rwxp 00000000 00:00 0 "), 1);
        assert_eq!(
            mapping_kind("55bd5bcf8000-55bd5c28f000 r-xp 00407000 fe:00 10 /usr/bin/qemu"),
            2
        );
        assert_eq!(
            mapping_kind("55bd7b1c1000-55bd7b933000 rw-p 00000000 00:00 0   [heap]"),
            3
        );
        assert!(is_mapping_header(memfd));
        assert!(!is_mapping_header("Rss:                 4 kB"));
    }
}
