//! Sessions over real processes started by the agent's own `spawn`, with a fake `Link`
//! whose frames the test reads and credit the test grants by hand. The test, not the
//! reaper, waits for each child (by pid) and decides when the session hears of the exit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::spawn::spawn;
use crate::testutil::{can_spawn, request, wait};
use std::time::Duration;
use tokio::task::LocalSet;
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(10);
/// How long output must stay away for a stream to count as held back.
const QUIET: Duration = Duration::from_millis(400);
const WINDOW: usize = STREAM_WINDOW as usize;
const SESSION: u32 = 7;

/// A session running on the current `LocalSet`.
struct Running {
    pid: i32,
    frames: mpsc::Receiver<Frame>,
    inbox: mpsc::UnboundedSender<Message>,
    child_exit: Option<oneshot::Receiver<ExitStatus>>,
    session_exit: Option<oneshot::Sender<ExitStatus>>,
    sessions: Sessions,
}

fn start(argv: &[&str]) -> Running {
    let child = spawn(&request(argv)).unwrap();
    let pid = child.pid;
    let (waited, child_exit) = oneshot::channel();
    std::thread::spawn(move || waited.send(wait(pid)));
    let (session_exit, exit) = oneshot::channel();
    let (out, frames) = mpsc::channel(64);
    let (inbox, inbox_rx) = mpsc::unbounded_channel();
    let sessions = Sessions::default();
    let link = Link { id: SESSION, out };
    spawn_local(run(link, child, exit, inbox_rx, sessions.enter()));
    Running {
        pid,
        frames,
        inbox,
        child_exit: Some(child_exit),
        session_exit: Some(session_exit),
        sessions,
    }
}

impl Running {
    /// The session hears of the exit as soon as the child is gone, as from the reaper.
    fn report_exit_at_once(&mut self) {
        let (child, session) = (self.child_exit.take().unwrap(), self.session_exit.take().unwrap());
        spawn_local(async move {
            if let Ok(status) = child.await {
                let _ = session.send(status);
            }
        });
    }

    /// Waits for the child to end, then tells the session.
    async fn child_ended(&mut self) -> ExitStatus {
        let waited = timeout(PATIENCE, self.child_exit.take().unwrap()).await;
        let status = waited.expect("the child did not end").unwrap();
        self.session_exit.take().unwrap().send(status).unwrap();
        status
    }

    /// Grants credit; after the session has ended it is dropped, as on a real host.
    fn grant(&self, stream: StreamKind, bytes: usize) {
        let bytes = bytes as u32;
        let _ = self.inbox.send(Message::Credit { stream, bytes });
    }

    /// The next message; `None` once the session is over and its link dropped.
    async fn next(&mut self) -> Option<Message> {
        let frame = timeout(PATIENCE, self.frames.recv()).await.expect("no frame in 10 s")?;
        assert_eq!(frame.id, SESSION);
        Some(frame.msg)
    }

    async fn started(&mut self) {
        assert_eq!(self.next().await, Some(Message::Started { pid: self.pid as u32 }));
    }

    /// Output of `kind` until more than `past` bytes have come; any other message fails.
    async fn output_past(&mut self, kind: StreamKind, past: usize) -> usize {
        let mut got = 0;
        while got <= past {
            got += output_len(kind, self.next().await);
        }
        got
    }

    /// Output of `kind` that still arrives until the stream has been quiet for [`QUIET`].
    async fn trickle(&mut self, kind: StreamKind) -> usize {
        let mut got = 0;
        while let Ok(frame) = timeout(QUIET, self.frames.recv()).await {
            got += output_len(kind, frame.map(|f| f.msg));
        }
        got
    }

    /// Output of `kind` until `Exited`, which must come with exactly `total` bytes in all.
    async fn rest_until_exit(&mut self, kind: StreamKind, mut got: usize, total: usize) -> ExitStatus {
        loop {
            match self.next().await {
                Some(Message::Exited(status)) => {
                    assert_eq!(got, total, "Exited before the last output byte");
                    assert_eq!(self.next().await, None, "messages after Exited");
                    assert_eq!(self.sessions.active(), 0);
                    return status;
                }
                msg => got += output_len(kind, msg),
            }
        }
    }
}

/// The length of `msg`, which must be output of `kind` (all zero bytes).
fn output_len(kind: StreamKind, msg: Option<Message>) -> usize {
    let data = match (kind, msg) {
        (StreamKind::Stdout, Some(Message::Stdout(d))) | (StreamKind::Stderr, Some(Message::Stderr(d))) => d,
        (_, other) => panic!("expected {kind:?} output, got {other:?}"),
    };
    assert!(data.iter().all(|&b| b == 0));
    data.len()
}

