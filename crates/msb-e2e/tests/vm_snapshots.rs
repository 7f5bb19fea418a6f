//! Sandbox snapshots: a running sandbox saved whole, and new sandboxes that resume it
//! where it stood (its processes, memory and files), each with its own name, clock and
//! randomness; what cannot be captured or resumed is refused with a clear error.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{image_world, Sandbox};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A counter that a background shell loop raises five times a second (renamed into
/// place, so a reader never sees it half written).
const COUNTER: &str = "(i=0; while true; do i=$((i+1)); echo $i > /tmp/next; mv /tmp/next /tmp/count; \
                       sleep 0.2; done) > /dev/null 2>&1 & echo started";

/// A web server on guest port 8000 that names the sandbox it started in.
const SERVE: &str = "mkdir -p /www && hostname > /www/index.html && httpd -p 8000 -h /www";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn count(sb: &Sandbox, name: &str) -> u64 {
    sb.ok(&["exec", name, "--", "cat", "/tmp/count"])
        .trim()
        .parse()
        .unwrap()
}

/// Sandbox `name` of `image`, its counter running and a file written.
fn counting(sb: &Sandbox, image: &str, name: &str) {
    assert_eq!(sb.ok(&["create", "-n", name, image]), "");
    sb.ok(&[
        "exec",
        name,
        "--",
        "sh",
        "-c",
        &format!("echo written-before > /root/file; {COUNTER}; {SERVE}"),
    ]);
    std::thread::sleep(Duration::from_millis(600));
}

#[test]
fn a_restored_sandbox_goes_on_where_it_was_saved() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    counting(&sb, &image, "src");
    assert_eq!(sb.ok(&["snapshot", "create", "src", "snap"]), "snap\n");
    let saved_at = count(&sb, "src");
    sb.ok(&["exec", "src", "--", "sh", "-c", "echo written-after > /root/file"]);
    sb.ok(&["kill", "src"]);

    let dir = sb.home().join("snapshots/snap");
    assert_eq!(dir.metadata().unwrap().permissions().mode() & 0o777, 0o700);
    for file in std::fs::read_dir(&dir).unwrap().flatten() {
        let mode = file.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.path().display());
    }
    let info: serde_json::Value = serde_json::from_str(&sb.ok(&["snapshot", "inspect", "snap"])).unwrap();
    assert_eq!(info["sandbox"], "src");
    assert!(info["memory_bytes"].as_u64().unwrap() > 1 << 20, "{info}");
    assert_eq!(sb.ok(&["snapshot", "ls", "-q"]), "snap\n");

    let mut seen = Vec::new();
    let port = msb_e2e::http::free_port();
    let publish = format!("127.0.0.1:{port}:8000");
    for (name, extra) in [("one", None), ("two", Some(["-p", publish.as_str()]))] {
        let mut create = vec!["create", "-n", name, "--from-snapshot", "snap"];
        create.extend(extra.iter().flatten());
        assert_eq!(sb.ok(&create), "");
        let log = std::fs::read_to_string(sb.home().join(format!("sandboxes/{name}/logs/exec.log"))).unwrap();
        assert!(log.contains("resumed from a snapshot"), "{log}");
        // The loop runs on from where it stood, not from the start, nor from after the save.
        let resumed_at = count(&sb, name);
        assert!(
            resumed_at >= saved_at.saturating_sub(5),
            "{name}: {resumed_at} after {saved_at}"
        );
        std::thread::sleep(Duration::from_millis(800));
        assert!(count(&sb, name) > resumed_at, "{name}'s counter stood still");
        let before = now();
        let out = sb.ok(&[
            "exec",
            name,
            "--",
            "sh",
            "-c",
            "cat /root/file; hostname; cat /etc/hostname; date +%s; head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \\n'",
        ]);
        let after = now();
        let lines: Vec<&str> = out.lines().collect();
        let [file, hostname, etc_hostname, clock, random] = lines[..] else {
            panic!("{out}");
        };
        assert_eq!(etc_hostname, name, "/etc/hostname names the new sandbox");
        assert_eq!(
            file, "written-before",
            "{name} has the files of the moment it was saved"
        );
        assert_eq!(hostname, name);
        let clock: u64 = clock.parse().unwrap();
        assert!(
            before - 1 <= clock && clock <= after + 1,
            "{name}'s clock {clock}, host {before}..{after}"
        );
        seen.push(random.to_string());
    }
    assert_ne!(seen[0], seen[1], "two sandboxes of one snapshot share their randomness");
    // The server saved running serves again through the port the new sandbox publishes:
    // its network came back with it.
    assert!(msb_e2e::http::get_until(port, "/index.html", "src").starts_with("HTTP/1."));
    // Each has its own writable layer.
    sb.ok(&["exec", "one", "--", "sh", "-c", "echo mine > /root/file"]);
    assert_eq!(sb.ok(&["exec", "two", "--", "cat", "/root/file"]), "written-before\n");
    // Moved as one file and read back under another name, it resumes the same.
    let file = sb.home().join("snap.tar.zst");
    sb.ok(&["snapshot", "save", "snap", file.to_str().unwrap()]);
    assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    sb.ok(&["snapshot", "rm", "snap"]);
    assert_eq!(
        sb.ok(&["snapshot", "load", file.to_str().unwrap(), "--name", "moved"]),
        "moved\n"
    );
    assert_eq!(sb.ok(&["create", "-n", "three", "--from-snapshot", "moved"]), "");
    assert_eq!(sb.ok(&["exec", "three", "--", "cat", "/root/file"]), "written-before\n");
    sb.ok(&["rm", "-f", "three"]);
    // A restart boots the sandbox's disk as it now is; the saved guest was used once.
    sb.ok(&["stop", "one"]);
    sb.ok(&["start", "one"]);
    assert_eq!(sb.ok(&["exec", "one", "--", "cat", "/root/file"]), "mine\n");
    assert!(!sb.home().join("sandboxes/one/resume.vm").exists());
    sb.ok(&["snapshot", "rm", "moved"]);
    assert_eq!(sb.ok(&["snapshot", "ls", "-q"]), "");
    for name in ["one", "two"] {
        sb.ok(&["rm", "-f", name]);
    }
    sb.assert_no_vm_left();
}

