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

/// The value of a `Name:   1234 kB` line (as in /proc/meminfo, status, smaps_rollup).
pub fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
    }
}
