//! Stopping msb: signals shut the VM down, and `kill -9` of msb leaves no VM behind.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox};
use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Starts `sleep` in a VM and returns once the guest has printed that it is running.
fn start_sleeper(sb: &Sandbox) -> Child {
    let mut child = sb
        .run(&[], &["sh", "-c", "echo up; exec sleep 600"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn msb");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = [0u8; 3];
    stdout.read_exact(&mut buf).expect("guest output");
    assert_eq!(&buf, b"up\n");
    assert!(!sb.vm_processes().is_empty(), "no QEMU found for a running VM");
    child
}

#[test]
fn sigkill_of_msb_leaves_no_vm_process() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let mut child = start_sleeper(&sb);
    child.kill().expect("kill -9 msb");
    let _ = child.wait();
    sb.assert_no_vm_left();
}

#[test]
fn sigterm_and_sigint_stop_the_vm_cleanly() {
    if !vm_available() {
        return;
    }
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let sb = Sandbox::new();
        let mut child = start_sleeper(&sb);
        // SAFETY: kill(2) on the pid of our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = msb_e2e::wait_or_kill(&mut child, Duration::from_secs(20), "msb did not exit");
        assert_eq!(status.code(), Some(code));
        sb.assert_no_vm_left();
        assert!(!sb
            .home()
            .join("sandboxes")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false));
    }
}

#[test]
fn a_stop_by_signal_takes_the_clean_path() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let mut child = sb
        .run(&["--name", "kept"], &["sh", "-c", "echo up; exec sleep 600"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn msb");
    let mut buf = [0u8; 3];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut buf)
        .expect("guest output");
    // SAFETY: kill(2) on the pid of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    msb_e2e::wait_or_kill(&mut child, Duration::from_secs(20), "msb did not exit");
    let info = sb.inspect("kept");
    let reason = info["exit_reason"].as_str().unwrap_or_default();
    assert_eq!(info["state"], "Stopped", "{info}");
    // The agent confirmed a clean shutdown (processes gone, filesystems synced and frozen)
    // before the VM went: a VMM killed outright would say otherwise.
    assert!(
        !reason.contains("without confirming") && !reason.contains("was killed"),
        "{reason}"
    );
    let log = String::from_utf8_lossy(&sb.output(&["logs", "kept", "--source", "console"]).stdout).into_owned();
    assert!(
        log.contains("reboot: Restarting system"),
        "the guest did not power off by itself: {log}"
    );
    assert!(sb.output(&["rm", "kept"]).status.success());
    sb.assert_no_vm_left();
}
