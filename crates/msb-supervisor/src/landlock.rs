//! The supervisor's view of the host's files once its VM is up, shut with Landlock. From
//! then on it needs only its home (the state store, its sandbox's directory and logs),
//! the system's libraries, `/proc` (its VM's figures), a few `/etc` files read before or
//! during serving, and `/dev/null`: not the user's home, not `/etc/shadow`, not another
//! user's files. It spawns nothing more (its seccomp filter forbids fork), so the ruleset
//! need not cover what QEMU or virtiofsd use, and virtiofsd, already running, keeps the
//! namespace sandbox Landlock would forbid it to build.
//!
//! Landlock confines threads, and this kernel (ABI 7) cannot confine threads other than
//! the caller. So each of the supervisor's own threads confines itself: the main thread
//! here, the network's through a task on its runtime ([`Network::confine`]). Threads
//! either starts later inherit the ruleset. What is left are tokio's blocking threads
//! started before (by file I/O during boot); they run only our own closures and go
//! after a few idle seconds, and [`confine`] reports how many there were.

use crate::network::Network;
use msb_types::Paths;
use msb_vmm::landlock::{ruleset, system_rules, Grant};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Set to `off` (only to measure what it costs), the supervisor keeps its view of files.
const MODE_VAR: &str = "MSB_SUPERVISOR_LANDLOCK";

/// `/etc` files a serving supervisor may still read: time zone, name service and TLS
/// roots (all public).
const ETC_READ: &[&str] = &[
    "/etc/localtime",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
];

/// What [`confine`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Confined {
    /// The calling and network threads are confined; this many other threads were not.
    Threads { left_out: usize },
    /// Off: `MSB_SUPERVISOR_LANDLOCK=off`, or a kernel without Landlock.
    Off,
}

/// The rules of a serving supervisor whose home is `paths`.
fn rules(paths: &Paths) -> Vec<(PathBuf, Grant)> {
    let mut rules = system_rules(&["/dev/null"]);
    rules.extend(ETC_READ.iter().map(|p| (PathBuf::from(p), Grant::Read)));
    rules.push((paths.home().to_path_buf(), Grant::ReadWrite));
    rules
}

/// The ruleset of a serving supervisor whose home is `paths`; `None` where it is off.
pub fn supervisor_ruleset(paths: &Paths) -> Result<Option<OwnedFd>, String> {
    if std::env::var(MODE_VAR).as_deref() == Ok("off") {
        return Ok(None);
    }
    ruleset("the supervisor", rules(paths)).map_err(|e| e.to_string())
}

/// Confines the calling (the main) thread and the network's thread to the view of a serving
/// supervisor whose home is `paths`. Must run before the seccomp filter goes on, which
/// does not allow the call.
pub async fn confine(paths: &Paths, network: Option<&Network>) -> Result<Confined, String> {
    let Some(ruleset) = supervisor_ruleset(paths)? else {
        return Ok(Confined::Off);
    };
    let before = threads();
    msb_vmm::landlock::restrict_thread(ruleset.as_raw_fd()).map_err(|e| format!("the main thread: {e}"))?;
    let mut confined = vec![thread_id()];
    if let Some(network) = network {
        confined.push(network.confine(ruleset).await?);
    }
    let left_out = before.iter().filter(|tid| !confined.contains(tid)).count();
    Ok(Confined::Threads { left_out })
}

/// The ids of this process's threads.
fn threads() -> Vec<u32> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The calling thread's id.
pub fn thread_id() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}
