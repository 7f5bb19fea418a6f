//! The supervisor's view of the host's files once its VM is up, shut with Landlock. From
//! then on it needs only the state store, its own sandbox's directory (logs, runtime
//! files; removed at the end of an ephemeral sandbox), the system's libraries, `/proc`
//! and `/sys` (its VM's figures) and `/dev/null`: not msb's programs, kernels, layers or
//! other sandboxes, not the user's home, not `/etc`. It spawns nothing more (its seccomp
//! filter forbids fork), so the ruleset need not cover what QEMU or virtiofsd use, and
//! virtiofsd, already running, keeps the namespace sandbox Landlock would forbid it to
//! build.
//!
//! Landlock confines threads, and a kernel without Landlock's thread sync (ABI 7 and
//! older) cannot confine threads other than the caller. So each of the supervisor's own
//! threads confines itself: the main thread here, the network's through a task on its
//! runtime (`Network::confine`). Threads either starts later inherit the ruleset. What
//! would be left are tokio's blocking threads started before (by file I/O during boot);
//! there are none in practice, and [`confine`] reports how many there were.

use crate::network::Network;
use msb_types::Paths;
use msb_vmm::landlock::{ruleset, system_rules, Grant};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Set to `off` (only to measure what it costs), the supervisor keeps its view of files.
const MODE_VAR: &str = "MSB_SUPERVISOR_LANDLOCK";

/// What [`confine`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Confined {
    /// The calling and network threads are confined; this many other threads were not.
    Threads { left_out: usize },
    /// Off: `MSB_SUPERVISOR_LANDLOCK=off`, or a kernel without Landlock.
    Off,
}

/// The rules of the serving supervisor of sandbox `name` in the home `paths`.
fn rules(paths: &Paths, name: &str) -> Vec<(PathBuf, Grant)> {
    let mut rules = system_rules(&["/dev/null"]);
    let sandbox = paths.sandbox_dir(name);
    rules.push((msb_store::db_dir(paths), Grant::ReadWrite));
    if let Some(sandboxes) = sandbox.parent() {
        rules.push((sandboxes.to_path_buf(), Grant::RemoveEmptyDirs));
    }
    rules.push((sandbox, Grant::ReadWrite));
    rules
}

/// The ruleset of the serving supervisor of sandbox `name` in the home `paths`; `None`
/// where it is off.
fn supervisor_ruleset(paths: &Paths, name: &str) -> Result<Option<OwnedFd>, String> {
    if std::env::var(MODE_VAR).as_deref() == Ok("off") {
        return Ok(None);
    }
    ruleset("the supervisor", rules(paths, name)).map_err(|e| e.to_string())
}

/// Confines the calling (the main) thread and the network's thread to the view of the
/// serving supervisor of sandbox `name` in the home `paths`. Must run before the seccomp
/// filter goes on, which does not allow the call.
pub async fn confine(paths: &Paths, name: &str, network: Option<&Network>) -> Result<Confined, String> {
    let Some(ruleset) = supervisor_ruleset(paths, name)? else {
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
