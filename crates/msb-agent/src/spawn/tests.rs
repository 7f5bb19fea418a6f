//! Turning requests into processes on the host: what is refused before forking runs
//! anywhere; what needs a child runs as root (see `testutil`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::testutil::{can_spawn, request, wait};
use msb_protocol::ExitStatus;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

fn refused(req: &ExecRequest) -> SpawnFailure {
    match spawn(req) {
        Ok(Spawned { pid, io }) => {
            drop(io);
            let status = wait(pid);
            panic!("{:?} started (and ended with {status:?})", req.argv)
        }
        Err(failure) => failure,
    }
}

/// Runs `req` to its end with stdin closed; returns its stdout and how it ended.
fn run(req: &ExecRequest) -> (String, ExitStatus) {
    let child = spawn(req).unwrap_or_else(|f| panic!("{:?} did not start: {f:?}", req.argv));
    let ChildIo::Pipes {
        stdin,
        stdout,
        stderr: _,
    } = child.io
    else {
        panic!("pipes expected")
    };
    drop(stdin);
    let mut out = String::new();
    std::fs::File::from(stdout).read_to_string(&mut out).unwrap();
    (out, wait(child.pid))
}

fn script(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn malformed_requests_are_invalid() {
    let mut bad = vec![request(&[]), request(&["echo", "a\0b"])];
    for (k, v) in [("A=B", "1"), ("", "1"), ("A", "x\0y")] {
        let mut req = request(&["true"]);
        req.env.push((k.into(), v.into()));
        bad.push(req);
    }
    for req in bad {
        let failure = refused(&req);
        assert_eq!(failure.kind, SpawnErrorKind::InvalidRequest, "{req:?}: {failure:?}");
        assert_eq!(failure.kind.exit_code(), 125);
    }
}

#[test]
fn a_missing_relative_or_non_directory_workdir_is_bad_workdir() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let missing = dir.path().join("missing");
    // "src" exists relative to the test's directory (the crate's), but is not absolute.
    assert!(Path::new("src").is_dir());
    for workdir in [missing.to_str().unwrap(), "src", file.to_str().unwrap()] {
        let mut req = request(&["true"]);
        req.workdir = Some(workdir.into());
        let failure = refused(&req);
        assert_eq!(failure.kind, SpawnErrorKind::BadWorkdir, "{workdir}: {failure:?}");
        assert!(failure.message.contains(workdir), "{}", failure.message);
    }
}

#[test]
fn a_program_not_found_is_127_and_the_requests_path_is_searched() {
    let empty = tempfile::tempdir().unwrap();
    let mut on_empty_path = request(&["sh"]);
    on_empty_path
        .env
        .push(("PATH".into(), empty.path().to_str().unwrap().into()));
    for req in [
        request(&["msb-no-such-program"]),
        request(&["/no/such/program"]),
        on_empty_path,
    ] {
        let failure = refused(&req);
        assert_eq!(failure.kind, SpawnErrorKind::NotFound, "{:?}: {failure:?}", req.argv);
        assert_eq!(failure.kind.exit_code(), 127);
        assert!(failure.message.starts_with(&req.argv[0]), "{}", failure.message);
    }
}

#[test]
fn a_program_that_cannot_be_executed_is_126() {
    if !can_spawn() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    script(&plain, "echo ran", 0o644);
    for program in [&plain, dir.path()] {
        let failure = refused(&request(&[program.to_str().unwrap()]));
        assert_eq!(failure.kind, SpawnErrorKind::NotExecutable, "{program:?}: {failure:?}");
        assert_eq!(failure.kind.exit_code(), 126);
    }
}

#[test]
fn arguments_reach_the_process_verbatim_with_argv0_as_given() {
    if !can_spawn() {
        return;
    }
    let (out, status) = run(&request(&["printf", "%s|", "a b", "ü", "", "*", "$HOME"]));
    assert_eq!((out.as_str(), status), ("a b|ü||*|$HOME|", ExitStatus::Code(0)));
    // argv[0] is the name asked for, not the path it was found at.
    let (out, _) = run(&request(&[
        "sh",
        "-c",
        r#"x=$(tr '\0' ' ' < /proc/$$/cmdline); echo "$x""#,
    ]));
    assert!(out.starts_with("sh -c "), "{out}");
}

#[test]
fn the_environment_is_the_requests_over_the_defaults_and_nothing_of_ours() {
    if !can_spawn() {
        return;
    }
    let mut req = request(&["env"]);
    req.env = vec![
        ("A".into(), "1".into()),
        ("B".into(), "x y".into()),
        ("A".into(), "2".into()),
    ];
    let (out, _) = run(&req);
    let env: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once('=')).collect();
    let names: Vec<&str> = env.keys().copied().collect();
    assert_eq!(names, ["A", "B", "HOME", "HOSTNAME", "PATH"], "{out}");
    assert_eq!(env["A"], "2", "later entries win");
    assert_eq!(env["B"], "x y");
    assert_eq!(env["HOME"], "/root");
    assert_eq!(env["PATH"], DEFAULT_PATH);
}

#[test]
fn the_workdir_is_entered_and_relative_programs_are_found_in_it() {
    if !can_spawn() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    script(&dir_path.join("here.sh"), "pwd", 0o755);
    let mut req = request(&["./here.sh"]);
    req.workdir = Some(dir_path.to_str().unwrap().into());
    let (out, status) = run(&req);
    assert_eq!(
        (out.trim_end(), status),
        (dir_path.to_str().unwrap(), ExitStatus::Code(0))
    );
}

#[test]
fn the_requests_path_finds_programs() {
    if !can_spawn() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    script(&dir.path().join("msb-test-prog"), "echo found", 0o755);
    let mut req = request(&["msb-test-prog"]);
    req.env
        .push(("PATH".into(), format!("/nonexistent:{}", dir.path().display())));
    assert_eq!(run(&req), ("found\n".to_string(), ExitStatus::Code(0)));
}

#[test]
fn a_tty_request_gets_a_terminal_of_that_size() {
    if !can_spawn() {
        return;
    }
    // /dev/tty opens only in a process that has a controlling terminal.
    let script = "stty size; test -t 0 && test -t 1 && echo tty; (: </dev/tty) 2>/dev/null && echo ctty; echo $TERM";
    let mut req = request(&["sh", "-c", script]);
    req.tty = Some(WindowSize { rows: 33, cols: 101 });
    let child = spawn(&req).unwrap();
    let ChildIo::Pty { master } = child.io else {
        panic!("a PTY expected")
    };
    let mut out = Vec::new();
    let mut master = std::fs::File::from(master);
    // The master reads EIO once the child and its terminal are gone.
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = master.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(wait(child.pid), ExitStatus::Code(0));
    assert_eq!(String::from_utf8_lossy(&out), "33 101\r\ntty\r\nctty\r\nxterm\r\n");
}
