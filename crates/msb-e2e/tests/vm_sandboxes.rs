//! Named sandboxes through the CLI: the state machine and its refusals, detached runs and
//! their logs, idle timeout and max duration, reconciliation after `kill -9` of the
//! supervisor or of QEMU, repeated execs, parallel use, metrics, name validation.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn a_sandbox_goes_through_its_states_and_refuses_the_wrong_verbs() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("life", &[]);
    w.fails(
        &["create", "-n", "life", "--rootfs", w.rootfs.to_str().unwrap()],
        125,
        "already exists",
    );
    assert_eq!(w.inspect("life")["state"], "Running");
    assert_eq!(
        w.ok(&["exec", "life", "--", "sh", "-c", "echo kept > /root/mark; echo ran"]),
        "ran\n"
    );
    w.fails(&["start", "life"], 1, "is running");
    w.fails(&["rm", "life"], 1, "is running");
    w.ok(&["stop", "life"]);
    let info = w.inspect("life");
    assert_eq!(
        (info["state"].as_str(), info["exit_reason"].as_str()),
        (Some("Stopped"), Some("stopped on request"))
    );
    assert!(w.ok(&["ls"]).is_empty(), "ls shows running and crashed sandboxes only");
    assert!(w.ok(&["ls", "-a"]).contains("life"));
    // Filters and script formats.
    assert_eq!(w.ok(&["ls", "-q", "--stopped"]), "life\n");
    assert_eq!(w.ok(&["ls", "-q", "--running"]), "");
    assert_eq!(
        w.ok(&["list", "-q", "life"]),
        "life\n",
        "a named sandbox shows in any state"
    );
    let rows: Value = serde_json::from_str(&w.ok(&["ls", "-a", "--format", "json"])).unwrap();
    assert_eq!(rows[0]["state"], "Stopped");
    assert!(rows[0]["created_at"].as_str().unwrap().ends_with('Z'), "{rows}");
    w.fails(&["ls", "nosuch"], 1, "not found");
    let again = w.output(&["stop", "life"]);
    assert!(again.status.success(), "stopping a stopped sandbox is done already");
    w.fails(
        &["exec", "--no-start", "life", "--", "true"],
        125,
        "is stopped: start it first",
    );
    w.ok(&["start", "life"]);
    assert_eq!(w.ok(&["exec", "life", "--", "cat", "/root/mark"]), "kept\n");
    let listed: Value = serde_json::from_str(&w.ok(&["ps", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "life");
    w.ok(&["rm", "-f", "life"]);
    w.fails(&["inspect", "life"], 125, "not found");
    assert!(!w.home().join("sandboxes/life").exists());
    w.assert_no_vm_left();
}

#[test]
fn bad_names_are_refused_and_nothing_is_made() {
    let w = World::new();
    let root = w.rootfs.to_str().unwrap();
    let long = "x".repeat(200);
    for name in ["../x", "a/b", "", "/", "UPPER", long.as_str()] {
        w.fails(&["create", "-n", name, "--rootfs", root], 125, "invalid sandbox name");
    }
    assert_eq!(w.sandbox_dirs(), 0);
}

#[test]
fn detached_runs_keep_their_command_output_and_exit_status() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let root = w.rootfs.to_str().unwrap();
    let script = "echo started; sleep 30";
    // The name was given, so nothing is printed (a generated one would be).
    assert_eq!(
        w.ok(&["run", "-d", "--name", "bg", "--rootfs", root, "--", "sh", "-c", script]),
        ""
    );
    assert_eq!(w.ok(&["exec", "bg", "--", "echo", "re-attached"]), "re-attached\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.ok(&["logs", "bg"]).contains("started") {
        assert!(Instant::now() < deadline, "the command's output never reached the log");
        std::thread::sleep(Duration::from_millis(100));
    }
    let exec_log = w.ok(&["logs", "--source", "exec", "bg"]);
    assert!(
        exec_log.contains("argv=[\"echo\",\"re-attached\"]") && exec_log.contains("exit 0"),
        "{exec_log}"
    );
    w.ok(&["stop", "bg"]);
    // The guest boots quietly; its console log is there all the same.
    w.ok(&["logs", "--source", "console", "bg"]);
    assert!(w.home().join("sandboxes/bg/logs/console.log").is_file());

    w.ok(&[
        "run",
        "-d",
        "--name",
        "short",
        "--rootfs",
        root,
        "--",
        "sh",
        "-c",
        "echo bye; exit 3",
    ]);
    let info = w.wait_stopped("short", Duration::from_secs(20));
    assert_eq!(info["exit_code"], 3);
    assert!(
        info["exit_reason"]
            .as_str()
            .unwrap()
            .contains("its command ended (exit 3)"),
        "{info}"
    );
    // `logs -f` on a stopped sandbox prints what there is and ends.
    assert_eq!(w.ok(&["logs", "-f", "short"]), "bye\n");
    w.ok(&["rm", "bg", "short"]);
    w.assert_no_vm_left();
}

