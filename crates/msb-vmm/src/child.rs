//! Helper processes (QEMU, virtiofsd) that must never outlive their owner.

use crate::{own_ids, VmmError};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::unix::pipe;
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// What a helper is denied beyond what every helper is (the default: nothing more).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Confinement {
    /// No capabilities, even when msb runs as root: the bounding and ambient sets are
    /// emptied before exec, so root's exec grants nothing. (virtiofsd's namespace sandbox
    /// needs root's, so it keeps them.)
    pub(crate) drop_caps: bool,
    /// A Landlock ruleset (see `landlock::qemu_ruleset`) enforced just before exec.
    pub(crate) landlock: Option<RawFd>,
    /// Most bytes of address space it may map (`RLIMIT_AS`): the host's only bound on a
    /// helper's memory where no cgroup v2 hierarchy is delegated to us.
    pub(crate) address_space: Option<u64>,
    /// Most descriptors it may hold open (`RLIMIT_NOFILE`).
    pub(crate) open_files: Option<u64>,
    /// A uid and gid of its own (msb is root; see `own_ids`).
    pub(crate) own_ids: Option<OwnIds>,
}

/// How a helper takes ids of its own: uid and gid become [`own_ids::of_pid`] of its pid,
/// its only supplementary group is `group` (the one that may open `/dev/kvm`), and the
/// passed descriptor `reowned` (a pipe it reopens by path) becomes its own first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OwnIds {
    pub(crate) group: Option<libc::gid_t>,
    pub(crate) reowned: Option<RawFd>,
}

