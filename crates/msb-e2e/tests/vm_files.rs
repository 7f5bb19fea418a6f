//! A running sandbox's files through the agent: every `sandbox.fs()` call and each error
//! kind, acting as another user, streamed round trips, host copies, and `msb fs`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use microsandbox::{FsErrorKind, FsFailure, FsKind, Microsandbox, MicrosandboxError, MicrosandboxResult};
use msb_e2e::{vm_available, Sandbox as World};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

/// The kind of a failed file operation; panics on success or another error.
fn kind<T: std::fmt::Debug>(result: MicrosandboxResult<T>) -> FsErrorKind {
    match result {
        Err(MicrosandboxError::Fs(FsFailure { kind, .. })) => kind,
        other => panic!("expected a file operation failure, got {other:?}"),
    }
}

/// Bytes that are not all alike, so a misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

#[tokio::test]
async fn every_file_operation_does_what_it_says_and_fails_by_kind() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let msb = Microsandbox::at(w.home());
    let sb = msb.builder("files").rootfs(&w.rootfs).create().await.unwrap();
    let fs = sb.fs();

    // Write creates the parents; read gives the bytes back.
    fs.write("/data/sub/a.txt", "hello").await.unwrap();
    assert_eq!(fs.read("/data/sub/a.txt").await.unwrap(), b"hello");
    assert_eq!(fs.read_to_string("/data/sub/a.txt").await.unwrap(), "hello");
    let a = fs.stat("/data/sub/a.txt").await.unwrap();
    assert_eq!(
        (a.name.as_str(), a.kind, a.size, a.mode),
        ("a.txt", FsKind::File, 5, 0o644)
    );
    // A write replaces; what the guest sees is what was written.
    fs.write("/data/sub/a.txt", "hi").await.unwrap();
    assert_eq!(sb.shell("cat /data/sub/a.txt").await.unwrap().stdout_text(), "hi");

    // Directories.
    fs.mkdir("/data/x/y/z").await.unwrap();
    fs.mkdir("/data/x/y/z").await.unwrap();
    let names: Vec<String> = fs.list("/data").await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["sub", "x"]);
    assert_eq!(fs.stat("/data/x").await.unwrap().kind, FsKind::Dir);

    // Rename, copy (a tree, modes kept), chmod, symlinks.
    fs.rename("/data/sub/a.txt", "/data/sub/b.txt").await.unwrap();
    assert!(!fs.exists("/data/sub/a.txt").await.unwrap());
    fs.chmod("/data/sub/b.txt", 0o600).await.unwrap();
    fs.copy("/data", "/copy").await.unwrap();
    let copied = fs.stat("/copy/sub/b.txt").await.unwrap();
    assert_eq!((copied.size, copied.mode), (2, 0o600));
    assert_eq!(fs.stat("/copy/x/y/z").await.unwrap().kind, FsKind::Dir);
    fs.symlink("/data/sub/b.txt", "/link").await.unwrap();
    assert_eq!(fs.read_link("/link").await.unwrap(), "/data/sub/b.txt");
    assert_eq!(fs.stat("/link").await.unwrap().kind, FsKind::Symlink);
    assert_eq!(fs.read("/link").await.unwrap(), b"hi");

    // Removal: a file, then a tree; a symlink to a directory is removed, not followed.
    fs.symlink("/data", "/copy/escape").await.unwrap();
    fs.remove_dir("/copy").await.unwrap();
    assert!(!fs.exists("/copy").await.unwrap());
    assert!(
        fs.exists("/data/sub/b.txt").await.unwrap(),
        "remove_dir followed a symlink"
    );
    fs.remove("/link").await.unwrap();
    assert!(fs.exists("/data/sub/b.txt").await.unwrap());

    // Each error kind, as a program would match it.
    assert_eq!(kind(fs.read("/nope").await), FsErrorKind::NotFound);
    assert_eq!(kind(fs.read("/data").await), FsErrorKind::IsADirectory);
    assert_eq!(kind(fs.remove("/data").await), FsErrorKind::IsADirectory);
    assert_eq!(kind(fs.remove_dir("/data/sub/b.txt").await), FsErrorKind::NotADirectory);
    assert_eq!(kind(fs.list("/data/sub/b.txt").await), FsErrorKind::NotADirectory);
    assert_eq!(kind(fs.write("relative/path", "x").await), FsErrorKind::InvalidPath);
    assert_eq!(kind(fs.write("/a\0b", "x").await), FsErrorKind::InvalidPath);
    assert_eq!(
        kind(fs.symlink("/x", "/data/sub/b.txt").await),
        FsErrorKind::AlreadyExists
    );
    assert_eq!(kind(fs.copy("/data", "/data/sub").await), FsErrorKind::AlreadyExists);
    assert_eq!(kind(fs.rename("/nope", "/elsewhere").await), FsErrorKind::NotFound);
    assert_eq!(kind(sb.fs().mkdir("/proc/nope").await), FsErrorKind::NotFound);
    // `exists` is false only for "not found": a file where a directory should be is an error.
    assert_eq!(kind(fs.exists("/data/sub/b.txt/x").await), FsErrorKind::NotADirectory);
    // A read-only filesystem says so.
    sb.shell("mkdir -p /ro && mount -t tmpfs -o ro tmpfs /ro")
        .await
        .unwrap();
    assert_eq!(kind(fs.write("/ro/f", "x").await), FsErrorKind::ReadOnly);
    // A full one too, and the session ends cleanly mid-stream.
    sb.shell("mkdir -p /small && mount -t tmpfs -o size=1m tmpfs /small")
        .await
        .unwrap();
    assert_eq!(
        kind(fs.write("/small/big", pattern(4 << 20)).await),
        FsErrorKind::NoSpace
    );

    // As another user: refused where it may not write, the owner of what it writes.
    let alice = sb.fs().as_user("alice");
    assert_eq!(kind(alice.write("/root/x", "no").await), FsErrorKind::PermissionDenied);
    alice.write("/tmp/alices", "mine").await.unwrap();
    let owned = fs.stat("/tmp/alices").await.unwrap();
    assert_eq!((owned.uid, owned.gid), (1000, 1000));
    assert_eq!(
        kind(alice.read("/root/.profile-nope").await),
        FsErrorKind::PermissionDenied
    );
    assert_eq!(
        kind(sb.fs().as_user("mallory").stat("/").await),
        FsErrorKind::InvalidPath
    );
    // Root's operations after alice's are root's again.
    fs.write("/root/x", "root").await.unwrap();

    // A streamed round trip larger than any window, byte for byte.
    let big = pattern(24 << 20);
    fs.write("/tmp/big", &big).await.unwrap();
    assert_eq!(fs.read("/tmp/big").await.unwrap(), big);

    // Host copies keep the bytes and the mode.
    let host = w.home().join("tool.sh");
    std::fs::write(&host, b"#!/bin/sh\necho tool\n").unwrap();
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o750)).unwrap();
    fs.copy_from_host(&host, "/usr/local/bin/tool").await.unwrap();
    assert_eq!(fs.stat("/usr/local/bin/tool").await.unwrap().mode, 0o750);
    assert_eq!(
        sb.exec("tool", Vec::<String>::new()).await.unwrap().stdout_text(),
        "tool\n"
    );
    let back = w.home().join("back.bin");
    fs.copy_to_host("/tmp/big", &back).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), big);
    // The guest's own view of the file agrees.
    let guest_sum = sb.shell("md5sum /tmp/big | cut -d' ' -f1").await.unwrap().stdout_text();
    let host_sum = std::process::Command::new("md5sum").arg(&back).output().unwrap();
    let host_sum = String::from_utf8(host_sum.stdout).unwrap();
    assert_eq!(guest_sum.trim(), host_sum.split(' ').next().unwrap());

    sb.stop().await.unwrap();
    // A stopped sandbox's files are not reachable through the agent: said plainly.
    let stopped = msb.connect("files").await;
    assert!(
        matches!(stopped, Err(MicrosandboxError::SandboxNotRunning { .. })),
        "{stopped:?}"
    );
    msb.remove("files", false).await.unwrap();
    w.assert_no_vm_left();
}

