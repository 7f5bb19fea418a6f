//! Bad input gets one clear line on stderr and msb's own exit status.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox};
use std::process::{Command, Output};

fn run(mut cmd: Command) -> (Option<i32>, String) {
    let out: Output = cmd.output().expect("running msb");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_error(cmd: Command, code: i32, needle: &str) {
    let (got, stderr) = run(cmd);
    assert_eq!(got, Some(code), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_or_wrong_rootfs_is_named() {
    let sb = Sandbox::new();
    let mut cmd = sb.msb();
    cmd.args(["run", "--rootfs", "/nonexistent/dir", "--", "true"]);
    assert_error(cmd, 125, "rootfs /nonexistent/dir does not exist");
    // A file is a disk image; one without a filesystem is refused by the guest, and the
    // half-made sandbox is gone again.
    let file = sb.home().join("file.img");
    std::fs::write(&file, vec![0u8; 1 << 20]).expect("write");
    let mut cmd = sb.msb();
    cmd.arg("run").arg("--rootfs").arg(&file).args(["--", "true"]);
    if vm_available() {
        assert_error(cmd, 125, "no filesystem on the root disk");
        let left = std::fs::read_dir(sb.home().join("sandboxes"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "a sandbox that failed to start is not kept");
    }
}

#[test]
fn out_of_range_resources_are_refused() {
    let sb = Sandbox::new();
    assert_error(sb.run(&["--cpus", "0"], &["true"]), 125, "--cpus 0 is out of range");
    assert_error(
        sb.run(&["--cpus", "1000"], &["true"]),
        125,
        "--cpus 1000 is out of range",
    );
    assert_error(
        sb.run(&["--memory", "16"], &["true"]),
        125,
        "--memory 16 MiB is out of range",
    );
    assert_error(sb.run(&["--memory", "99999999"], &["true"]), 125, "out of range");
    assert_error(
        sb.run(&["--workdir", "relative"], &["true"]),
        125,
        "must be an absolute path",
    );
}

#[test]
fn missing_kernel_or_qemu_says_how_to_fix_it() {
    let sb = Sandbox::new();
    let mut cmd = sb.run(&[], &["true"]);
    cmd.env("MSB_KERNEL", "/nonexistent/vmlinux");
    assert_error(cmd, 125, "cargo xtask kernel");
    let mut cmd = sb.run(&[], &["true"]);
    cmd.env("PATH", "/nonexistent");
    assert_error(cmd, 125, "qemu-system-x86_64 is not installed");
    assert!(
        !sb.home().join("sandboxes").exists()
            || sb
                .home()
                .join("sandboxes")
                .read_dir()
                .map(|mut d| d.next().is_none())
                .unwrap_or(true)
    );
}

#[test]
fn unknown_commands_are_guest_errors_and_workdir_and_user_are_checked_before_boot() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    assert_error(
        sb.run(&[], &["no-such-program"]),
        127,
        "no-such-program: command not found",
    );
    assert_error(sb.run(&[], &["/etc/passwd"]), 126, "cannot execute");
    assert_error(
        sb.run(&["-w", "/nope"], &["true"]),
        125,
        "msb: error: --workdir '/nope' does not exist in the root filesystem",
    );
    assert_error(
        sb.run(&["-u", "mallory"], &["true"]),
        125,
        "msb: error: --user 'mallory' is not in the guest's /etc/passwd",
    );
    // Per exec, the guest checks them; its refusal is still one error line.
    let out = sb.output(&["create", "-n", "per-exec", "--rootfs", sb.rootfs.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut cmd = sb.msb();
    cmd.args(["exec", "per-exec", "-w", "/nope", "--", "true"]);
    assert_error(cmd, 125, "msb: error: working directory '/nope' does not exist");
    let mut cmd = sb.msb();
    cmd.args(["exec", "per-exec", "-u", "mallory", "--", "true"]);
    assert_error(
        cmd,
        125,
        "msb: error: user: 'mallory' is not in the guest's /etc/passwd",
    );
    assert!(sb.output(&["rm", "-f", "per-exec"]).status.success());
    sb.assert_no_vm_left();
}
