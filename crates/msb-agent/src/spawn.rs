//! Turning an `ExecRequest` into a running process: program lookup, environment, identity,
//! working directory, and pipes or a PTY for its standard streams.

use msb_protocol::{ExecRequest, SpawnErrorKind, SpawnFailure, StdinMode, WindowSize};
use msb_types::{resolve_user, Identity};
use nix::pty::{openpty, Winsize};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The host side of a started process's standard streams.
#[derive(Debug)]
pub enum ChildIo {
    /// Separate pipes.
    Pipes {
        /// Write end of the child's stdin (`None`: its stdin is `/dev/null`).
        stdin: Option<OwnedFd>,
        /// Read end of the child's stdout.
        stdout: OwnedFd,
        /// Read end of the child's stderr.
        stderr: OwnedFd,
    },
    /// A pseudo-terminal; the child has the other side as its controlling terminal.
    Pty {
        /// The PTY master.
        master: OwnedFd,
    },
}

/// A started process.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid.
    pub pid: i32,
    /// Its streams.
    pub io: ChildIo,
}

fn fail(kind: SpawnErrorKind, message: String) -> SpawnFailure {
    SpawnFailure { kind, message }
}

/// Starts the process described by `req`. Call `Reaper::watch` on the pid before awaiting.
pub fn spawn(req: &ExecRequest) -> Result<Spawned, SpawnFailure> {
    let invalid = |m: &str| fail(SpawnErrorKind::InvalidRequest, m.to_string());
    let program = req.argv.first().ok_or_else(|| invalid("empty command"))?;
    let all_strings = req.argv.iter().chain(req.env.iter().flat_map(|(k, v)| [k, v]));
    if all_strings.clone().any(|s| s.contains('\0')) || req.env.iter().any(|(k, _)| k.is_empty() || k.contains('=')) {
        return Err(invalid(
            "arguments and environment must not contain NUL bytes or empty/'=' names",
        ));
    }
    let identity = identity(req.user.as_deref())?;
    let workdir = req.workdir.clone().unwrap_or_else(|| "/".into());
    if !workdir.starts_with('/') || !Path::new(&workdir).is_dir() {
        return Err(fail(
            SpawnErrorKind::BadWorkdir,
            format!("working directory '{workdir}' does not exist in the guest"),
        ));
    }
    let env = environment(req, &identity);
    let resolved = resolve_program(
        program,
        env.get("PATH").map(String::as_str).unwrap_or(DEFAULT_PATH),
        &workdir,
    )
    .ok_or_else(|| {
        fail(
            SpawnErrorKind::NotFound,
            format!("{program}: command not found in the guest"),
        )
    })?;
    let mut cmd = Command::new(&resolved);
    cmd.arg0(program).args(&req.argv[1..]).env_clear().envs(&env);
    let (io, child_tty) = match req.tty {
        None => {
            let stdin = match req.stdin {
                StdinMode::Null => Stdio::null(),
                StdinMode::Pipe => Stdio::piped(),
            };
            cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
            (None, false)
        }
        Some(size) => {
            let pty = openpty(Some(&winsize(size)), None).map_err(|e| other(format!("openpty: {e}")))?;
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| other(format!("dup pty: {e}")));
            cmd.stdin(Stdio::from(dup(&pty.slave)?))
                .stdout(Stdio::from(dup(&pty.slave)?))
                .stderr(Stdio::from(pty.slave));
            (Some(pty.master), true)
        }
    };
    let dir = CString::new(workdir.clone()).map_err(|_| invalid("workdir contains NUL"))?;
    let id = identity.clone();
    let limits: Vec<(u32, libc::rlimit)> = req
        .rlimits
        .iter()
        .map(|l| {
            let value = |v: u64| if v == u64::MAX { libc::RLIM_INFINITY } else { v };
            let limit = libc::rlimit {
                rlim_cur: value(l.soft),
                rlim_max: value(l.hard),
            };
            (l.resource.linux_number(), limit)
        })
        .collect();
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe libc functions on data prepared before the fork.
    unsafe {
        let workload = crate::workload::procs_fd();
        cmd.pre_exec(move || child_setup(&id, &dir, child_tty, &limits, workload));
    }
    let mut child = cmd.spawn().map_err(|e| classify(&e, program, &workdir))?;
    let pid = child.id() as i32;
    let io = match io {
        Some(master) => ChildIo::Pty { master },
        None => {
            let missing = || other("child pipes missing".into());
            ChildIo::Pipes {
                stdin: child.stdin.take().map(Into::into),
                stdout: child.stdout.take().ok_or_else(missing)?.into(),
                stderr: child.stderr.take().ok_or_else(missing)?.into(),
            }
        }
    };
    Ok(Spawned { pid, io })
}