#[test]
fn idle_timeout_and_max_duration_stop_the_sandbox() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("idle", &["--idle-timeout", "3s"]);
    // A session in progress is not idleness.
    assert_eq!(
        w.ok(&["exec", "idle", "--", "sh", "-c", "sleep 4; echo still-here"]),
        "still-here\n"
    );
    // Idleness counts from the end of the last session, not from its start (more than
    // 3 s ago): a second after it ended, the sandbox still runs.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        w.inspect("idle")["state"],
        "Running",
        "stopped before it was idle for 3 s"
    );
    let info = w.wait_stopped("idle", Duration::from_secs(15));
    assert_eq!(info["exit_reason"], "idle timeout");

    w.create("capped", &["--max-duration", "4s"]);
    let started = Instant::now();
    let out = w.output(&["exec", "capped", "--", "sleep", "60"]);
    assert!(!out.status.success(), "the command dies with the sandbox");
    assert!(started.elapsed() < Duration::from_secs(30));
    let info = w.wait_stopped("capped", Duration::from_secs(15));
    assert_eq!(info["exit_reason"], "max duration reached");
    w.ok(&["rm", "idle", "capped"]);
    w.assert_no_vm_left();
}

fn kill9(pid: &Value) {
    let pid = pid.as_u64().expect("a pid") as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
}

#[test]
fn a_killed_supervisor_or_vmm_is_reconciled_and_the_sandbox_starts_again() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("victim", &[]);
    kill9(&w.inspect("victim")["supervisor_pid"]);
    let info = w.wait_stopped("victim", Duration::from_secs(10));
    assert_eq!(info["state"], "Crashed");
    assert!(
        info["exit_reason"].as_str().unwrap().contains("supervisor died"),
        "{info}"
    );
    w.assert_no_vm_left();
    w.ok(&["start", "victim"]);
    assert_eq!(w.ok(&["exec", "victim", "--", "echo", "back"]), "back\n");

    kill9(&w.inspect("victim")["vmm_pid"]);
    let info = w.wait_stopped("victim", Duration::from_secs(10));
    assert_eq!(info["state"], "Crashed");
    assert_eq!(info["exit_reason"], "the VMM was killed by signal 9");
    w.ok(&["start", "victim"]);
    w.ok(&["rm", "-f", "victim"]);
    w.assert_no_vm_left();
}

#[test]
fn twenty_execs_into_one_running_sandbox() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("busy", &[]);
    for i in 0..20 {
        let n = i.to_string();
        assert_eq!(
            w.ok(&["exec", "busy", "-e", &format!("N={n}"), "--", "sh", "-c", "echo $N"]),
            format!("{n}\n")
        );
    }
    let log = w.ok(&["logs", "busy"]);
    assert_eq!(log.matches(" exit 0 after ").count(), 20, "{log}");
    w.ok(&["rm", "-f", "busy"]);
    w.assert_no_vm_left();
}

#[test]
fn eight_parallel_creates_and_removes() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    std::thread::scope(|s| {
        for i in 0..8 {
            let w = &w;
            s.spawn(move || {
                let name = format!("par-{i}");
                w.create(&name, &["--memory", "256"]);
                assert_eq!(w.ok(&["exec", &name, "--", "echo", &name]), format!("{name}\n"));
                w.ok(&["rm", "-f", &name]);
            });
        }
    });
    assert!(w.ok(&["ls", "-a"]).is_empty());
    w.assert_no_vm_left();
}

#[test]
fn metrics_report_guest_and_host_use() {
    // An image root: its disk figures are its own upper's, not a shared host filesystem's.
    let Some((w, image)) = msb_e2e::image_world("busybox") else {
        return;
    };
    w.ok(&[
        "create",
        &image,
        "-n",
        "meter",
        "--memory",
        "384",
        "--upper-size",
        "256M",
    ]);
    let metrics = || -> Value { serde_json::from_str(&w.ok(&["metrics", "meter", "--json"])).unwrap() };
    let m = metrics();
    assert_eq!(m["memory_limit_bytes"], 384u64 << 20);
    assert!(m["memory_used_bytes"].as_u64().unwrap() > 1 << 20, "{m}");
    assert!(m["host_rss_bytes"].as_u64().unwrap() > 10 << 20, "{m}");
    assert!(m["disk_total_bytes"].as_u64().unwrap() > 0, "{m}");
    let idle_cpu = m["cpu_percent"].as_f64().unwrap();
    // No network device yet: nothing can have crossed one.
    assert_eq!(
        (m["net_rx_bytes"].as_u64(), m["net_tx_bytes"].as_u64()),
        (Some(0), Some(0)),
        "{m}"
    );
    // A busy guest shows CPU use; 32 MiB written show as disk use.
    let mut busy = w
        .msb()
        .args(["exec", "meter", "--", "sh", "-c", "while :; do :; done"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let hot = metrics();
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(
        hot["cpu_percent"].as_f64().unwrap() > 50.0,
        "busy guest: {hot}, idle: {idle_cpu}"
    );
    assert!(hot["host_cpu_percent"].as_f64().unwrap() > 20.0, "{hot}");
    let used_before = metrics()["disk_used_bytes"].as_u64().unwrap();
    w.ok(&[
        "exec",
        "meter",
        "--",
        "sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=1M count=32 && sync",
    ]);
    let used_after = metrics()["disk_used_bytes"].as_u64().unwrap();
    assert!(used_after >= used_before + (30 << 20), "{used_before} -> {used_after}");
    w.ok(&["exec", "meter", "--", "rm", "/fill"]);
    assert!(w.ok(&["metrics", "meter"]).contains("memory"));
    w.ok(&["rm", "-f", "meter"]);
    w.fails(&["metrics", "meter"], 125, "not found");
}
