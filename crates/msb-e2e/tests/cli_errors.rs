//! One error style: every failure of `msb` itself is one `msb: error:` line (plus a `hint:`
//! line where one helps) and exit status 125, found before anything boots where it can be.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};

/// `msb ARGS` fails with 125, one error line naming `needle`, at most a hint after it, no
/// colour codes.
fn one_line<S: AsRef<str>>(w: &World, args: &[S], needle: &str) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let stderr = w.fails(&args, 125, needle);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].starts_with("msb: error: "), "{args:?}: {stderr}");
    assert!(
        lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")),
        "{args:?}: {stderr}"
    );
    assert!(!stderr.contains('\x1b'), "colour codes on a pipe: {stderr:?}");
}

#[test]
fn bad_flags_are_one_line_and_125() {
    let w = World::new();
    let root = w.rootfs.to_str().unwrap().to_string();
    let run = |extra: &[&'static str]| -> Vec<String> {
        ["run", "--rootfs", root.as_str()]
            .into_iter()
            .chain(extra.iter().copied())
            .chain(["--", "true"])
            .map(String::from)
            .collect()
    };
    one_line(&w, &run(&["--cpus", "-1"]), "'-1'");
    one_line(&w, &run(&["--cpus", "0"]), "--cpus 0 is out of range");
    one_line(&w, &run(&["--memory", "1T"]), "--memory");
    one_line(&w, &run(&["--upper-size", "0"]), "out of range");
    one_line(&w, &run(&["--idle-timeout", "5x"]), "not a duration");
    one_line(&w, &run(&["--max-duration", "0s"]), "at least one second");
    one_line(&w, &run(&["--cpu", "2"]), "--cpu");
    one_line(&w, &run(&["--stop-signal", "SIGFOO"]), "not a signal");
    one_line(&w, &["frobnicate"], "frobnicate");
    one_line(
        &w,
        &["run", "--rootfs", "/etc/passwd", "--", "true"],
        "no filesystem on the root disk",
    );
}

#[test]
fn what_the_root_can_tell_is_refused_before_boot() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let root = w.rootfs.to_str().unwrap().to_string();
    one_line(&w, &["run", "--rootfs", &root], "no command given");
    one_line(
        &w,
        &["run", "--rootfs", &root, "-w", "/no/such/dir", "--", "true"],
        "does not exist in the root filesystem",
    );
    one_line(
        &w,
        &["run", "--rootfs", &root, "-w", "/bin/sh", "--", "true"],
        "not a directory",
    );
    one_line(
        &w,
        &["run", "--rootfs", &root, "-u", "nobody-here", "--", "true"],
        "not in the guest's /etc/passwd",
    );
    one_line(
        &w,
        &["run", "--rootfs", &root, "-u", "4294967295", "--", "true"],
        "out of range",
    );
    // A symlinked working directory is followed as the guest would.
    std::os::unix::fs::symlink("/tmp", w.rootfs.join("linked")).unwrap();
    assert_eq!(
        w.ok(&["run", "--rootfs", &root, "-w", "/linked", "--", "echo", "in"]),
        "in\n"
    );
    // Nothing was booted and nothing is left.
    assert_eq!(w.sandbox_dirs(), 0);
    w.assert_no_vm_left();
}

#[test]
fn deleting_below_a_symlink_in_a_directory_root_is_refused() {
    let w = World::new();
    std::os::unix::fs::symlink("/etc", w.rootfs.join("link")).unwrap();
    let root = w.rootfs.to_str().unwrap().to_string();
    one_line(
        &w,
        &["run", "--rootfs", &root, "--delete", "/link/passwd", "--", "true"],
        "parent is not a directory",
    );
    assert!(std::path::Path::new("/etc/passwd").exists());
}

#[test]
fn racing_removals_leave_nothing_behind() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("race", &[]);
    let removers: Vec<_> = (0..4)
        .map(|_| {
            w.msb()
                .args(["rm", "-f", "race"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in removers {
        let out = r.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains('\x1b'), "colour codes on a pipe: {stderr:?}");
    }
    assert!(
        !w.home().join("sandboxes/race").exists(),
        "a racing rm left the sandbox directory"
    );
    w.assert_no_vm_left();
}
