//! Every way a guest can end is detected, in bounded time, and recorded truthfully: power
//! off, halt, reboot, kernel panic, a memory hog (PID 1 survives it), a guest that stops
//! answering. A fork bomb and a memory hog stay inside their VM. The console of the boot before a restart stays readable.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};
use std::time::{Duration, Instant};

/// Runs `script` in the guest as an exec whose end (the guest going away) is expected.
fn end_guest_with(w: &World, name: &str, script: &str) {
    let mut child = w
        .msb()
        .args(["exec", name, "--", "sh", "-c", script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    msb_e2e::wait_or_kill(
        &mut child,
        Duration::from_secs(30),
        "the exec did not end with its guest",
    );
}

/// Ends a fresh sandbox's guest with `script`; returns its record once it is not running,
/// and how long that took.
fn ended_by(w: &World, name: &str, script: &str) -> (serde_json::Value, Duration) {
    w.create(name, &[]);
    let started = Instant::now();
    end_guest_with(w, name, script);
    let info = w.wait_stopped(name, Duration::from_secs(20));
    (info, started.elapsed())
}

#[test]
fn power_off_halt_and_reboot_are_seen_and_recorded_as_stops() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    for (name, script, reason) in [
        ("off", "poweroff -f", "powered itself off"),
        ("halt", "halt -f", "halted itself"),
        ("boot", "reboot -f", "rebooted itself"),
    ] {
        let (info, took) = ended_by(&w, name, script);
        assert_eq!(info["state"], "Stopped", "{name}: {info}");
        assert!(info["exit_reason"].as_str().unwrap().contains(reason), "{name}: {info}");
        assert!(took < Duration::from_secs(15), "{name} took {took:?} to be noticed");
        w.fails(&["exec", "--no-start", name, "--", "true"], 125, "is stopped");
        // A stopped sandbox starts again.
        w.ok(&["start", name]);
        assert_eq!(w.ok(&["exec", name, "--", "echo", "back"]), "back\n");
        w.ok(&["rm", "-f", name]);
    }
    w.assert_no_vm_left();
}

#[test]
fn a_kernel_panic_is_a_crash_and_its_console_survives_the_restart() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let (info, _) = ended_by(&w, "panic", "echo c > /proc/sysrq-trigger");
    assert_eq!(info["state"], "Crashed", "{info}");
    let reason = info["exit_reason"].as_str().unwrap();
    assert!(reason.contains("kernel panicked"), "{reason}");
    assert!(w.ok(&["ls", "-a"]).contains("kernel panicked"));
    assert!(w
        .ok(&["logs", "panic"])
        .contains("sandbox crashed: the guest kernel panicked"));
    w.ok(&["start", "panic"]);
    let before = w.ok(&["logs", "panic", "--source", "console", "--boot", "1"]);
    assert!(
        before.contains("Kernel panic"),
        "the crashed boot's console is gone: {before}"
    );
    let now = w.ok(&["logs", "panic", "--source", "console"]);
    assert!(!now.contains("Kernel panic"), "this boot's console is fresh: {now}");
    w.ok(&["rm", "-f", "panic"]);
    w.assert_no_vm_left();
}

#[test]
fn a_memory_hog_is_killed_and_pid_1_and_the_sandbox_live_on() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("hog", &["--memory", "128"]);
    // Doubles a shell string until the kernel's OOM killer steps in.
    let out = w.output(&[
        "exec",
        "hog",
        "--",
        "sh",
        "-c",
        "x=1234567890; while :; do x=$x$x; done",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.inspect("hog")["state"], "Running");
    assert_eq!(w.ok(&["exec", "hog", "--", "echo", "alive"]), "alive\n");
    w.ok(&["rm", "-f", "hog"]);
    w.assert_no_vm_left();
}

#[test]
fn a_fork_bomb_and_a_memory_hog_stay_inside_their_vm() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("wild", &["--memory", "128", "--cpus", "1"]);
    w.create("calm", &[]);
    // A fork bomb that never ends, and beside it a shell string doubled until the OOM
    // killer steps in.
    let in_wild = |script: &str| {
        w.msb()
            .args(["exec", "wild", "--", "sh", "-c", script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut bomb = in_wild("b() { b | b & }; b; sleep 600");
    let mut hog = in_wild("x=1234567890; while :; do x=$x$x; done");
    // The sandbox beside them answers all along.
    for i in 0..5 {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(w.ok(&["exec", "calm", "--", "echo", &i.to_string()]), format!("{i}\n"));
    }
    // Both run in the guest's workload cgroup and are held there (its pids limit, its own
    // OOM kills), so the agent keeps answering and the sandbox lives.
    assert_eq!(w.inspect("wild")["state"], "Running");
    let events = w.ok(&["exec", "wild", "--", "cat", "/sys/fs/cgroup/workload/pids.events"]);
    assert!(
        events.starts_with("max ") && !events.starts_with("max 0"),
        "the bomb met the workload's pids limit: {events}"
    );
    // However wild its guest, the sandbox is removed at once, its VM and helpers with it.
    w.ok(&["rm", "-f", "wild"]);
    for child in [&mut bomb, &mut hog] {
        msb_e2e::wait_or_kill(child, Duration::from_secs(30), "an exec outlived its sandbox");
    }
    assert_eq!(w.ok(&["exec", "calm", "--", "echo", "still"]), "still\n");
    w.ok(&["rm", "-f", "calm"]);
    w.assert_no_vm_left();
}

#[test]
fn a_guest_that_stops_answering_is_killed_and_its_exec_ends() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("frozen", &[]);
    let mut exec = w
        .msb()
        .args(["exec", "frozen", "--", "sleep", "600"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let vmm = w.inspect("frozen")["vmm_pid"].as_i64().unwrap();
    // Freeze the whole VM from outside: nothing in it can answer any more.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vmm as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let started = Instant::now();
    let status = msb_e2e::wait_or_kill(&mut exec, Duration::from_secs(60), "the exec hung on a frozen guest");
    assert!(!status.success());
    let info = w.wait_stopped("frozen", Duration::from_secs(30));
    assert_eq!(info["state"], "Crashed", "{info}");
    assert!(
        info["exit_reason"].as_str().unwrap().contains("stopped answering"),
        "{info}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
    w.ok(&["rm", "-f", "frozen"]);
    w.assert_no_vm_left();
}