#[tokio::test]
async fn output_never_exceeds_the_credit_granted() {
    if !can_spawn() {
        return;
    }
    LocalSet::new()
        .run_until(async {
            let total = 4 * WINDOW;
            let mut s = start(&["head", "-c", &total.to_string(), "/dev/zero"]);
            s.report_exit_at_once();
            s.started().await;
            // Before any credit: up to one window, and then nothing.
            let mut got = s.output_past(StreamKind::Stdout, WINDOW - MAX_CHUNK).await;
            got += s.trickle(StreamKind::Stdout).await;
            assert!(got <= WINDOW, "{got} bytes sent on a {WINDOW}-byte window");
            // A grant lets that much more through, and then the stream stalls again.
            let grant = 65_536;
            s.grant(StreamKind::Stdout, grant);
            let more = s.output_past(StreamKind::Stdout, 0).await + s.trickle(StreamKind::Stdout).await;
            got += more;
            assert!(
                got <= WINDOW + grant,
                "{got} bytes sent with {} granted",
                WINDOW + grant
            );
            // Then as a host does: credit for what it consumed, never more.
            let mut granted = WINDOW + grant + got;
            s.grant(StreamKind::Stdout, got);
            loop {
                match s.next().await {
                    Some(Message::Exited(status)) => {
                        assert_eq!(status, ExitStatus::Code(0));
                        break;
                    }
                    msg => {
                        let n = output_len(StreamKind::Stdout, msg);
                        got += n;
                        assert!(got <= granted, "{got} bytes sent with {granted} granted");
                        s.grant(StreamKind::Stdout, n);
                        granted += n;
                    }
                }
            }
            assert_eq!(got, total);
            assert_eq!(s.next().await, None);
        })
        .await;
}

#[tokio::test]
async fn exited_comes_after_the_last_output_byte() {
    if !can_spawn() {
        return;
    }
    LocalSet::new()
        .run_until(async {
            // More than a window, but the rest fits in the pipe (64 KiB): the
            // child can exit while output is still held back.
            let total = WINDOW + 40_000;
            let mut s = start(&["head", "-c", &total.to_string(), "/dev/zero"]);
            s.started().await;
            let mut got = s.output_past(StreamKind::Stdout, WINDOW - MAX_CHUNK).await;
            assert_eq!(s.child_ended().await, ExitStatus::Code(0));
            // The session knows of the exit, but output is pending: no Exited yet.
            got += s.trickle(StreamKind::Stdout).await;
            assert!(got <= WINDOW && got < total);
            s.grant(StreamKind::Stdout, total);
            assert_eq!(
                s.rest_until_exit(StreamKind::Stdout, got, total).await,
                ExitStatus::Code(0)
            );
        })
        .await;
}

#[tokio::test]
async fn stderr_has_a_window_of_its_own() {
    if !can_spawn() {
        return;
    }
    LocalSet::new()
        .run_until(async {
            let total = WINDOW + 40_000;
            let mut s = start(&["sh", "-c", &format!("head -c {total} /dev/zero >&2")]);
            s.started().await;
            let mut got = s.output_past(StreamKind::Stderr, WINDOW - MAX_CHUNK).await;
            s.child_ended().await;
            // Stdout credit does not release stderr.
            s.grant(StreamKind::Stdout, 10 * WINDOW);
            got += s.trickle(StreamKind::Stderr).await;
            assert!(got <= WINDOW, "{got} bytes of stderr on a {WINDOW}-byte window");
            s.grant(StreamKind::Stderr, total);
            assert_eq!(
                s.rest_until_exit(StreamKind::Stderr, got, total).await,
                ExitStatus::Code(0)
            );
        })
        .await;
}

#[tokio::test]
async fn stdin_reaches_the_process_and_its_credit_comes_back() {
    if !can_spawn() {
        return;
    }
    LocalSet::new()
        .run_until(async {
            let mut s = start(&["cat"]);
            s.report_exit_at_once();
            s.started().await;
            s.inbox.send(Message::Stdin(b"hello\n".to_vec())).unwrap();
            let mut seen = vec![s.next().await, s.next().await];
            seen.sort_by_key(|m| format!("{m:?}"));
            let credit = Message::Credit {
                stream: StreamKind::Stdin,
                bytes: 6,
            };
            assert_eq!(seen, vec![Some(credit), Some(Message::Stdout(b"hello\n".to_vec()))]);
            s.inbox.send(Message::StdinEof).unwrap();
            assert_eq!(s.next().await, Some(Message::Exited(ExitStatus::Code(0))));
            assert_eq!(s.next().await, None);
        })
        .await;
}