#[test]
fn what_cannot_be_captured_or_resumed_is_refused_clearly() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    // A bind root: the host directory can change underneath a snapshot.
    sb.create("bound", &[]);
    sb.fails(
        &["snapshot", "create", "bound", "s"],
        125,
        "only image roots can be saved",
    );
    sb.ok(&["rm", "-f", "bound"]);
    counting(&sb, &image, "src");
    sb.fails(&["snapshot", "create", "src", "../x"], 125, "snapshot name");
    sb.ok(&["snapshot", "create", "src", "s"]);
    sb.fails(&["snapshot", "create", "src", "s"], 125, "already exists");
    sb.fails(&["snapshot", "create", "nobody", "t"], 125, "not found");
    sb.ok(&["stop", "src"]);
    sb.fails(&["snapshot", "create", "src", "t"], 125, "start it first");
    sb.fails(&["create", "-n", "x", "--from-snapshot", "missing"], 125, "not found");
    // Settings of its own a sandbox made from a snapshot cannot take: refused, not dropped.
    for extra in [&["--memory", "1G"][..], &["--", "sh"][..], &["-e", "A=1"][..]] {
        let mut create = vec!["create", "-n", "x", "--from-snapshot", "s"];
        create.extend(extra);
        sb.fails(&create, 125, "cannot be given with --from-snapshot");
    }
    let junk = sb.home().join("junk.tar.zst");
    std::fs::write(&junk, b"not an archive").unwrap();
    sb.fails(
        &["snapshot", "load", junk.to_str().unwrap()],
        125,
        "not a snapshot archive",
    );
    assert_eq!(sb.ok(&["snapshot", "ls", "-q"]), "s\n");
    // A corrupt saved guest: the create fails and says so; nothing of the sandbox is left.
    let memory = sb.home().join("snapshots/s/memory.vm");
    let mut bytes = std::fs::read(&memory).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&memory, &bytes).unwrap();
    sb.fails(
        &["create", "-n", "broken", "--from-snapshot", "s"],
        125,
        "could not be resumed",
    );
    assert!(!sb.home().join("sandboxes/broken").exists());
    sb.fails(&["inspect", "broken"], 125, "not found");
    sb.ok(&["rm", "-f", "src"]);
    // The image is the last name of what snapshot 's' resumes: it stays while 's' does.
    sb.fails(&["image", "rm", &image], 1, "snapshot 's'");
    sb.ok(&["snapshot", "rm", "s"]);
    sb.ok(&["image", "rm", &image]);
    sb.assert_no_vm_left();
}

