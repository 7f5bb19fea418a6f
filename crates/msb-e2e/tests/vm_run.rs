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
    use std::io::{BufRead, BufReader};
    use std::time::Instant;
    let sb = Sandbox::new();
    // Each guest says it started, works 3 s, and ends: the runs overlap only if all three
    // had started before any ended.
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let mut child = sb
                .run(&[], &["sh", "-c", &format!("echo started; sleep 3; echo vm{i}")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let stdout = child.stdout.take().expect("stdout");
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let first = lines.next().expect("a line").expect("utf-8");
                let started = Instant::now();
                let rest: Vec<String> = lines.map(|l| l.expect("utf-8")).collect();
                let status = child.wait().expect("wait");
                (first, started, rest, Instant::now(), status)
            })
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|r| r.join().expect("runner")).collect();
    for (i, (first, _, rest, _, status)) in results.iter().enumerate() {
        assert!(status.success());
        assert_eq!((first.as_str(), rest.as_slice()), ("started", &[format!("vm{i}")][..]));
    }
    let last_start = results.iter().map(|r| r.1).max().unwrap();
    let first_end = results.iter().map(|r| r.3).min().unwrap();
    assert!(last_start < first_end, "the three VMs did not run at the same time");
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
fn a_fast_producer_and_a_slow_reader_block_the_producer_and_bound_memory() {
    if !vm_available() {
        return;
    }
    use std::io::{BufRead, BufReader, Read};
    const BLOCK: usize = 64 << 10;
    const BLOCKS: usize = 768; // 48 MiB
    let sb = Sandbox::new();
    let mut child = sb
        .run(
            &["--name", "flow"],
            &["dd", "if=/dev/zero", &format!("bs={BLOCK}"), &format!("count={BLOCKS}")],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn msb");
    // dd reports on stderr (its own stream and credit) how much it has written.
    let stderr = child.stderr.take().expect("stderr");
    let (report_tx, reports) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_suffix(" records out").and_then(|r| r.split('+').next()) {
                let _ = report_tx.send(n.parse::<usize>().unwrap_or(usize::MAX));
            }
        }
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 1 << 20];
    stdout.read_exact(&mut buf).expect("first MiB");
    let supervisor = sb.inspect("flow")["supervisor_pid"].as_u64().expect("supervisor pid") as u32;
    let (cli_before, sup_before) = (rss_kib(child.id()), rss_kib(supervisor));
    // Stop reading: without flow control the guest's output would pile up somewhere.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (cli_stalled, sup_stalled) = (rss_kib(child.id()), rss_kib(supervisor));
    let signal = sb.output(&["exec", "flow", "--", "sh", "-c", "kill -USR1 $(pidof dd)"]);
    assert!(signal.status.success(), "{}", String::from_utf8_lossy(&signal.stderr));
    // msb passes dd's report on once its blocked stdout moves again: read on, then look.
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("rest");
    let written = reports
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("dd's report")
        * BLOCK;
    // What the guest got ahead by: the pipes and the credit windows on the way, no more.
    assert!(
        written < buf.len() + (4 << 20),
        "the guest wrote {written} bytes while the host had read {}",
        buf.len()
    );
    assert!(child.wait().expect("wait").success());
    assert_eq!(buf.len() + rest.len(), BLOCK * BLOCKS);
    assert!(rest.iter().all(|b| *b == 0));
    assert!(
        cli_stalled < cli_before + 16 * 1024,
        "msb grew from {cli_before} KiB to {cli_stalled} KiB while its reader stalled"
    );
    assert!(
        sup_stalled < sup_before + 16 * 1024,
        "the supervisor grew from {sup_before} KiB to {sup_stalled} KiB while the reader stalled"
    );
    assert!(sb.output(&["rm", "-f", "flow"]).status.success());
    sb.assert_no_vm_left();
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
