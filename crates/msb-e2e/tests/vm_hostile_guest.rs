//! The host treats its guest as hostile: VMs boot `msb-hostile-agent`, which floods output
//! without credit, writes to sessions never opened, reports impossible exit statuses, sends
//! malformed frames and oversized lengths, falls silent, or claims another protocol version.
//! The supervisor and the SDK (through `msb`) stay up with bounded memory; a misdeed a
//! session can absorb fails that session only, one that breaks the channel ends that
//! sandbox with the reason, and a sandbox of the real agent beside it keeps answering.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{hostile_initramfs, output_within, peak_rss_kib, vm_available, wait_or_kill, Sandbox as World};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Long enough for any exec here under TCG on a loaded host; a hang fails instead of
/// stalling the suite.
const PATIENCE: Duration = Duration::from_secs(120);

/// A world whose VMs boot the hostile agent, with one sandbox `name` running; `None` when
/// VM tests cannot run here.
fn hostile(name: &str) -> Option<World> {
    if !vm_available() {
        return None;
    }
    let w = World::with_agent(&hostile_initramfs()?);
    w.create(name, &[]);
    Some(w)
}

/// `msb exec NAME -- ARGS…`, failing the test rather than hanging.
fn exec(w: &World, name: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = w.msb();
    cmd.args(["exec", name, "--"]).args(args);
    cmd.stdin(std::process::Stdio::null());
    output_within(cmd, PATIENCE, &format!("msb exec {name} {args:?}"))
}

/// Asserts that `msb exec NAME -- echo …` still gets its answer.
fn still_answers(w: &World, name: &str) {
    let out = exec(w, name, &["echo", "still", "here"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} no longer answers: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");
}

/// Asserts that the exec failed with a message containing `needle`, without a panic.
fn failed_saying(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the exec succeeded: {stderr}");
    assert_ne!(out.status.code(), Some(101), "msb panicked: {stderr}");
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
}

#[test]
fn output_beyond_the_credit_ends_that_exec_only_and_is_never_buffered() {
    let Some(w) = hostile("flooded") else { return };
    let info = w.inspect("flooded");
    let supervisor = info["supervisor_pid"].as_u64().unwrap() as u32;
    let log = std::path::PathBuf::from(info["paths"]["supervisor_log"].as_str().unwrap());
    let before = peak_rss_kib(supervisor).unwrap();
    // 64 MiB, 32 windows' worth, sent without waiting for credit to a client that takes
    // one byte and then nothing: it grants no credit, so the guest is over its window
    // whatever the speeds.
    let mut cmd = w.msb();
    cmd.args(["exec", "flooded", "--", "flood", "64"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut client = cmd.spawn().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("beyond the credit")
    {
        assert!(Instant::now() < deadline, "the supervisor never cut the flood off");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let out = std::process::Output {
        status: wait_or_kill(&mut client, PATIENCE, "msb exec flooded"),
        stdout: [&first[..], &rest].concat(),
        stderr: std::io::read_to_string(client.stderr.take().unwrap())
            .unwrap()
            .into_bytes(),
    };
    failed_saying(&out, "more output than it was granted credit for");
    // What reached the client is what the window (and the credit for the little it took)
    // allowed, untouched.
    assert!(out.stdout.len() <= 3 << 20, "{} bytes got through", out.stdout.len());
    assert!(out.stdout.iter().all(|&b| b == b'x'), "the output was mangled");
    still_answers(&w, "flooded");
    let grown = peak_rss_kib(supervisor).unwrap().saturating_sub(before);
    assert!(grown < 32 << 10, "the supervisor grew by {grown} KiB during the flood");
}

#[test]
fn frames_for_sessions_never_opened_are_ignored() {
    let Some(w) = hostile("strangers") else { return };
    let out = exec(&w, "strangers", &["strangers"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");
}

#[test]
fn impossible_exit_statuses_are_refused_and_nothing_after_them_is_taken() {
    let Some(w) = hostile("liar") else { return };
    for status in ["code:1000000", "code:-1", "signal:2147483647", "signal:0"] {
        let out = exec(&w, "liar", &["liar", status]);
        failed_saying(&out, "impossible exit status");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n", "{status}");
    }
    still_answers(&w, "liar");
}

#[test]
fn a_broken_channel_ends_only_its_sandbox_and_says_how() {
    let Some(w) = hostile("garbled") else { return };
    w.create("oversized", &[]);
    let calm = World::new();
    calm.create("calm", &[]);
    for (name, misdeed, said) in [
        ("garbled", "garbage", "malformed message"),
        ("oversized", "oversize", "exceeds the 1048576-byte limit"),
    ] {
        let out = exec(&w, name, &[misdeed]);
        assert!(!out.status.success(), "{name}: the exec succeeded");
        assert_ne!(out.status.code(), Some(101), "msb panicked");
        let info = w.wait_stopped(name, PATIENCE);
        assert_eq!(info["state"], "Crashed", "{info}");
        let reason = info["exit_reason"].as_str().unwrap();
        assert!(
            reason.contains("the guest agent broke the protocol") && reason.contains(said),
            "{name}: {reason}"
        );
    }
    w.assert_no_vm_left();
    let out = calm.ok(&["exec", "calm", "--", "echo", "calm"]);
    assert_eq!(out, "calm\n");
    calm.ok(&["rm", "-f", "calm"]);
}

#[test]
fn a_guest_that_falls_silent_is_ended_as_unresponsive() {
    let Some(w) = hostile("mute") else { return };
    let out = exec(&w, "mute", &["mute"]);
    assert!(!out.status.success(), "the exec of a silent guest succeeded");
    assert_ne!(out.status.code(), Some(101), "msb panicked");
    let info = w.wait_stopped("mute", PATIENCE);
    assert_eq!(info["state"], "Crashed", "{info}");
    assert!(
        info["exit_reason"].as_str().unwrap().contains("stopped answering"),
        "{info}"
    );
    w.assert_no_vm_left();
}

#[test]
fn a_handshake_of_another_version_or_of_garbage_is_refused_at_create() {
    if !vm_available() {
        return;
    }
    let Some(initramfs) = hostile_initramfs() else { return };
    let w = World::with_agent(&initramfs);
    let root = w.rootfs.to_string_lossy().into_owned();
    for (name, said) in [
        ("hostile-version", "speaks protocol v1"),
        ("hostile-handshake", "malformed message"),
    ] {
        w.fails(&["create", "-n", name, "--rootfs", &root], 125, said);
    }
    w.assert_no_vm_left();
}