#[test]
fn a_sandbox_saved_mid_command_and_mid_exec_resumes_without_running_them_again() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    // Its command appends a line a tenth of a second; an exec streams output meanwhile.
    let command = "while true; do echo tick >> /root/ticks; sleep 0.1; done";
    assert_eq!(sb.ok(&["create", "-n", "src", &image, "--", "sh", "-c", command]), "");
    let mut streaming = sb
        .msb()
        .args([
            "exec",
            "src",
            "--",
            "sh",
            "-c",
            "while true; do echo x; sleep 0.01; done",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    sb.ok(&["snapshot", "create", "src", "mid"]);
    let _ = streaming.kill();
    let _ = streaming.wait();
    sb.ok(&["kill", "src"]);
    assert_eq!(sb.ok(&["create", "-n", "copy", "--from-snapshot", "mid"]), "");
    // The old exec's output, still flowing in the guest, reaches no new session.
    assert_eq!(sb.ok(&["exec", "copy", "--", "echo", "fresh"]), "fresh\n");
    let ticks = |sb: &Sandbox| sb.ok(&["exec", "copy", "--", "wc", "-l", "/root/ticks"]);
    let before: u64 = ticks(&sb).split_whitespace().next().unwrap().parse().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let after: u64 = ticks(&sb).split_whitespace().next().unwrap().parse().unwrap();
    assert!(after > before, "the saved command stood still: {before} → {after}");
    // One loop, the saved one: not a second started by the new sandbox.
    let loops = sb.ok(&["exec", "copy", "--", "sh", "-c", "ps | grep -c '[e]cho tick'"]);
    assert_eq!(loops.trim(), "1", "{loops}");
    assert_eq!(sb.inspect("copy")["state"], "Running");
    sb.ok(&["rm", "-f", "copy"]);
    sb.ok(&["snapshot", "rm", "mid"]);
    sb.assert_no_vm_left();
}

/// Host memory of the process `pid`: (resident, proportional), in KiB.
fn rss_and_pss(pid: u64) -> (u64, u64) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let field = |name: &str| -> u64 {
        let line = rollup.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("Rss:"), field("Pss:"))
}

#[test]
fn four_forks_go_on_independently_and_share_their_memory() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    counting(&sb, &image, "src");
    // 32 MiB of guest memory that every copy keeps and reads, but none changes.
    let blob = "dd if=/dev/urandom of=/dev/shm/blob bs=1M count=32 2>/dev/null; \
                echo 0123456789abcdef0123456789abcdef > /etc/machine-id; md5sum < /dev/shm/blob";
    let sum = sb.ok(&["exec", "src", "--", "sh", "-c", blob]);
    let saved_at = count(&sb, "src");
    assert_eq!(sb.ok(&["fork", "src", "--count", "4"]), "src-1\nsrc-2\nsrc-3\nsrc-4\n");
    let copies = ["src-1", "src-2", "src-3", "src-4"];
    let mut seen = Vec::new();
    for name in copies {
        assert!(count(&sb, name) >= saved_at, "{name} went back in time");
        let out = sb.ok(&[
            "exec",
            name,
            "--",
            "sh",
            "-c",
            "md5sum < /dev/shm/blob; cat /root/file; hostname; cat /etc/machine-id; \
             head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        let [blob_sum, file, hostname, machine_id, random] = lines[..] else {
            panic!("{out}");
        };
        assert!(
            machine_id.len() == 32 && machine_id != "0123456789abcdef0123456789abcdef",
            "{name}'s machine id {machine_id}"
        );
        seen.push(machine_id.to_string());
        assert_eq!(
            format!("{blob_sum}\n"),
            sum,
            "{name} lost the memory it was forked with"
        );
        assert_eq!(file, "written-before");
        assert_eq!(hostname, name);
        seen.push(random.to_string());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 8, "copies share their randomness or machine ids");
    // Each runs on by itself, and so does the sandbox they were forked from.
    std::thread::sleep(Duration::from_millis(600));
    for name in copies.iter().chain(&["src"]) {
        assert!(count(&sb, name) > saved_at, "{name}'s counter stood still");
    }
    sb.ok(&["exec", "src-1", "--", "sh", "-c", "echo mine > /root/file"]);
    assert_eq!(sb.ok(&["exec", "src-2", "--", "cat", "/root/file"]), "written-before\n");
    assert_eq!(sb.ok(&["exec", "src", "--", "cat", "/root/file"]), "written-before\n");
    // What they never wrote is one copy in host memory: all four together take well
    // under four times what one maps.
    let pids: Vec<u64> = copies
        .iter()
        .map(|name| sb.inspect(name)["vmm_pid"].as_u64().unwrap())
        .collect();
    let (rss, _) = rss_and_pss(pids[0]);
    let pss: u64 = pids.iter().map(|pid| rss_and_pss(*pid).1).sum();
    assert!(
        pss * 10 < rss * 4 * 7,
        "4 copies' PSS {pss} KiB against one's RSS {rss} KiB"
    );
    // A name taken, or a sandbox not running, is refused before anything is made.
    sb.fails(
        &["fork", "src", "--count", "1", "--prefix", "src-"],
        125,
        "already exists",
    );
    sb.ok(&["stop", "src-4"]);
    sb.fails(&["fork", "src-4", "--prefix", "again-"], 125, "start it first");
    assert_eq!(sb.ok(&["ls", "-a", "-q"]).lines().count(), 5);
    // A stopped copy starts again from its disk, as a snapshot's sandbox does.
    sb.ok(&["start", "src-4"]);
    assert_eq!(sb.ok(&["exec", "src-4", "--", "cat", "/root/file"]), "written-before\n");
    for name in copies.iter().chain(&["src"]) {
        sb.ok(&["rm", "-f", name]);
    }
    sb.assert_no_vm_left();
}