#[test]
fn msb_fs_verbs_work_on_a_running_sandbox() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("verbs", &[]);
    let mut write = w
        .msb()
        .args(["fs", "write", "verbs", "/srv/notes/today.txt", "--mode", "600"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    write.stdin.take().unwrap().write_all(b"line one\nline two\n").unwrap();
    assert!(write.wait().unwrap().success());
    assert_eq!(
        w.ok(&["fs", "cat", "verbs", "/srv/notes/today.txt"]),
        "line one\nline two\n"
    );
    let stat: serde_json::Value =
        serde_json::from_str(&w.ok(&["fs", "stat", "verbs", "/srv/notes/today.txt"])).unwrap();
    assert_eq!(
        (stat["kind"].as_str(), stat["mode"].as_str(), stat["size"].as_u64()),
        (Some("file"), Some("0600"), Some(18))
    );
    w.ok(&["fs", "mkdir", "verbs", "/srv/notes/old"]);
    w.ok(&[
        "fs",
        "mv",
        "verbs",
        "/srv/notes/today.txt",
        "/srv/notes/old/yesterday.txt",
    ]);
    w.ok(&["fs", "chmod", "verbs", "640", "/srv/notes/old/yesterday.txt"]);
    let listing: serde_json::Value =
        serde_json::from_str(&w.ok(&["fs", "ls", "verbs", "/srv/notes/old", "--json"])).unwrap();
    assert_eq!(listing[0]["name"], "yesterday.txt");
    assert_eq!(listing[0]["mode"], "0640");
    let table = w.ok(&["fs", "ls", "verbs", "/srv/notes"]);
    assert!(table.starts_with("MODE") && table.contains("old"), "{table}");
    w.fails(&["fs", "rm", "verbs", "/srv/notes"], 125, "is a directory");
    w.ok(&["fs", "rm", "-r", "verbs", "/srv/notes"]);
    w.fails(
        &["fs", "cat", "verbs", "/srv/notes/old/yesterday.txt"],
        125,
        "No such file",
    );
    w.fails(&["fs", "cat", "verbs", "relative"], 125, "must be absolute");
    // Each operation is in the exec log, with whom it acted as and how it ended.
    let log = w.ok(&["logs", "verbs", "--source", "exec"]);
    assert!(log.contains(r#"user=root op="write /srv/notes/today.txt""#), "{log}");
    assert!(log.contains("failed: /srv/notes: is a directory"), "{log}");
    w.ok(&["stop", "verbs"]);
    // At rest, a directory root's files are reached on the host, resolved as the guest
    // would: an absolute symlink it left points inside its root, not at the host's.
    let mut write = w
        .msb()
        .args(["fs", "write", "verbs", "/srv/at-rest.txt", "--mode", "600"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    write.stdin.take().unwrap().write_all(b"written at rest\n").unwrap();
    assert!(write.wait().unwrap().success());
    assert_eq!(w.ok(&["fs", "cat", "verbs", "/srv/at-rest.txt"]), "written at rest\n");
    let stat: serde_json::Value = serde_json::from_str(&w.ok(&["fs", "stat", "verbs", "/srv/at-rest.txt"])).unwrap();
    assert_eq!(stat["mode"], "0600");
    std::os::unix::fs::symlink("/etc", w.rootfs.join("srv/etc-link")).unwrap();
    let passwd = w.ok(&["fs", "cat", "verbs", "/srv/etc-link/passwd"]);
    assert_eq!(passwd, std::fs::read_to_string(w.rootfs.join("etc/passwd")).unwrap());
    w.fails(
        &["fs", "ls", "verbs", "/", "-u", "alice"],
        125,
        "needs sandbox 'verbs' running",
    );
    w.fails(&["fs", "watch", "verbs", "/"], 125, "is stopped");
    // `msb cp` too, both ways; the guest's link still leads inside its root.
    let tree = w.home().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/a.txt"), "copied at rest\n").unwrap();
    w.ok(&["cp", tree.to_str().unwrap(), "verbs:/srv/tree"]);
    let out = w.home().join("out");
    w.ok(&["cp", "verbs:/srv/etc-link", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_link(&out).unwrap(), std::path::Path::new("/etc"));
    w.ok(&["cp", "verbs:/srv/tree/.", out.with_extension("d").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out.with_extension("d").join("sub/a.txt")).unwrap(),
        "copied at rest\n"
    );
    w.ok(&["start", "verbs"]);
    assert_eq!(
        w.ok(&["exec", "verbs", "--", "cat", "/srv/tree/sub/a.txt"]),
        "copied at rest\n"
    );
    assert_eq!(
        w.ok(&["exec", "verbs", "--", "cat", "/srv/at-rest.txt"]),
        "written at rest\n"
    );
    w.ok(&["rm", "-f", "verbs"]);
    w.assert_no_vm_left();
}

#[test]
fn a_gibibyte_goes_in_and_out_exactly_in_bounded_memory() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("big", &[]);
    let sent = w.home().join("sent");
    let made = std::process::Command::new("head")
        .args(["-c", "1073741824", "/dev/urandom"])
        .stdout(std::fs::File::create(&sent).unwrap())
        .status()
        .unwrap();
    assert!(made.success());
    // In, to the sandbox's directory root (a host directory: no guest memory needed).
    let into = w
        .msb()
        .args(["fs", "write", "big", "/gib"])
        .stdin(std::fs::File::open(&sent).unwrap())
        .spawn()
        .unwrap();
    let (status, write_peak) = msb_e2e::wait_with_peak_rss(into);
    assert!(status.success());
    // And out again.
    let back = w.home().join("back");
    let out = w
        .msb()
        .args(["fs", "cat", "big", "/gib"])
        .stdout(std::fs::File::create(&back).unwrap())
        .spawn()
        .unwrap();
    let (status, read_peak) = msb_e2e::wait_with_peak_rss(out);
    assert!(status.success());
    let sum = |p: &std::path::Path| {
        let out = std::process::Command::new("sha256sum").arg(p).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(sum(&sent), sum(&back), "the file came back different");
    let supervisor = w.inspect("big")["supervisor_pid"].as_u64().unwrap();
    let supervisor_peak = msb_e2e::peak_rss_kib(supervisor as u32).unwrap();
    eprintln!("1 GiB round trip: msb fs write {write_peak} KiB, msb fs cat {read_peak} KiB, supervisor {supervisor_peak} KiB peak RSS");
    for (who, kib) in [
        ("msb fs write", write_peak),
        ("msb fs cat", read_peak),
        ("the supervisor", supervisor_peak),
    ] {
        assert!(kib < 64 << 10, "{who} peaked at {} MiB", kib >> 10);
    }
    std::fs::remove_file(&sent).unwrap();
    std::fs::remove_file(&back).unwrap();
    w.ok(&["rm", "-f", "big"]);
    w.assert_no_vm_left();
}

#[tokio::test]
async fn watch_reports_creates_writes_removes_renames_and_its_own_end() {
    if !vm_available() {
        return;
    }
    use microsandbox::FsEventKind as K;
    let w = World::new();
    let msb = Microsandbox::at(w.home());
    let sb = msb.builder("watch").rootfs(&w.rootfs).create().await.unwrap();
    let fs = sb.fs();
    fs.mkdir("/w").await.unwrap();
    let mut watcher = fs.watch("/w", true).await.unwrap();
    // A directory moved within the tree is reported under its new path afterwards, and one
    // moved out of it is not reported at all.
    let script = "echo a > /w/f && echo b >> /w/f && mkdir /w/d && echo c > /w/d/g && mv /w/f /w/h && rm /w/h \
         && chmod 700 /w/d && mkdir /w/m && mv /w/m /w/n && echo x > /w/n/x && mv /w/n /outside \
         && echo y > /outside/y && touch /w/done";
    sb.shell(script).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen.contains(&(K::Create, "/w/done".to_string())) {
        let event = tokio::time::timeout_at(deadline, watcher.next())
            .await
            .unwrap_or_else(|_| panic!("no event for /w/done; seen {seen:?}"))
            .unwrap()
            .unwrap();
        seen.push((event.kind, event.path));
    }
    for expected in [
        (K::Create, "/w/f"),
        (K::Write, "/w/f"),
        (K::Create, "/w/d"),
        (K::Create, "/w/d/g"),
        (K::Rename, "/w/f"),
        (K::Create, "/w/h"),
        (K::Remove, "/w/h"),
        (K::Chmod, "/w/d"),
        (K::Rename, "/w/m"),
        (K::Create, "/w/n"),
        (K::Create, "/w/n/x"),
        (K::Rename, "/w/n"),
    ] {
        let expected = (expected.0, expected.1.to_string());
        assert!(seen.contains(&expected), "{expected:?} missing from {seen:?}");
    }
    let stale: Vec<_> = seen
        .iter()
        .filter(|(_, p)| p.starts_with("/w/m/") || p.ends_with("/y"))
        .collect();
    assert!(stale.is_empty(), "events under an old or outside path: {stale:?}");
    // Stopping ends the stream.
    watcher.stop().await.unwrap();
    while watcher.next().await.unwrap().is_some() {}
    // So does removing what is watched, which is reported first.
    let mut watcher = fs.watch("/w/d", false).await.unwrap();
    fs.remove_dir("/w/d").await.unwrap();
    let mut last = None;
    while let Some(event) = watcher.next().await.unwrap() {
        last = Some((event.kind, event.path));
    }
    assert_eq!(last, Some((K::Remove, "/w/d".to_string())));
    // Watching what is not there fails by kind.
    assert_eq!(kind(fs.watch("/nope", false).await), FsErrorKind::NotFound);
    sb.stop().await.unwrap();
    msb.remove("watch", false).await.unwrap();
    w.assert_no_vm_left();
}
