//! `stop -t N`: the stop signal, up to N seconds for the sandbox's processes (their output
//! kept), then SIGKILL; the guest syncs and leaves its upper clean. Requests too big for the
//! wire fail at once.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{image_world, vm_available, Sandbox as World};
use std::time::{Duration, Instant};

/// A main command that says when it gets TERM, takes `after` seconds to finish, and says so.
fn slow_to_stop(after: u32) -> String {
    format!("trap 'echo got-term; sleep {after}; echo finished; exit 0' TERM; echo ready; while :; do sleep 1; done")
}

fn wait_for_output(w: &World, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.ok(&["logs", name]).contains(needle) {
        assert!(Instant::now() < deadline, "{needle} never reached the output log");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn stop_waits_for_a_command_that_finishes_within_the_timeout_and_keeps_its_output() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("slow", &["--", "sh", "-c", &slow_to_stop(3)]);
    wait_for_output(&w, "slow", "ready");
    let started = Instant::now();
    w.ok(&["stop", "slow", "-t", "8"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "stop returned before the command finished ({took:?})"
    );
    let output = w.ok(&["logs", "slow"]);
    assert!(
        output.contains("got-term\n") && output.contains("finished\n"),
        "{output}"
    );
    let info = w.inspect("slow");
    assert_eq!(
        (info["state"].as_str(), info["exit_code"].as_i64()),
        (Some("Stopped"), Some(0)),
        "{info}"
    );
    w.assert_no_vm_left();
}

#[test]
fn stop_kills_what_ignores_the_signal_after_the_timeout() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create(
        "stubborn",
        &["--", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
    );
    wait_for_output(&w, "stubborn", "ready");
    let started = Instant::now();
    w.ok(&["stop", "stubborn", "-t", "1"]);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "not waited for: {took:?}");
    assert!(took < Duration::from_secs(15), "not killed in time: {took:?}");
    let reason = w.inspect("stubborn")["exit_reason"].as_str().unwrap().to_string();
    assert!(reason.contains("killed after the 1 s grace period"), "{reason}");
    w.assert_no_vm_left();
}

#[test]
fn a_stopped_image_sandbox_leaves_its_upper_clean() {
    let Some((w, image)) = image_world("busybox") else {
        return;
    };
    w.ok(&["create", &image, "-n", "clean", "--upper-size", "256M"]);
    w.ok(&[
        "exec",
        "clean",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo $i > /root/f$i; done; sync",
    ]);
    w.ok(&["exec", "clean", "--", "sh", "-c", "echo unsynced > /root/late"]);
    w.ok(&["stop", "clean"]);
    let upper = w.home().join("sandboxes/clean/upper.ext4");
    let header = std::process::Command::new("dumpe2fs")
        .arg("-h")
        .arg(&upper)
        .output()
        .unwrap();
    let header = String::from_utf8_lossy(&header.stdout).into_owned();
    let features = header
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap_or_default();
    assert!(!features.contains("needs_recovery"), "{features}");
    let fsck = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&upper)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    let late = std::process::Command::new("debugfs")
        .args(["-R", "cat /upper/root/late"])
        .arg(&upper)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&late.stdout),
        "unsynced\n",
        "a write before stop was lost"
    );
    w.assert_no_vm_left();
}

#[tokio::test]
async fn an_argv_bigger_than_a_frame_fails_at_once_with_the_limit() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("big", &[]);
    // The kernel caps one argument at 128 KiB and a whole argv near 2 MiB: 12 × 100 KiB
    // pass to msb and exceed the 1 MiB frame.
    let piece = "x".repeat(100 << 10);
    let started = Instant::now();
    let mut args = vec!["exec", "big", "--", "echo"];
    args.extend(std::iter::repeat_n(piece.as_str(), 12));
    let stderr = w.fails(&args, 125, "the limit is 1048576 bytes");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let root = w.rootfs.to_str().unwrap().to_string();
    let env: Vec<String> = (0..12).map(|i| format!("BIG{i}={piece}")).collect();
    let mut args = vec!["run", "--rootfs", &root];
    for e in &env {
        args.extend(["-e", e.as_str()]);
    }
    args.extend(["--", "true"]);
    w.fails(&args, 125, "the limit is 1048576 bytes");
    // Through the SDK, 2 MiB of argv.
    let sb = microsandbox::Microsandbox::at(w.home()).connect("big").await.unwrap();
    let err = sb.exec("echo", ["y".repeat(2 << 20)]).await.unwrap_err();
    assert!(err.to_string().contains("the limit is 1048576 bytes"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(
        sb.exec("echo", ["fine"]).await.unwrap().stdout_text(),
        "fine\n",
        "the sandbox still serves"
    );
    drop(sb);
    w.ok(&["rm", "-f", "big"]);
    w.assert_no_vm_left();
}
