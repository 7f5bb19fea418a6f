//! `msb run -t` driven through a pseudo-terminal pair: prompt, command, resize, Ctrl-C, exit,
//! detach keys, and `exec` without a command.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox};
use nix::pty::{openpty, Winsize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The test's side of the terminal: what msb printed so far, and a way to type.
struct Terminal {
    master: std::fs::File,
    output: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Terminal {
    /// Waits until the output since the last match contains `needle`.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pos) = find(&self.seen, needle.as_bytes()) {
                let upto = pos + needle.len();
                let text = String::from_utf8_lossy(&self.seen[..upto]).into_owned();
                self.seen.drain(..upto);
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => {
                    // Answer cursor-position queries (busybox ash sends one after each prompt)
                    // as a real terminal would, or the shell waits and mis-reads our typing.
                    for _ in 0..chunk.windows(4).filter(|w| w == b"\x1b[6n").count() {
                        self.send(b"\x1b[1;1R");
                    }
                    self.seen.extend(chunk)
                }
                Err(_) => panic!(
                    "timed out waiting for {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("typing");
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize; the kernel then signals SIGWINCH to msb.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws as *const Winsize) };
        assert_eq!(rc, 0);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Starts `msb run -t … sh` on a fresh pseudo-terminal of 30×100; returns msb, the test's
/// side of the terminal, and a handle on the terminal itself (for a hangup).
fn open_terminal(sb: &Sandbox) -> (std::process::Child, Terminal, OwnedFd) {
    open_terminal_for(sb.run(&["-t", "-e", "PS1=prompt> "], &["sh"]))
}

/// Starts `cmd` (an msb command line) on a fresh pseudo-terminal of 30×100.
fn open_terminal_for(mut cmd: std::process::Command) -> (std::process::Child, Terminal, OwnedFd) {
    let size = Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).expect("openpty");
    // openpty(3) does not set close-on-exec: msb must not inherit the master, or it would hold
    // its own terminal open and never see a hangup.
    nix::fcntl::fcntl(
        pty.master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .expect("cloexec");
    let slave: OwnedFd = pty.slave;
    let tty = slave.try_clone().expect("dup");
    cmd.stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave);
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe; they make the pty msb's terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn msb");
    let master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().expect("dup master");
    let (tx, output) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let term = Terminal {
        master,
        output,
        seen: Vec::new(),
    };

    (child, term, tty)
}

#[test]
fn interactive_shell_with_resize_and_ctrl_c() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let (mut child, mut term, _tty) = open_terminal(&sb);
    term.expect("prompt> ");
    term.send(b"stty size; tty; echo END$((1+1))\r");
    let answer = term.expect("END2");
    assert!(answer.contains("30 100"), "{answer}");
    assert!(answer.contains("/dev/pts/"), "{answer}");

    term.resize(50, 160);
    std::thread::sleep(Duration::from_millis(300));
    term.send(b"stty size; echo END$((2+1))\r");
    let resized = term.expect("END3");
    assert!(resized.contains("50 160"), "{resized}");
    term.expect("prompt> ");

    // Ctrl-C reaches the guest's foreground process, not msb.
    term.send(b"sleep 100; echo after-$((40+2))\r");
    std::thread::sleep(Duration::from_millis(500));
    term.send(b"\x03");
    let interrupted = term.expect("prompt> ");
    assert!(
        interrupted.contains("^C") && !interrupted.contains("after-42"),
        "{interrupted}"
    );

    term.send(b"exit 7\r");
    let status = child.wait().expect("wait msb");
    assert_eq!(status.code(), Some(7));
    sb.assert_no_vm_left();
}

#[test]
fn terminal_hangup_stops_the_vm() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let (mut child, mut term, tty) = open_terminal(&sb);
    term.expect("prompt> ");
    // What closing a terminal window does: hang the terminal up under everyone using it.
    // SAFETY: TIOCVHANGUP takes no argument; `tty` is an open terminal descriptor.
    assert_eq!(unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCVHANGUP) }, 0);
    let status = msb_e2e::wait_or_kill(&mut child, Duration::from_secs(20), "msb ignored the hangup");
    assert_eq!(status.code(), Some(128 + libc::SIGHUP));
    sb.assert_no_vm_left();
}

#[test]
fn detach_keys_leave_the_process_running() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let root = sb.rootfs.to_str().unwrap().to_string();
    let mut run = sb.msb();
    run.args([
        "run",
        "-t",
        "--name",
        "kept",
        "--detach-keys",
        "ctrl-p,ctrl-q",
        "-e",
        "PS1=prompt> ",
    ]);
    run.args(["--rootfs", &root, "--", "sh"]);
    let (mut child, mut term, _tty) = open_terminal_for(run);
    term.expect("prompt> ");
    // After the detach it writes ~600 KB (far beyond any buffer) that nobody reads:
    // discarded, it must not block.
    term.send(b"echo started; sleep 3; seq 1 100000; echo finished > /root/mark\r");
    term.expect("started");
    // ctrl-p alone is typed through; ctrl-p ctrl-q detaches.
    term.send(b"\x10\x11");
    let status = msb_e2e::wait_or_kill(&mut child, Duration::from_secs(20), "msb did not detach");
    assert_eq!(status.code(), Some(0));
    assert_eq!(sb.inspect("kept")["state"], "Running");
    // Generous: TCG on a loaded 2-core machine is slow, and this only bounds a failure.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mark = || sb.output(&["exec", "kept", "--", "cat", "/root/mark"]).stdout;
    while mark() != b"finished\n" {
        assert!(Instant::now() < deadline, "the detached process did not run on");
        std::thread::sleep(Duration::from_millis(500));
    }
    // `exec` without a command on a terminal is the sandbox's shell.
    let mut exec = sb.msb();
    exec.args(["exec", "-e", "PS1=inside> ", "kept"]);
    let (mut child, mut term, _tty) = open_terminal_for(exec);
    term.expect("inside> ");
    term.send(b"exit 3\r");
    assert_eq!(child.wait().unwrap().code(), Some(3));
    sb.ok(&["rm", "-f", "kept"]);
    sb.assert_no_vm_left();
}