/// Runs in the child between fork and exec; `workload` is the workload cgroup's
/// `cgroup.procs` (see `workload`).
fn child_setup(
    id: &Identity,
    dir: &CString,
    tty: bool,
    limits: &[(u32, libc::rlimit)],
    workload: Option<RawFd>,
) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: plain syscalls on valid arguments; `groups` and `dir` outlive the calls.
    unsafe {
        // The agent shields itself from the OOM killer; its children must not inherit that,
        // or a memory hog could only end in a kernel panic. Raising the score needs no
        // privilege.
        let adj = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if adj >= 0 {
            libc::write(adj, b"0".as_ptr().cast(), 1);
            libc::close(adj);
        }
        // Into the workload cgroup ("0": the writer itself), before it can fork.
        if let Some(procs) = workload {
            check(libc::write(procs, b"0".as_ptr().cast(), 1) as libc::c_int)?;
        }
        check(libc::setsid())?;
        // Before dropping privileges, so hard limits can also be raised where root may.
        for (resource, limit) in limits {
            check(libc::setrlimit(*resource, limit))?;
        }
        if tty {
            check(libc::ioctl(0, libc::TIOCSCTTY, 0))?;
        }
        check(libc::setgroups(id.groups.len(), id.groups.as_ptr()))?;
        check(libc::setgid(id.gid))?;
        check(libc::setuid(id.uid))?;
        check(libc::chdir(dir.as_ptr()))?;
    }
    Ok(())
}

fn identity(user: Option<&str>) -> Result<Identity, SpawnFailure> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    match user {
        Some(spec) => resolve_user(spec, &passwd, &group).map_err(|e| fail(SpawnErrorKind::BadUser, e.to_string())),
        None => Ok(resolve_user("0", &passwd, &group).unwrap_or(Identity {
            uid: 0,
            gid: 0,
            groups: vec![0],
            home: "/root".into(),
        })),
    }
}

fn environment(req: &ExecRequest, id: &Identity) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    env.insert(
        "HOME".to_string(),
        if id.uid == 0 && id.home == "/" {
            "/root".into()
        } else {
            id.home.clone()
        },
    );
    if let Ok(host) = nix::unistd::gethostname() {
        env.insert("HOSTNAME".to_string(), host.to_string_lossy().into_owned());
    }
    if req.tty.is_some() {
        env.insert("TERM".to_string(), "xterm".to_string());
    }
    // TLS clients trust the interception CA, unless the request says otherwise.
    if Path::new(msb_protocol::GUEST_TLS_BUNDLE).is_file() {
        for var in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT"] {
            env.insert(var.to_string(), msb_protocol::GUEST_TLS_BUNDLE.to_string());
        }
        env.insert(
            "NODE_EXTRA_CA_CERTS".to_string(),
            msb_protocol::GUEST_TLS_CA.to_string(),
        );
    }
    env.extend(req.env.iter().cloned());
    // The sandbox's scripts come first on the PATH, whatever PATH the image sets.
    if Path::new(crate::init::SCRIPTS_DIR).is_dir() {
        let path = env.get("PATH").cloned().unwrap_or_default();
        env.insert("PATH".to_string(), format!("{}:{path}", crate::init::SCRIPTS_DIR));
    }
    env
}

/// Finds `program` the way execvp would, so "not found" can be told apart from other errors.
fn resolve_program(program: &str, path: &str, workdir: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(workdir).join(program);
        return p.exists().then_some(p);
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(workdir).join(d).join(program))
        .find(|p| p.is_file())
}

fn classify(e: &std::io::Error, program: &str, workdir: &str) -> SpawnFailure {
    match e.raw_os_error() {
        Some(libc::ENOENT) => fail(
            SpawnErrorKind::NotFound,
            format!("{program}: command not found in the guest (or its interpreter is missing)"),
        ),
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) => {
            fail(SpawnErrorKind::NotExecutable, format!("{program}: cannot execute: {e}"))
        }
        Some(libc::EPERM) => fail(
            SpawnErrorKind::BadUser,
            format!("cannot switch user or enter '{workdir}': {e}"),
        ),
        _ => other(format!("{program}: {e}")),
    }
}

fn other(message: String) -> SpawnFailure {
    fail(SpawnErrorKind::Other, message)
}

/// Converts a protocol window size to the kernel's.
pub fn winsize(size: WindowSize) -> Winsize {
    Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

#[cfg(test)]
mod tests;
