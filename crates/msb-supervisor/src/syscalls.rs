//! The supervisor's seccomp filter, installed once its VM is up: from then on it parses
//! what the guest sends (agent frames, packets, DNS names, TLS), so code that subverts it
//! gets only the system calls a running supervisor makes. Above all no exec and no fork:
//! `clone` must create a thread, and `clone3` (whose flags sit behind a pointer a filter
//! cannot read) answers ENOSYS, on which glibc falls back to `clone`.
//!
//! `MSB_SUPERVISOR_SECCOMP` picks what a call outside the list meets: `errno` (the default:
//! EPERM, so a path the list missed fails that operation, and the kernel logs it), `kill`
//! (the process dies: the test suites run so, and fail on any call missing here), `log`
//! (allowed and logged, to find what a new code path needs), or `off` (for benchmarks).

use seccompiler::{
    apply_filter_all_threads, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// The environment variable that picks [`Mode`].
pub const MODE_VAR: &str = "MSB_SUPERVISOR_SECCOMP";

/// Every system call a running supervisor makes: tokio's runtime and its blocking pool,
/// glibc, SQLite, the relay's unix sockets, the network stack's host sockets, files of
/// the sandbox's directory and the store, signals to and waits for its VM's processes.
const ALLOWED: &[libc::c_long] = &[
    // memory
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    // threads and synchronisation (clone is narrowed below)
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_prctl,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_getrandom,
    libc::SYS_uname,
    // time
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    // signals
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_kill,
    libc::SYS_tgkill,
    // the VM's processes
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    // descriptors and event loops
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_pipe2,
    libc::SYS_eventfd2,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_lseek,
    // files: logs, the store (SQLite), the sandbox's directory, /proc for metrics
    libc::SYS_openat,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getcwd,
    libc::SYS_getdents64,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_flock,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_fchmod,
    libc::SYS_fchown,
    libc::SYS_umask,
    // sockets: clients, the network stack's host side, DNS
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept4,
    libc::SYS_shutdown,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
];

/// What a system call outside [`ALLOWED`] meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// It fails with EPERM (and the kernel logs it).
    Errno,
    /// The process is killed.
    Kill,
    /// It is allowed, and logged.
    Log,
    /// No filter.
    Off,
}

impl Mode {
    /// The mode `MSB_SUPERVISOR_SECCOMP` names; [`Mode::Errno`] when unset or unknown.
    pub fn from_env() -> Mode {
        match std::env::var(MODE_VAR).as_deref() {
            Ok("kill") => Mode::Kill,
            Ok("log") => Mode::Log,
            Ok("off") => Mode::Off,
            _ => Mode::Errno,
        }
    }
}

/// Confines every thread of this process (and any it makes later) in `mode`.
pub fn confine(mode: Mode) -> Result<(), seccompiler::Error> {
    let outside = match mode {
        Mode::Off => return Ok(()),
        Mode::Errno => SeccompAction::Errno(libc::EPERM as u32),
        Mode::Kill => SeccompAction::KillProcess,
        Mode::Log => SeccompAction::Log,
    };
    // Installing a filter is itself a system call the allow-list leaves out: it goes last.
    apply_filter_all_threads(&no_clone3()?)?;
    apply_filter_all_threads(&allow_list(outside)?)
}

/// The allow-list: [`ALLOWED`], with `clone` only for threads.
fn allow_list(outside: SeccompAction) -> Result<BpfProgram, seccompiler::Error> {
    let thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        libc::CLONE_THREAD as u64,
    )?;
    let rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .map(|&call| {
            let only = if call == libc::SYS_clone {
                vec![SeccompRule::new(vec![thread.clone()])?]
            } else {
                Vec::new()
            };
            Ok((call, only))
        })
        .collect::<Result<_, seccompiler::Error>>()?;
    let filter = SeccompFilter::new(rules, outside, SeccompAction::Allow, TargetArch::x86_64)?;
    Ok(filter.try_into()?)
}

/// `clone3` answers ENOSYS: glibc then makes its threads with `clone`, whose flags the
/// allow-list can check.
fn no_clone3() -> Result<BpfProgram, seccompiler::Error> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, enosys, TargetArch::x86_64)?;
    Ok(filter.try_into()?)
}
