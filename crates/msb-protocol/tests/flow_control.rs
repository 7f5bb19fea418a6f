//! Credit, end to end between an `AgentClient` and a fake agent: output credit goes back
//! only as the consumer takes events, in batches; stdin stops at the window until the
//! agent grants more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peer;

use futures::poll;
use msb_protocol::client::ExecEvent;
use msb_protocol::{ExitStatus, Frame, Message, StreamKind, MAX_CHUNK, STREAM_WINDOW};
use peer::{connect, exec_request, stdin_bytes};
use tokio::task::unconstrained;

/// A thirty-second of the window: eight make a credit batch.
const CHUNK: usize = STREAM_WINDOW as usize / 32;
const BATCH: u32 = STREAM_WINDOW / 4;

fn credit(id: u32, stream: StreamKind, bytes: u32) -> Frame {
    Frame::new(id, Message::Credit { stream, bytes })
}

#[tokio::test]
async fn output_credit_goes_back_in_batches_as_events_are_taken() {
    let (client, mut peer) = connect().await;
    let mut session = client.exec(exec_request(&["yes"])).await.unwrap();
    let id = peer.recv().await.id;
    peer.send(id, Message::Started { pid: 42 }).await;
    for _ in 0..12 {
        peer.send(id, Message::Stdout(vec![b'y'; CHUNK])).await;
    }
    // All 13 events are queued at the client now; none taken, so no credit yet.
    assert_eq!(peer.sync(&client).await, vec![]);

    assert_eq!(session.next().await.unwrap(), Some(ExecEvent::Started(42)));
    for _ in 0..8 {
        assert_eq!(
            session.next().await.unwrap(),
            Some(ExecEvent::Stdout(vec![b'y'; CHUNK]))
        );
    }
    // A quarter window taken, more queued: still nothing.
    assert_eq!(peer.sync(&client).await, vec![]);

    // Asking for the next event returns the batch first, exactly what was taken.
    session.next().await.unwrap();
    assert_eq!(peer.sync(&client).await, vec![credit(id, StreamKind::Stdout, BATCH)]);

    for _ in 0..3 {
        session.next().await.unwrap();
    }
    // Less than a batch taken since, events still queued: nothing.
    assert_eq!(peer.sync(&client).await, vec![]);

    // The queue has run dry: the consumer waits, so what it took goes back at once.
    let mut waiting = Box::pin(unconstrained(session.next()));
    assert!(poll!(waiting.as_mut()).is_pending());
    assert_eq!(
        peer.sync(&client).await,
        vec![credit(id, StreamKind::Stdout, 4 * CHUNK as u32)]
    );
    peer.send(id, Message::Exited(ExitStatus::Code(0))).await;
    assert_eq!(waiting.await.unwrap(), Some(ExecEvent::Exited(ExitStatus::Code(0))));
    assert_eq!(session.next().await.unwrap(), None);
    assert_eq!(peer.sync(&client).await, vec![]);
}

#[tokio::test]
async fn stdout_and_stderr_are_credited_separately() {
    let (client, mut peer) = connect().await;
    let mut session = client.exec(exec_request(&["sh"])).await.unwrap();
    let id = peer.recv().await.id;
    for _ in 0..8 {
        peer.send(id, Message::Stdout(vec![1; CHUNK])).await;
    }
    peer.send(id, Message::Stderr(vec![2; 100])).await;
    peer.send(id, Message::Stdout(vec![1; 10])).await;
    assert_eq!(peer.sync(&client).await, vec![]);
    for _ in 0..9 {
        session.next().await.unwrap();
    }
    // The stdout batch is full; stderr's 100 bytes wait for a batch or a dry queue.
    assert_eq!(peer.sync(&client).await, vec![credit(id, StreamKind::Stdout, BATCH)]);
    assert_eq!(session.next().await.unwrap(), Some(ExecEvent::Stdout(vec![1; 10])));
    let mut waiting = Box::pin(unconstrained(session.next()));
    assert!(poll!(waiting.as_mut()).is_pending());
    assert_eq!(
        peer.sync(&client).await,
        vec![credit(id, StreamKind::Stdout, 10), credit(id, StreamKind::Stderr, 100)]
    );
}

