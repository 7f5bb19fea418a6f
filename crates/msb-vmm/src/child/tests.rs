//! Helper processes on the host: what they inherit, their process group, their death
//! with the spawning thread, and the waits and messages built on them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::process::Stdio;

/// The soft and hard values of the `/proc/self/limits` line starting `name`, as a child
/// spawned with `confinement` sees them.
async fn limits_of_child(confinement: Confinement, names: &[&str]) -> Vec<[String; 2]> {
    let mut cmd = Command::new("cat");
    cmd.arg("/proc/self/limits").stdout(Stdio::piped());
    let out = spawn_owned(&mut cmd, "cat", &[], confinement)
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let limits = String::from_utf8(out.stdout).unwrap();
    names
        .iter()
        .map(|name| {
            let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
            // The name's words, then soft, hard and (usually) units.
            let values: Vec<&str> = line[name.len()..].split_whitespace().collect();
            [values[0].to_string(), values[1].to_string()]
        })
        .collect()
}

#[tokio::test]
async fn a_helper_dumps_no_core() {
    let core = limits_of_child(Confinement::default(), &["Max core file size"]).await;
    assert_eq!(core, [["0", "0"]]);
}

#[tokio::test]
async fn a_helper_is_held_to_its_address_space_and_descriptors() {
    let confinement = Confinement {
        address_space: Some(3 << 30),
        open_files: Some(100),
        ..Confinement::default()
    };
    let limits = limits_of_child(confinement, &["Max address space", "Max open files"]).await;
    let space = (3u64 << 30).to_string();
    assert_eq!(limits, [[space.clone(), space], ["100".into(), "100".into()]]);
    // A limit above the hard one we hold lowers nothing and fails nothing.
    let ours = limits_of_child(Confinement::default(), &["Max open files"]).await;
    let loose = Confinement {
        open_files: Some(u64::MAX),
        ..Confinement::default()
    };
    let hard = &ours[0][1];
    assert_eq!(
        limits_of_child(loose, &["Max open files"]).await,
        [[hard.clone(), hard.clone()]]
    );
}

/// The capability sets (`CapEff`, `CapPrm`, `CapBnd`) of a child spawned with `drop_caps`.
async fn caps_of_child(drop_caps: bool) -> Vec<String> {
    let mut cmd = Command::new("cat");
    cmd.arg("/proc/self/status").stdout(Stdio::piped());
    let confinement = Confinement {
        drop_caps,
        ..Confinement::default()
    };
    let out = spawn_owned(&mut cmd, "cat", &[], confinement)
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let status = String::from_utf8(out.stdout).unwrap();
    ["CapEff:", "CapPrm:", "CapBnd:"]
        .iter()
        .map(|field| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .unwrap()
                .split_once(':')
                .unwrap()
                .1
                .trim()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_helper_spawned_without_capabilities_has_none_even_as_root() {
    let none = "0000000000000000";
    let [eff, prm, bnd] = <[String; 3]>::try_from(caps_of_child(true).await).unwrap();
    assert_eq!((eff.as_str(), prm.as_str()), (none, none));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(bnd, none, "the bounding set is emptied");
        let kept = caps_of_child(false).await;
        assert_ne!(kept[0], none, "root's helpers keep root's capabilities unless told");
    }
}

/// The descriptors a child started by `spawn_owned` holds: number → what it is.
async fn fds_of_child(fds: &[RawFd]) -> BTreeMap<u32, String> {
    let mut cmd = Command::new("ls");
    cmd.args(["-l", "/proc/self/fd/"]).stdout(Stdio::piped());
    let out = spawn_owned(&mut cmd, "ls", fds, Confinement::default())
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once(" -> "))
        .map(|(left, target)| (left.rsplit(' ').next().unwrap().parse().unwrap(), target.to_string()))
        // ls's own handle on the directory it lists.
        .filter(|(_, target): &(u32, String)| !(target.starts_with("/proc/") && target.ends_with("/fd")))
        .collect()
}

