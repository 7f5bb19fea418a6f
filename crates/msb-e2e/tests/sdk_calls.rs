//! SDK calls and CLI verbs no other suite reaches: process signals and kills, timed
//! collection, sandbox kill and wait, `msb kill`, `msb shell`, `--replace`, `--rm`, a named
//! run's reuse, `image prune`, drain, detach, metrics over time, create with pull progress.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use microsandbox::image::PullProgress;
use microsandbox::{ExecEvent, ExecStatus, Microsandbox, MicrosandboxError, SandboxState};
use msb_e2e::{image_world, vm_available, Sandbox as World};
use std::time::{Duration, Instant};

#[tokio::test]
async fn processes_can_be_signalled_killed_and_timed_out() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let msb = Microsandbox::at(w.home());
    let sb = msb.builder("procs").rootfs(&w.rootfs).create().await.unwrap();
    // A signal reaches the process: its trap answers, then it exits with the code it chose.
    let mut proc = sb
        .exec_stream(
            "sh",
            [
                "-c",
                "trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 1; done",
            ],
        )
        .await
        .unwrap();
    loop {
        match proc.recv().await.unwrap() {
            Some(ExecEvent::Stdout(b)) if String::from_utf8_lossy(&b).contains("ready") => break,
            Some(_) => {}
            None => panic!("ended before it was ready"),
        }
    }
    assert!(proc.pid().is_some());
    proc.signal(libc::SIGUSR1).await.unwrap();
    let out = proc.collect().await.unwrap();
    assert_eq!((out.status.code(), out.stdout_text()), (7, "got-usr1\n".to_string()));
    // kill() is SIGKILL.
    let proc = sb.exec_stream("sleep", ["600"]).await.unwrap();
    proc.kill().await.unwrap();
    assert_eq!(proc.wait().await.unwrap().code(), 128 + libc::SIGKILL);
    // collect_within gives up, kills the process and says so.
    let started = Instant::now();
    let proc = sb.exec_stream("sleep", ["600"]).await.unwrap();
    match proc.collect_within(Duration::from_secs(1)).await {
        Err(MicrosandboxError::ExecTimeout(d)) => assert_eq!(d, Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut left = String::new();
    for _ in 0..50 {
        left = sb.shell("pidof sleep || echo none").await.unwrap().stdout_text();
        if left == "none\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, "none\n", "the timed-out process was not killed");
    assert!(matches!(
        sb.exec("true", Vec::<String>::new()).await.unwrap().status,
        ExecStatus::Exited(0)
    ));
    sb.stop().await.unwrap();
    w.assert_no_vm_left();
}

#[tokio::test]
async fn kill_and_wait_through_the_sdk() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let msb = Microsandbox::at(w.home());
    let sb = msb
        .builder("waited")
        .rootfs(&w.rootfs)
        .max_duration(Duration::from_secs(3))
        .create_detached()
        .await
        .unwrap();
    let started = Instant::now();
    let info = sb.wait().await.unwrap().expect("a named sandbox is kept");
    assert!(started.elapsed() >= Duration::from_secs(2), "wait returned early");
    assert_eq!(
        (info.state, info.exit_reason.as_deref()),
        (SandboxState::Stopped, Some("max duration reached"))
    );
    let sb = msb.start_detached("waited").await.unwrap();
    let watcher = sb.clone();
    let waiting = tokio::spawn(async move { watcher.wait().await });
    sb.kill().await.unwrap();
    let info = waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(info.state, SandboxState::Stopped);
    assert_eq!(info.exit_reason.as_deref(), Some("killed on request"));
    msb.remove("waited", false).await.unwrap();
    w.assert_no_vm_left();
}

#[test]
fn kill_shell_replace_rm_and_reuse_on_the_command_line() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let root = w.rootfs.to_str().unwrap().to_string();
    // msb kill
    w.create("k", &[]);
    assert_eq!(w.ok(&["kill", "k"]), "k\n");
    let info = w.inspect("k");
    assert_eq!(
        (info["state"].as_str(), info["exit_reason"].as_str()),
        (Some("Stopped"), Some("killed on request"))
    );
    // msb shell, stdin a script
    w.ok(&["start", "k"]);
    let mut shell = w
        .msb()
        .args(["shell", "k"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo from-shell; exit 3\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned()),
        (Some(3), "from-shell\n".into())
    );
    // --replace makes a new sandbox of the same name; without it the name is taken.
    w.ok(&["exec", "k", "--", "sh", "-c", "echo old > /mark"]);
    w.fails(&["create", "-n", "k", "--rootfs", &root], 125, "already exists");
    w.ok(&[
        "create",
        "-n",
        "k",
        "--rootfs",
        &root,
        "--replace",
        "--hostname",
        "replaced",
    ]);
    assert_eq!(w.ok(&["exec", "k", "--", "hostname"]), "replaced\n");
    // run --name reuses a stopped sandbox (its settings stay), --rm removes it after.
    w.ok(&["stop", "k"]);
    assert_eq!(
        w.ok(&["run", "--name", "k", "--rootfs", &root, "--", "hostname"]),
        "replaced\n"
    );
    assert_eq!(
        w.inspect("k")["state"],
        "Stopped",
        "a reused stopped sandbox is stopped again"
    );
    assert_eq!(
        w.ok(&["run", "--name", "gone", "--rm", "--rootfs", &root, "--", "echo", "x"]),
        "x\n"
    );
    w.fails(&["inspect", "gone"], 125, "not found");
    w.ok(&["rm", "k"]);
    w.assert_no_vm_left();
}

