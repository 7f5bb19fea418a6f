//! The monitor against a scripted QEMU on the other end of a socket pair.

#![allow(clippy::unwrap_used)]

use super::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::io::{BufRead, BufReader, IoSliceMut, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdStream;

const GREETING: &str = r#"{"QMP": {"version": {}, "capabilities": []}}"#;

/// A monitor whose QEMU is `script`, run on a thread with its end of the socket.
async fn monitor_with(script: impl FnOnce(StdStream) + Send + 'static) -> Result<Monitor, VmmError> {
    let (ours, theirs) = StdStream::pair().unwrap();
    std::thread::spawn(move || script(theirs));
    ours.set_nonblocking(true).unwrap();
    Monitor::connect(UnixStream::from_std(ours).unwrap()).await
}

/// The next command QEMU is sent.
fn command(reader: &mut impl BufRead) -> Value {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

fn say(mut stream: &StdStream, lines: &[&str]) {
    for line in lines {
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
}

/// Greets, and accepts the capabilities.
fn negotiate(stream: &StdStream) -> BufReader<StdStream> {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    say(stream, &[GREETING]);
    assert_eq!(command(&mut reader)["execute"], "qmp_capabilities");
    say(stream, &[r#"{"return": {}}"#]);
    reader
}

#[tokio::test]
async fn events_that_come_between_replies_are_kept_for_later() {
    let mut monitor = monitor_with(|qemu| {
        let mut reader = negotiate(&qemu);
        assert_eq!(command(&mut reader)["execute"], "cont");
        say(
            &qemu,
            &[
                r#"{"event": "VSERPORT_CHANGE", "data": {"id": "other", "open": true}}"#,
                r#"{"event": "VSERPORT_CHANGE", "data": {"id": "agent-port", "open": true}}"#,
                r#"{"return": {}}"#,
            ],
        );
    })
    .await
    .unwrap();
    monitor.resume().await.unwrap();
    monitor.wait_agent_port_open().await.unwrap();
}

#[tokio::test]
async fn only_the_latest_events_are_kept() {
    let mut monitor = monitor_with(|qemu| {
        let mut reader = negotiate(&qemu);
        command(&mut reader);
        let opened = r#"{"event": "VSERPORT_CHANGE", "data": {"id": "agent-port", "open": true}}"#;
        let mut lines = vec![opened];
        lines.extend(std::iter::repeat_n(r#"{"event": "RESUME"}"#, MAX_EVENTS));
        lines.push(r#"{"return": {}}"#);
        say(&qemu, &lines);
        // The open event was pushed out; the wait reads on and meets the end.
    })
    .await
    .unwrap();
    monitor.resume().await.unwrap();
    assert_eq!(monitor.events.len(), MAX_EVENTS);
    assert!(monitor.wait_agent_port_open().await.is_err());
}

#[tokio::test]
async fn a_refused_command_says_why() {
    let mut monitor = monitor_with(|qemu| {
        let mut reader = negotiate(&qemu);
        command(&mut reader);
        say(&qemu, &[r#"{"error": {"class": "GenericError", "desc": "no can do"}}"#]);
    })
    .await
    .unwrap();
    let err = monitor.resume().await.unwrap_err().to_string();
    assert!(err.contains("cont: no can do"), "{err}");
}

#[tokio::test]
async fn a_stranger_that_does_not_greet_or_floods_is_refused() {
    let err = monitor_with(|qemu| say(&qemu, &[r#"{"hello": 1}"#])).await.unwrap_err();
    assert!(err.to_string().contains("no greeting"), "{err}");
    let err = monitor_with(|mut qemu| {
        let flood = vec![b'x'; 64 << 10];
        for _ in 0..(MAX_LINE / flood.len() + 2) {
            if qemu.write_all(&flood).is_err() {
                return;
            }
        }
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("longer than any QEMU sends"), "{err}");
    let err = monitor_with(|qemu| say(&qemu, &["{not json"])).await.unwrap_err();
    assert!(err.to_string().contains("unreadable"), "{err}");
    let err = monitor_with(drop).await.unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

/// Receives the command that comes with a descriptor, and the descriptor.
fn command_with_fd(qemu: &StdStream) -> (Value, OwnedFd) {
    let mut buf = vec![0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(qemu.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .unwrap();
    let len = msg.bytes;
    let line = String::from_utf8(buf[..len].to_vec()).unwrap();
    // SAFETY: the descriptor was just received and is owned by no one else.
    (serde_json::from_str(line.trim()).unwrap(), unsafe {
        OwnedFd::from_raw_fd(fd)
    })
}

#[tokio::test]
async fn saving_hands_qemu_the_file_and_waits_for_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saved");
    let file = File::create(&path).unwrap();
    let mut monitor = monitor_with(|qemu| {
        let mut reader = negotiate(&qemu);
        assert_eq!(command(&mut reader)["execute"], "stop");
        say(&qemu, &[r#"{"return": {}}"#, r#"{"event": "STOP"}"#]);
        let limit = command(&mut reader);
        assert_eq!(limit["execute"], "migrate-set-parameters");
        assert!(limit["arguments"]["max-bandwidth"].as_u64().unwrap() >= 1 << 30);
        say(&qemu, &[r#"{"return": {}}"#]);
        let (getfd, fd) = command_with_fd(&qemu);
        assert_eq!(getfd["arguments"]["fdname"], "snapshot");
        say(&qemu, &[r#"{"return": {}}"#]);
        let migrate = command(&mut reader);
        assert_eq!(migrate["arguments"]["uri"], "fd:snapshot");
        File::from(fd).write_all(b"the guest").unwrap();
        say(&qemu, &[r#"{"return": {}}"#]);
        for status in ["setup", "active", "completed"] {
            assert_eq!(command(&mut reader)["execute"], "query-migrate");
            say(&qemu, &[&format!(r#"{{"return": {{"status": "{status}"}}}}"#)]);
        }
    })
    .await
    .unwrap();
    monitor.save(&file).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"the guest");
}

#[tokio::test]
async fn a_failed_load_says_why_and_does_not_resume() {
    let mut monitor = monitor_with(|qemu| {
        let mut reader = negotiate(&qemu);
        assert_eq!(command(&mut reader)["execute"], "query-migrate");
        say(&qemu, &[r#"{"return": {}}"#]);
        assert_eq!(command(&mut reader)["execute"], "query-migrate");
        say(
            &qemu,
            &[r#"{"return": {"status": "failed", "error-desc": "bad section"}}"#],
        );
        // Nothing else may come: a `cont` would block here forever on a test failure.
    })
    .await
    .unwrap();
    let err = monitor.resume_loaded(None).await.unwrap_err().to_string();
    assert!(err.contains("loading the saved guest: bad section"), "{err}");
}

#[tokio::test]
async fn a_deferred_load_leaves_shared_memory_out_then_loads_and_resumes() {
    let mut monitor = monitor_with(|qemu| {
        let mut reader = negotiate(&qemu);
        let set = command(&mut reader);
        assert_eq!(set["execute"], "migrate-set-capabilities");
        assert_eq!(
            set["arguments"]["capabilities"][0],
            json!({"capability": "x-ignore-shared", "state": true})
        );
        say(&qemu, &[r#"{"return": {}}"#]);
        let incoming = command(&mut reader);
        assert_eq!(incoming["execute"], "migrate-incoming");
        assert_eq!(incoming["arguments"]["uri"], "fd:8");
        say(&qemu, &[r#"{"return": {}}"#]);
        assert_eq!(command(&mut reader)["execute"], "query-migrate");
        say(&qemu, &[r#"{"return": {"status": "completed"}}"#]);
        assert_eq!(command(&mut reader)["execute"], "cont");
        say(&qemu, &[r#"{"return": {}}"#]);
    })
    .await
    .unwrap();
    monitor.resume_loaded(Some("fd:8")).await.unwrap();
}