#[test]
fn a_snapshot_holds_its_sized_volumes_and_tmpfs_as_they_were() {
    let Some((sb, image)) = image_world("busybox") else {
        return;
    };
    assert_eq!(sb.ok(&["volume", "create", "data", "--size", "16M"]), "data\n");
    let args = ["create", "-n", "src", &image, "-v", "data:/data", "--tmpfs", "/scratch"];
    assert_eq!(sb.ok(&args), "");
    sb.ok(&[
        "exec",
        "src",
        "--",
        "sh",
        "-c",
        "echo before > /data/f; echo kept > /scratch/f",
    ]);
    sb.ok(&["snapshot", "create", "src", "snap"]);
    let info: serde_json::Value = serde_json::from_str(&sb.ok(&["snapshot", "inspect", "snap"])).unwrap();
    assert_eq!(info["disks"][0]["file"], "mount-0.raw", "{info}");
    sb.ok(&["exec", "src", "--", "sh", "-c", "echo after > /data/f; sync"]);
    sb.ok(&["rm", "-f", "src"]);
    // The sandbox made from it mounts its own copy of the volume, as it was at the save.
    assert_eq!(sb.ok(&["create", "-n", "copy", "--from-snapshot", "snap"]), "");
    assert_eq!(
        sb.ok(&["exec", "copy", "--", "cat", "/data/f", "/scratch/f"]),
        "before\nkept\n"
    );
    sb.ok(&["exec", "copy", "--", "sh", "-c", "echo copy > /data/f; sync"]);
    // The volume went on without it, and another sandbox may mount it meanwhile.
    assert_eq!(sb.ok(&["create", "-n", "reader", &image, "-v", "data:/data"]), "");
    assert_eq!(sb.ok(&["exec", "reader", "--", "cat", "/data/f"]), "after\n");
    // Its copy travels with the snapshot's archive.
    let file = sb.home().join("snap.tar.zst");
    sb.ok(&["snapshot", "save", "snap", file.to_str().unwrap()]);
    sb.ok(&["snapshot", "rm", "snap"]);
    sb.ok(&["snapshot", "load", file.to_str().unwrap()]);
    assert_eq!(sb.ok(&["create", "-n", "again", "--from-snapshot", "snap"]), "");
    assert_eq!(sb.ok(&["exec", "again", "--", "cat", "/data/f"]), "before\n");
    // Booted cold, each reads its disk itself (nothing from the saved page cache).
    for (name, on_disk) in [("copy", "copy\n"), ("again", "before\n")] {
        sb.ok(&["stop", name]);
        sb.ok(&["start", name]);
        assert_eq!(sb.ok(&["exec", name, "--", "cat", "/data/f"]), on_disk, "{name}");
    }
    // A directory volume or a read-only disk can change underneath: refused.
    sb.ok(&["volume", "create", "shared"]);
    assert_eq!(sb.ok(&["create", "-n", "dirvol", &image, "-v", "shared:/shared"]), "");
    sb.fails(
        &["snapshot", "create", "dirvol", "no"],
        125,
        "can change underneath a snapshot",
    );
    for name in ["copy", "reader", "again", "dirvol"] {
        sb.ok(&["rm", "-f", name]);
    }
    sb.assert_no_vm_left();
}