/// Fails if the process that forked us (`parent`) is gone already: its death came before
/// the parent-death signal was asked for, so none will come. Async-signal-safe.
fn orphaned(parent: u32) -> std::io::Result<()> {
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != parent {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Gives the calling process ids of its own as `ids` says; `parent` forked it. Async-
/// signal-safe (getpid, getppid, fchown, setgroups, setgid, setuid, prctl), so usable
/// between fork and exec.
fn take_own_ids(ids: OwnIds, parent: u32) -> std::io::Result<()> {
    // SAFETY: getpid has no preconditions.
    let id = own_ids::of_pid(unsafe { libc::getpid() } as u32);
    let groups = [ids.group.unwrap_or(id)];
    // SAFETY: `groups` holds at least as many ids as passed; the rest take plain numbers.
    let failed = unsafe {
        ids.reowned.is_some_and(|fd| libc::fchown(fd, id, id) != 0)
            || libc::setgroups(usize::from(ids.group.is_some()), groups.as_ptr()) != 0
            || libc::setgid(id) != 0
            || libc::setuid(id) != 0
            // A change of ids clears the parent-death signal: ask for it again.
            || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    orphaned(parent)
}

/// Lowers `resource`'s soft and hard limits to `most` (never raises a lower hard limit).
/// Async-signal-safe (getrlimit and setrlimit only), so usable between fork and exec.
fn lower_limit(resource: libc::__rlimit_resource_t, most: u64) -> std::io::Result<()> {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `now` is a writable rlimit.
    if unsafe { libc::getrlimit(resource, &mut now) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let most = most.min(now.rlim_max);
    let lowered = libc::rlimit {
        rlim_cur: most,
        rlim_max: most,
    };
    // SAFETY: `lowered` is a valid rlimit.
    if unsafe { libc::setrlimit(resource, &lowered) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Most descriptors a helper is passed: a QEMU gets its console, network, agent, kernel,
/// initramfs, share connections and every disk file (an image's layers each one).
const MAX_PASSED: usize = 256;
/// Where passed descriptors wait between fork and exec, above any slot they go to.
const PARKING_FLOOR: RawFd = PASSED_FD + MAX_PASSED as RawFd;

/// Spawns `cmd` so it dies with us: SIGKILL on drop, SIGKILL when our thread dies
/// (PR_SET_PDEATHSIG, which also covers `kill -9` of msb), with no new privileges
/// (PR_SET_NO_NEW_PRIVS) and no core dumps, and its own process group so a
/// Ctrl-C at the terminal reaches msb — which shuts the VM down cleanly — and not QEMU.
/// Descriptors msb itself inherited without close-on-exec (a caller's PTY master, say) are
/// not passed on: a helper holding a terminal open would keep it from ever hanging up.
/// The child gets `fds` as its descriptors 3, 4, … ([`PASSED_FD`] on), and is confined as
/// `confinement` says.
pub(crate) fn spawn_owned(
    cmd: &mut Command,
    what: &str,
    fds: &[RawFd],
    confinement: Confinement,
) -> Result<Child, VmmError> {
    if fds.len() > MAX_PASSED {
        return Err(VmmError::InvalidSpec(format!(
            "{what} would be passed too many descriptors"
        )));
    }
    let mut passed = [-1; MAX_PASSED];
    passed[..fds.len()].copy_from_slice(fds);
    let count = fds.len();
    let parent = std::process::id();
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    // The closure runs between fork and exec: prctl, setpgid, get/setrlimit, fcntl, dup2,
    // getpid, fchown, setgroups, setgid, setuid, close_range and landlock_restrict_self
    // are async-signal-safe, and nothing in it allocates.
    // SAFETY: the closure makes only those calls, and `fds` stay open until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            // No new privileges: neither the helper nor anything it could run gains any
            // through setuid files or file capabilities.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::setpgid(0, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            orphaned(parent)?;
            if confinement.drop_caps {
                // Every capability out of the bounding set (EINVAL past the kernel's last
                // one, EPERM without CAP_SETPCAP, when there is nothing to drop anyway),
                // and none ambient.
                for cap in 0..64 {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                }
                libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
            }
            // No core dumps: QEMU's memory is the guest's, secrets included, and neither
            // helper's is anyone's to keep on disk.
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(most) = confinement.address_space {
                lower_limit(libc::RLIMIT_AS, most)?;
            }
            if let Some(ruleset) = confinement.landlock {
                // For good: the helper cannot lift it.
                crate::landlock::restrict_thread(ruleset)?;
            }
            // Park every descriptor above the slots first, so placing one never closes
            // another that happens to sit in its slot.
            let mut parked = [-1; MAX_PASSED];
            for i in 0..count {
                parked[i] = libc::fcntl(passed[i], libc::F_DUPFD_CLOEXEC, PARKING_FLOOR);
                if parked[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in parked.iter().take(count).enumerate() {
                // dup2 leaves the new descriptor without close-on-exec.
                if libc::dup2(*fd, PASSED_FD + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // After the descriptors are placed: parking goes above every slot, which a
            // low limit would forbid.
            if let Some(most) = confinement.open_files {
                lower_limit(libc::RLIMIT_NOFILE, most)?;
            }
            // After the descriptors are placed, as `reowned` names one by its place.
            if let Some(ids) = confinement.own_ids {
                take_own_ids(ids, parent)?;
            }
            // Best effort (Linux >= 5.11): mark every other descriptor above stdio and
            // the passed ones close-on-exec (the parked copies among them).
            libc::syscall(
                libc::SYS_close_range,
                (PASSED_FD + count as RawFd) as u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    cmd.spawn().map_err(VmmError::io(format!("starting {what}")))
}

/// The descriptor number a helper finds the first passed descriptor at.
pub(crate) const PASSED_FD: RawFd = 3;

/// Connects to the socket a starting `child` listens on at `path`, retrying until it
/// does, failing early if `child` exits first.
pub(crate) async fn connect_when_listening(
    path: &Path,
    child: &mut Child,
    what: &str,
    log: &Path,
) -> Result<std::os::unix::net::UnixStream, VmmError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Not there yet (ENOENT), or bound but not yet listening (ECONNREFUSED).
        if let Ok(connection) = std::os::unix::net::UnixStream::connect(path) {
            return Ok(connection);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(VmmError::Failed {
                what: what.into(),
                detail: format!("exited with {status}: {}", tail(log)),
            });
        }
        if Instant::now() > deadline {
            return Err(VmmError::Failed {
                what: what.into(),
                detail: format!("{} did not listen within 10 s", path.display()),
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(8).collect();
    let joined = lines.into_iter().rev().collect::<Vec<_>>().join("\n  ");
    if joined.is_empty() {
        format!("(no output; see {})", log.display())
    } else {
        format!("\n  {joined}\n(full log: {})", log.display())
    }
}

/// A launched VM: the VMM process, its helpers, the agent's channel and the console.
#[derive(Debug)]
pub struct VmProcess {
    pub(crate) vmm: Child,
    pub(crate) helpers: Vec<Child>,
    pub(crate) agent: Option<std::os::unix::net::UnixStream>,
    pub(crate) monitor: Option<std::os::unix::net::UnixStream>,
    pub(crate) console: Option<pipe::Receiver>,
    pub(crate) network: Option<std::os::unix::net::UnixStream>,
    pub(crate) stderr_log: PathBuf,
    /// Where QEMU reads the saved guest it waits to be told to load, if it does (see
    /// [`Monitor::resume_loaded`](crate::Monitor::resume_loaded)).
    pub(crate) deferred_load: Option<String>,
}

impl VmProcess {
    /// The migration address of the saved guest QEMU loads only when told (a fork's copy,
    /// whose saved state leaves its memory out), for [`Monitor::resume_loaded`](crate::Monitor::resume_loaded).
    pub fn deferred_load(&self) -> Option<&str> {
        self.deferred_load.as_deref()
    }
    /// Pids of the VMM and its helpers, for metrics and tests.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.vmm)
            .chain(&self.helpers)
            .filter_map(Child::id)
            .collect()
    }

    /// The guest console's output (kernel and agent messages), once: whoever takes it must
    /// keep reading it, or the guest stalls when it writes to its console.
    pub fn take_console(&mut self) -> Option<pipe::Receiver> {
        self.console.take()
    }

    /// The host end of the guest's network device (QEMU `-netdev stream` framing), once:
    /// whoever takes it runs the network for the guest.
    pub fn take_network(&mut self) -> Option<std::os::unix::net::UnixStream> {
        self.network.take()
    }

    /// The host end of the agent's channel, once.
    pub fn take_agent(&mut self) -> Result<UnixStream, VmmError> {
        take_stream(&mut self.agent, "the agent's channel")
    }

    /// The socket of QEMU's monitor, once (see [`crate::Monitor::connect`]).
    pub fn take_monitor(&mut self) -> Result<UnixStream, VmmError> {
        take_stream(&mut self.monitor, "QEMU's monitor")
    }

    /// Fails with the VMM's own words if it has exited.
    pub fn check_running(&mut self) -> Result<(), VmmError> {
        match self.vmm.try_wait() {
            Ok(Some(status)) => Err(VmmError::Failed {
                what: "the VM".into(),
                detail: format!("exited with {status}: {}", tail(&self.stderr_log)),
            }),
            _ => Ok(()),
        }
    }

    /// Waits for the VMM to exit and returns how it ended.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.vmm.wait().await
    }

    /// Waits up to `timeout` for the VMM to exit by itself; true if it did.
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.vmm.wait()).await.is_ok()
    }

    /// Kills the VMM and its helpers at once and reaps them.
    pub async fn kill(&mut self) {
        for child in std::iter::once(&mut self.vmm).chain(self.helpers.iter_mut()) {
            let _ = child.kill().await;
        }
    }
}

/// The socket in `slot`, once, made async.
fn take_stream(slot: &mut Option<std::os::unix::net::UnixStream>, what: &str) -> Result<UnixStream, VmmError> {
    let stream = slot.take().ok_or_else(|| VmmError::Failed {
        what: what.into(),
        detail: "taken already".into(),
    })?;
    stream
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(stream))
        .map_err(VmmError::io(format!("using {what}")))
}

#[cfg(test)]
mod tests;
