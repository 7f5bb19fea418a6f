//! `msb run --rootfs` against real VMs: exit codes, streams, stdin, options, concurrency.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox};
use std::io::Write;
use std::process::{Output, Stdio};

fn output(sb: &Sandbox, extra: &[&str], cmd: &[&str]) -> Output {
    sb.run(extra, cmd).stdin(Stdio::null()).output().expect("running msb")
}

fn sh(sb: &Sandbox, script: &str) -> Output {
    output(sb, &[], &["sh", "-c", script])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exit_codes_include_signals() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let out = sh(&sb, "echo hello; exit 3");
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");
    assert_eq!(sh(&sb, "kill -9 $$").status.code(), Some(128 + 9));
    assert_eq!(sh(&sb, "kill -TERM $$").status.code(), Some(128 + 15));
    assert_eq!(output(&sb, &[], &["true"]).status.code(), Some(0));
    sb.assert_no_vm_left();
}

#[test]
fn stdout_and_stderr_stay_apart_and_in_order() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let out = sh(
        &sb,
        "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done",
    );
    assert!(out.status.success());
    let expect = |p: &str| (0..300).map(|i| format!("{p}{i}\n")).collect::<String>();
    assert_eq!(text(&out.stdout), expect("out"));
    assert_eq!(text(&out.stderr), expect("err"));
    sb.assert_no_vm_left();
}

#[test]
fn ten_mib_through_stdin_and_back_intact() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut child = sb
        .run(&[], &["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn msb");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread").expect("writing stdin");
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "10 MiB came back altered");
    sb.assert_no_vm_left();
}

#[test]
fn env_workdir_user_and_hostname_apply() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let out = output(
        &sb,
        &[
            "-e",
            "GREETING=hi there",
            "-e",
            "EMPTY=",
            "-w",
            "/home/alice",
            "-u",
            "1000",
            "-H",
            "box1",
        ],
        &[
            "sh",
            "-c",
            "echo \"$GREETING|$EMPTY|$(pwd)|$(id -u):$(id -g)|$HOME|$(hostname)\"",
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "hi there||/home/alice|1000:1000|/home/alice|box1\n",
        "{}",
        text(&out.stderr)
    );
    let out = output(&sb, &["-u", "alice:staff"], &["id", "-g"]);
    assert_eq!(text(&out.stdout), "50\n");
    let out = output(&sb, &["-u", "4242:4343"], &["sh", "-c", "echo $(id -u):$(id -g)"]);
    assert_eq!(text(&out.stdout), "4242:4343\n");
    let out = output(
        &sb,
        &["--cpus", "2", "--memory", "256"],
        &["sh", "-c", "nproc; grep MemTotal /proc/meminfo"],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("2\n"), "{stdout}");
    let kib: u64 = stdout
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .expect("MemTotal");
    assert!((150_000..=262_144).contains(&kib), "MemTotal {kib} kB for 256 MiB");
    sb.assert_no_vm_left();
}

#[test]
fn guest_writes_reach_the_host_directory() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let out = sh(&sb, "echo written > /root/from-guest; ln /root/from-guest /root/hard; ln -s from-guest /root/soft; chmod 640 /root/from-guest");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let host = sb.rootfs.join("root");
    assert_eq!(
        std::fs::read_to_string(host.join("from-guest")).expect("file"),
        "written\n"
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(host.join("from-guest")).expect("meta");
    assert_eq!((meta.nlink(), meta.permissions().mode() & 0o777), (2, 0o640));
    assert_eq!(
        std::fs::read_link(host.join("soft")).expect("link").to_string_lossy(),
        "from-guest"
    );
}

#[test]
fn three_sandboxes_run_at_once() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let children: Vec<_> = (0..3)
        .map(|i| {
            sb.run(&[], &["sh", "-c", &format!("sleep 1; echo vm{i}")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(text(&out.stdout), format!("vm{i}\n"));
    }
    sb.assert_no_vm_left();
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_fast_producer_and_a_slow_reader_keep_msb_memory_bounded() {
    if !vm_available() {
        return;
    }
    use std::io::Read;
    let sb = Sandbox::new();
    let total = 48 * 1024 * 1024;
    let mut child = sb
        .run(&[], &["head", "-c", &total.to_string(), "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn msb");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 1 << 20];
    stdout.read_exact(&mut buf).expect("first MiB");
    let before = rss_kib(child.id());
    // Stop reading: without flow control the guest's output would pile up in msb.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let stalled = rss_kib(child.id());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("rest");
    assert!(child.wait().expect("wait").success());
    assert_eq!(buf.len() + rest.len(), total);
    assert!(rest.iter().all(|b| *b == 0));
    assert!(
        stalled < before + 16 * 1024,
        "msb grew from {before} KiB to {stalled} KiB while its reader stalled"
    );
}

#[test]
fn a_closed_output_pipe_ends_the_run_like_sigpipe() {
    if !vm_available() {
        return;
    }
    use std::io::Read;
    let sb = Sandbox::new();
    let mut child = sb
        .run(&[], &["yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn msb");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 4];
    stdout.read_exact(&mut first).expect("output");
    assert_eq!(&first, b"y\ny\n");
    drop(stdout); // what `| head -2` does once it has its lines
    let status = msb_e2e::wait_or_kill(
        &mut child,
        std::time::Duration::from_secs(20),
        "msb kept running after its reader left",
    );
    assert_eq!(status.code(), Some(128 + libc::SIGPIPE));
    sb.assert_no_vm_left();
}