#[tokio::test]
async fn a_child_gets_stdio_and_the_passed_descriptor_as_3_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (passed_path, leaked_path) = (dir.path().join("passed"), dir.path().join("leaked"));
    let passed = std::fs::File::create(&passed_path).unwrap();
    let leaked = std::fs::File::create(&leaked_path).unwrap();
    // A descriptor we hold without close-on-exec, as one inherited from our own parent.
    // SAFETY: F_SETFD on a descriptor `leaked` owns and keeps open.
    assert_eq!(unsafe { libc::fcntl(leaked.as_raw_fd(), libc::F_SETFD, 0) }, 0);

    let with = fds_of_child(&[passed.as_raw_fd()]).await;
    assert_eq!(with.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3], "{with:?}");
    assert_eq!(with[&3], passed_path.to_str().unwrap());
    assert_eq!(with[&0], "/dev/null");

    // Two, in the order given (whatever numbers they have here).
    let second_path = dir.path().join("second");
    let second = std::fs::File::create(&second_path).unwrap();
    let two = fds_of_child(&[second.as_raw_fd(), passed.as_raw_fd()]).await;
    assert_eq!(two.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4], "{two:?}");
    assert_eq!(two[&3], second_path.to_str().unwrap());
    assert_eq!(two[&4], passed_path.to_str().unwrap());

    let without = fds_of_child(&[]).await;
    assert_eq!(without.keys().copied().collect::<Vec<_>>(), [0, 1, 2], "{without:?}");
    drop(leaked);
}

/// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`, for fields after the name.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(n - 3).map(String::from)
}

#[tokio::test]
async fn a_child_leads_a_process_group_of_its_own() {
    let mut cmd = Command::new("sleep");
    cmd.arg("10");
    let child = spawn_owned(&mut cmd, "sleep", &[], Confinement::default()).unwrap();
    let pid = child.id().unwrap();
    assert_eq!(stat_field(pid, 5), Some(pid.to_string()), "pgrp");
}

#[test]
fn a_child_dies_with_the_thread_that_spawned_it() {
    let pid = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            let child = spawn_owned(&mut cmd, "sleep", &[], Confinement::default()).unwrap();
            let pid = child.id().unwrap() as i32;
            // Not dropped: kill-on-drop must not be what ends it.
            std::mem::forget(child);
            pid
        })
    })
    .join()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid pointer to an int.
    while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
        if Instant::now() > deadline {
            // SAFETY: kill and waitpid on our own child, which has not been reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child outlived the thread that spawned it by 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
}

/// `sh -c script` started as a helper, its output going to `log`.
fn helper(script: &str, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]).stdout(out.try_clone().unwrap()).stderr(out);
    spawn_owned(&mut cmd, "helper", &[], Confinement::default()).unwrap()
}

#[tokio::test]
async fn waiting_for_a_socket_fails_as_soon_as_the_child_exits() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("helper.log");
    let mut child = helper("echo starting; echo 'bad flag --x' >&2; exit 3", &log);
    let err = connect_when_listening(&dir.path().join("never"), &mut child, "the helper", &log).await;
    match err {
        Err(VmmError::Failed { what, detail }) => {
            assert_eq!(what, "the helper");
            assert!(detail.starts_with("exited with exit status: 3:"), "{detail}");
            assert!(detail.contains("starting\n  bad flag --x"), "{detail}");
        }
        other => panic!("expected the helper's failure, got {other:?}"),
    }
}

#[tokio::test]
async fn waiting_for_a_socket_ends_when_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let (log, socket) = (dir.path().join("helper.log"), dir.path().join("helper.sock"));
    let mut child = helper("exec sleep 10", &log);
    // Listening a moment after the wait starts, as a starting server does.
    let path = socket.clone();
    let server = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.accept().unwrap()
    });
    connect_when_listening(&socket, &mut child, "the helper", &log)
        .await
        .unwrap();
    server.join().unwrap();
    assert!(child.try_wait().unwrap().is_none(), "the helper should still run");
}

#[test]
fn tail_is_the_last_eight_lines_and_where_the_rest_is() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("qemu.log");
    let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&log, text).unwrap();
    let lines: Vec<String> = (13..=20).map(|i| format!("line {i}")).collect();
    let want = format!("\n  {}\n(full log: {})", lines.join("\n  "), log.display());
    assert_eq!(tail(&log), want);

    std::fs::write(&log, "only one\n").unwrap();
    assert_eq!(tail(&log), format!("\n  only one\n(full log: {})", log.display()));
}

#[test]
fn tail_of_an_empty_or_missing_log_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("qemu.log");
    assert_eq!(tail(&log), format!("(no output; see {})", log.display()));
    std::fs::write(&log, "").unwrap();
    assert_eq!(tail(&log), format!("(no output; see {})", log.display()));
}