#[test]
fn image_prune_drops_only_what_nothing_uses() {
    let Some((w, busybox)) = image_world("busybox") else {
        return;
    };
    // `layers` is busybox plus 23 layers of its own.
    let deep = busybox.replace("msb-test/busybox", "msb-test/layers");
    w.ok(&["pull", "-q", &busybox]);
    w.ok(&["create", &deep, "-n", "user"]);
    w.ok(&["stop", "user"]);
    let layers = || std::fs::read_dir(w.home().join("cache/layers")).unwrap().count();
    assert_eq!(layers(), 24);
    // Untagged but pinned by a sandbox: prune keeps every layer, and the sandbox boots.
    w.ok(&["image", "rm", "--force", &deep]);
    w.ok(&["image", "prune"]);
    assert_eq!(layers(), 24, "prune removed layers a sandbox boots from");
    w.ok(&["start", "user"]);
    assert_eq!(w.ok(&["exec", "user", "--", "echo", "ok"]), "ok\n");
    // Once the sandbox is gone, its 23 own layers go; busybox's, still tagged, stays.
    w.ok(&["rm", "-f", "user"]);
    w.ok(&["image", "prune"]);
    assert_eq!(layers(), 1, "prune kept unused layers or removed a used one");
    assert_eq!(w.ok(&["run", &busybox, "--", "echo", "still"]), "still\n");
    w.assert_no_vm_left();
}

#[tokio::test]
async fn drain_detach_and_metrics_over_time() {
    use futures::StreamExt;
    // An image root, so the guest has a disk whose counters can move.
    let Some((w, busybox)) = image_world("busybox") else {
        return;
    };
    let msb = Microsandbox::at(w.home());
    // A detached handle lets go: dropping it no longer stops the sandbox.
    // The image is pulled on create, its progress reported on the way.
    let (mut progress, created) = msb.builder("kept").image(busybox.as_str()).create_with_pull_progress();
    let sb = created.await.unwrap().unwrap();
    let mut events = Vec::new();
    while let Ok(event) = progress.try_recv() {
        events.push(event);
    }
    assert!(
        matches!(events.first(), Some(PullProgress::Resolving { .. })),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e, PullProgress::Layer(_))), "{events:?}");
    assert!(
        matches!(events.last(), Some(PullProgress::Complete { cached: false, .. })),
        "{events:?}"
    );
    sb.detach().await.unwrap();
    assert_eq!(msb.get("kept").await.unwrap().state, SandboxState::Running);
    let sb = msb.connect("kept").await.unwrap();
    // Disk counters move when the guest writes through to its disk.
    let before = sb.metrics().await.unwrap();
    sb.shell("dd if=/dev/zero of=/root/blob bs=1M count=4 2>/dev/null; sync")
        .await
        .unwrap();
    let after = sb.metrics().await.unwrap();
    assert!(
        after.disk_write_bytes >= before.disk_write_bytes + 4 * 1024 * 1024,
        "{before:?} -> {after:?}"
    );
    // All running sandboxes measured at once; a stream of measurements of one.
    let all = msb.all_metrics().await.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["kept"]);
    let samples: Vec<_> = sb.metrics_stream(Duration::from_millis(300)).take(2).collect().await;
    assert_eq!(samples.len(), 2);
    assert!(samples[1].as_ref().unwrap().uptime > samples[0].as_ref().unwrap().uptime);
    // Drain: the running process finishes, new ones are refused, then the sandbox stops.
    let slow = sb.shell_stream("sleep 2; echo finished").await.unwrap();
    let drainer = tokio::spawn(msb.connect("kept").await.unwrap().drain());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = sb.exec("true", Vec::<String>::new()).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("draining")),
        "{refused:?}"
    );
    assert_eq!(slow.collect().await.unwrap().stdout_text(), "finished\n");
    let ended = drainer.await.unwrap().unwrap().expect("a named sandbox is kept");
    assert_eq!(ended.state, SandboxState::Stopped);
    drop(sb);
    w.assert_no_vm_left();
}
