//! The supervisor's seccomp filter, tried in child processes (a filter cannot be lifted,
//! so the test process itself stays unfiltered): each child is this test binary again,
//! running only `probe` with `PROBE` naming what to try once confined.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_supervisor::syscalls::{confine, Mode};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

/// The child's side: confines itself in `PROBE_MODE` and exits with what `PROBE` met (0 for
/// success, else the errno). Does nothing in the parent's run.
#[test]
fn probe() {
    let Ok(what) = std::env::var("PROBE") else { return };
    let mode = match std::env::var("PROBE_MODE").as_deref() {
        Ok("kill") => Mode::Kill,
        _ => Mode::Errno,
    };
    confine(mode).expect("installing the filter");
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
    let code = match what.as_str() {
        "status" => {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let on = status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]);
            let nnp = status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]);
            if on && nnp {
                0
            } else {
                1
            }
        }
        "runtime" => {
            // What a running supervisor does: a multi-threaded runtime, its blocking pool,
            // sockets, files.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let listener = tokio::net::UnixListener::bind(dir.path().join("s")).unwrap();
                let (client, accepted) =
                    tokio::join!(tokio::net::UnixStream::connect(dir.path().join("s")), listener.accept());
                client.unwrap();
                accepted.unwrap();
                tokio::fs::write(dir.path().join("f"), b"x").await.unwrap();
                tokio::task::spawn_blocking(|| std::thread::spawn(|| 7).join().unwrap())
                    .await
                    .unwrap()
            });
            0
        }
        // SAFETY: fork has no preconditions here; the child only exits.
        "fork" => match unsafe { libc::fork() } {
            // SAFETY: _exit has no preconditions.
            0 => unsafe { libc::_exit(0) },
            -1 => errno(),
            _ => 0,
        },
        "exec" => {
            let err = std::os::unix::process::CommandExt::exec(&mut Command::new("/bin/true"));
            err.raw_os_error().unwrap_or(-1)
        }
        // SAFETY: clone3 with no arguments only fails (EINVAL unfiltered).
        "clone3" => match unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) } {
            -1 => errno(),
            _ => 0,
        },
        // SAFETY: PTRACE_TRACEME takes no pointers.
        "ptrace" => match unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) } {
            -1 => errno(),
            _ => 0,
        },
        other => panic!("unknown probe {other}"),
    };
    std::process::exit(code);
}

/// Runs `probe` in a child confined in `mode` ("errno" or "kill") trying `what`.
fn probe_in_child(mode: &str, what: &str) -> ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "probe", "--test-threads", "1", "--quiet"])
        .env("PROBE", what)
        .env("PROBE_MODE", mode)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
}

#[test]
fn the_filter_is_on_with_no_new_privileges() {
    assert_eq!(probe_in_child("kill", "status").code(), Some(0));
}

#[test]
fn a_confined_runtime_runs_threads_sockets_and_files() {
    // Under `kill`, any call the list misses would end the child with SIGSYS.
    let status = probe_in_child("kill", "runtime");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn no_fork_no_exec_and_threads_only_through_clone() {
    assert_eq!(probe_in_child("errno", "fork").code(), Some(libc::EPERM));
    assert_eq!(probe_in_child("errno", "exec").code(), Some(libc::EPERM));
    assert_eq!(probe_in_child("errno", "clone3").code(), Some(libc::ENOSYS));
    assert_eq!(probe_in_child("errno", "ptrace").code(), Some(libc::EPERM));
}

#[test]
fn under_kill_a_call_outside_the_list_ends_the_process() {
    for what in ["fork", "ptrace"] {
        let status = probe_in_child("kill", what);
        assert_eq!(status.signal(), Some(libc::SIGSYS), "{what}: {status:?}");
    }
}