#[tokio::test]
async fn a_stdin_writer_waits_for_credit_beyond_the_window() {
    let (client, mut peer) = connect().await;
    let session = client.exec(exec_request(&["cat"])).await.unwrap();
    let id = peer.recv().await.id;
    let window = STREAM_WINDOW as usize;
    // The writer sends whole chunks of up to MAX_CHUNK, each once it has the credit.
    let extra = MAX_CHUNK + 1_000;
    let data: Vec<u8> = (0..window + extra).map(|i| (i % 251) as u8).collect();
    let control = session.control();
    let writer = tokio::spawn({
        let data = data.clone();
        async move { control.write_stdin(&data).await }
    });

    let mut got = peer.read_stdin(window).await;
    assert_eq!(peer.sync(&client).await, vec![], "stdin beyond the window");
    assert!(!writer.is_finished());

    peer.send(
        id,
        Message::Credit {
            stream: StreamKind::Stdin,
            bytes: MAX_CHUNK as u32,
        },
    )
    .await;
    let more = peer.sync(&client).await;
    assert_eq!(stdin_bytes(&more), MAX_CHUNK);
    assert!(!writer.is_finished());

    peer.send(
        id,
        Message::Credit {
            stream: StreamKind::Stdin,
            bytes: (extra - MAX_CHUNK) as u32,
        },
    )
    .await;
    let rest = peer.sync(&client).await;
    assert_eq!(stdin_bytes(&rest), extra - MAX_CHUNK);
    writer.await.unwrap().unwrap();
    for frame in more.into_iter().chain(rest) {
        if let Message::Stdin(d) = frame.msg {
            got.extend(d);
        }
    }
    assert!(got == data, "stdin arrived changed or out of order");
}

/// A hostile agent that ignores credit cannot make the host buffer without bound: output
/// beyond the window plus what was granted ends the session with an error, while output
/// within it (the whole window, then granted credit) is delivered.
#[tokio::test]
async fn output_beyond_the_granted_credit_ends_the_session() {
    let (client, mut peer) = connect().await;
    let mut session = client.exec(exec_request(&["yes"])).await.unwrap();
    let id = peer.recv().await.id;
    let window = STREAM_WINDOW as usize;
    // Exactly the window on each stream, untaken: allowed.
    for _ in 0..window / CHUNK {
        peer.send(id, Message::Stdout(vec![b'o'; CHUNK])).await;
        peer.send(id, Message::Stderr(vec![b'e'; CHUNK])).await;
    }
    for _ in 0..2 * window / CHUNK {
        assert!(matches!(
            session.next().await.unwrap(),
            Some(ExecEvent::Stdout(_) | ExecEvent::Stderr(_))
        ));
    }
    // The client granted back what it took; the agent may send that much again.
    let granted: usize = granted_credit(&peer.sync(&client).await, StreamKind::Stdout);
    assert_eq!(granted, window);
    for _ in 0..window / CHUNK {
        peer.send(id, Message::Stdout(vec![b'o'; CHUNK])).await;
    }
    // One byte more than all of that is a violation.
    peer.send(id, Message::Stdout(vec![b'!'])).await;
    let mut delivered = 0;
    let err = loop {
        let next = tokio::time::timeout(peer::PATIENCE, session.next()).await;
        match next.expect("the session went on after output beyond its credit") {
            Ok(Some(ExecEvent::Stdout(data))) => delivered += data.len(),
            other => break other,
        }
    };
    assert_eq!(delivered, window, "output within the credit is delivered whole");
    let err = err.unwrap_err().to_string();
    assert!(err.contains("more output than it was granted"), "{err}");
}

/// Output credit of `stream` in `frames`.
fn granted_credit(frames: &[Frame], stream: StreamKind) -> usize {
    frames
        .iter()
        .map(|f| match f.msg {
            Message::Credit { stream: s, bytes } if s == stream => bytes as usize,
            _ => 0,
        })
        .sum()
}
