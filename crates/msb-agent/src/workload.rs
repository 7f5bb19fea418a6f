//! The cgroup every process the agent starts runs in, so that nothing a user runs can
//! starve the agent: a fork bomb or a memory hog must end inside the guest with the agent
//! still answering the host (which otherwise declares the guest dead after its heartbeat
//! goes unanswered).
//!
//! `/sys/fs/cgroup/workload` gets the memory left at boot but a reserve (so its OOM kills happen in
//! the cgroup, not across the guest), all process slots but a reserve, and the lowest CPU
//! weight against the agent, which stays in the root cgroup: idle, the agent costs the
//! workload nothing; busy, it is served first.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::OnceLock;

/// Where cgroup v2 is mounted (`init::late_mounts`).
const ROOT: &str = "/sys/fs/cgroup";
/// Memory the workload cannot take from the agent and the kernel, beyond what they use at
/// boot: this, plus a 32nd of the RAM for the kernel's tables that grow with its size.
const RESERVED_MEMORY: u64 = 12 << 20;
/// Process slots the workload cannot take from the agent (of the half of the kernel's
/// limit it may use: a fork bomb's churn at the limit costs the kernel less that way).
const RESERVED_PIDS: u64 = 64;

/// `cgroup.procs` of the workload cgroup, opened once: a child writes `0` to it between fork
/// and exec to move itself in.
static PROCS: OnceLock<OwnedFd> = OnceLock::new();

/// Makes the workload cgroup and its limits from this guest's size. Without it (no cgroup
/// v2 in the guest kernel), processes run beside the agent as before.
pub fn setup() -> io::Result<()> {
    let root = Path::new(ROOT);
    std::fs::write(root.join("cgroup.subtree_control"), "+cpu +memory +pids")?;
    let dir = root.join("workload");
    if !dir.is_dir() {
        std::fs::create_dir(&dir)?;
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let bytes = |key: &str| {
        crate::metrics::meminfo_kib(&meminfo, key)
            .map(|kib| kib * 1024)
            .ok_or_else(|| io::Error::other(format!("no {key} in /proc/meminfo")))
    };
    let total = bytes("MemTotal:")?;
    let memory = bytes("MemAvailable:")?.saturating_sub(RESERVED_MEMORY + total / 32);
    std::fs::write(dir.join("memory.max"), memory.to_string())?;
    let threads = read_number("/proc/sys/kernel/threads-max")?;
    std::fs::write(
        dir.join("pids.max"),
        (threads / 2).saturating_sub(RESERVED_PIDS).max(1).to_string(),
    )?;
    std::fs::write(dir.join("cpu.weight"), "1")?;
    let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
    let _ = PROCS.set(procs.into());
    Ok(())
}

/// The descriptor a child writes `0` to, to join the workload (none if [`setup`] failed).
pub fn procs_fd() -> Option<RawFd> {
    PROCS.get().map(AsRawFd::as_raw_fd)
}

fn read_number(path: &str) -> io::Result<u64> {
    std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{path} is not a number")))
}
