//! How the mux routes frames to sessions and tears routes down: session ends, unknown
//! sessions, the control session, the connection closing or broken by the peer, impossible
//! exit statuses, frames too large to send.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peer;

use msb_protocol::client::{ClientError, ExecEvent};
use msb_protocol::codec::frame_len;
use msb_protocol::mux::Closed;
use msb_protocol::{ExitStatus, Message, ShutdownRequest, CONTROL_SESSION, MAX_FRAME_LEN, STREAM_WINDOW};
use peer::{connect, exec_request, settle, PATIENCE};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

/// The next message of a raw session, or `None` once its route is gone.
async fn next(rx: &mut UnboundedReceiver<Message>) -> Option<Message> {
    timeout(PATIENCE, rx.recv())
        .await
        .expect("waited 5 s for a session message")
}

#[tokio::test]
async fn a_session_ending_message_removes_its_route() {
    let (client, mut peer) = connect().await;
    let (id, mut rx) = client.mux().open(None).unwrap();
    peer.send(id, Message::Stdout(b"before".to_vec())).await;
    peer.send(id, Message::Pong).await;
    peer.send(id, Message::Stdout(b"after the end".to_vec())).await;
    assert_eq!(next(&mut rx).await, Some(Message::Stdout(b"before".to_vec())));
    assert_eq!(next(&mut rx).await, Some(Message::Pong));
    // The route went with Pong: the channel is closed and the late frame was dropped.
    assert_eq!(next(&mut rx).await, None);
}

#[tokio::test]
async fn frames_for_unknown_sessions_are_ignored() {
    let (client, mut peer) = connect().await;
    let (probe, _probe_rx) = client.mux().open(None).unwrap();
    // Ids are handed out in order: the sync's ping takes probe + 1, the next open probe + 2.
    peer.send(999_999, Message::Exited(msb_protocol::ExitStatus::Code(0)))
        .await;
    peer.send(probe + 2, Message::Stdout(b"stray".to_vec())).await;
    assert_eq!(peer.sync(&client).await, vec![]);
    let (id, mut rx) = client.mux().open(None).unwrap();
    assert_eq!(id, probe + 2);
    // The stray frame was not kept for a session that did not exist yet.
    peer.send(id, Message::Pong).await;
    assert_eq!(next(&mut rx).await, Some(Message::Pong));
}

#[tokio::test]
async fn control_messages_receives_the_control_session() {
    let (client, mut peer) = connect().await;
    let request = ShutdownRequest {
        signal: 15,
        grace_ms: 1_000,
    };
    let mut progress = client.shutdown(request).await.unwrap();
    let frame = peer.recv().await;
    assert_eq!((frame.id, frame.msg), (CONTROL_SESSION, Message::Shutdown(request)));
    peer.send(CONTROL_SESSION, Message::Stdout(b"console".to_vec())).await;
    peer.send(CONTROL_SESSION, Message::ShutdownComplete { killed: 2 })
        .await;
    assert_eq!(next(&mut progress).await, Some(Message::Stdout(b"console".to_vec())));
    assert_eq!(next(&mut progress).await, Some(Message::ShutdownComplete { killed: 2 }));
}

#[tokio::test]
async fn closing_the_connection_ends_every_session_and_releases_stdin_writers() {
    let (client, mut peer) = connect().await;
    let mut session = client.exec(exec_request(&["cat"])).await.unwrap();
    peer.recv().await;
    let (_, mut raw) = client.mux().open(None).unwrap();
    let control = session.control();
    let writer = tokio::spawn(async move { control.write_stdin(&vec![0; STREAM_WINDOW as usize + 1]).await });
    peer.read_stdin(STREAM_WINDOW as usize).await;
    settle().await;
    assert!(!writer.is_finished(), "the writer should wait for credit");

    drop(peer);
    let ended = timeout(PATIENCE, session.next())
        .await
        .expect("exec session still open");
    assert!(matches!(ended, Err(ClientError::Disconnected)), "{ended:?}");
    assert_eq!(next(&mut raw).await, None);
    let released = timeout(PATIENCE, writer).await.expect("stdin writer still blocked");
    assert!(matches!(released.unwrap(), Err(ClientError::Disconnected)));
    let how = timeout(PATIENCE, client.mux().closed()).await.expect("mux not closed");
    assert_eq!(how, Closed::Ended);
}

/// Sends `bytes` from the peer while an exec waits, and returns how the connection ended
/// and what the exec saw.
async fn break_with(bytes: &[u8]) -> (Closed, Result<Option<ExecEvent>, ClientError>) {
    let (client, mut peer) = connect().await;
    let mut session = client.exec(exec_request(&["sh"])).await.unwrap();
    peer.recv().await;
    peer.send_raw(bytes).await;
    let how = timeout(PATIENCE, client.mux().closed()).await.expect("mux not closed");
    assert_eq!(client.mux().closed_yet(), Some(how.clone()));
    (how, session.next().await)
}

#[tokio::test]
async fn a_malformed_frame_breaks_the_connection_and_says_so() {
    let mut garbage = 20u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&1u32.to_be_bytes());
    garbage.extend_from_slice(&[0xff; 16]);
    let (how, seen) = break_with(&garbage).await;
    assert!(
        matches!(&how, Closed::Broken(what) if what.contains("malformed message")),
        "{how:?}"
    );
    assert!(matches!(seen, Err(ClientError::Disconnected)), "{seen:?}");
}

#[tokio::test]
async fn an_oversized_length_breaks_the_connection_before_anything_is_allocated() {
    let (how, _) = break_with(&u32::MAX.to_be_bytes()).await;
    assert!(
        matches!(&how, Closed::Broken(what) if what.contains("4294967295 bytes exceeds")),
        "{how:?}"
    );
}

#[tokio::test]
async fn an_impossible_exit_status_fails_the_exec_and_ends_it() {
    for status in [
        ExitStatus::Code(256),
        ExitStatus::Code(-1),
        ExitStatus::Signal(0),
        ExitStatus::Signal(i32::MAX),
    ] {
        let (client, mut peer) = connect().await;
        let mut session = client.exec(exec_request(&["sh"])).await.unwrap();
        let id = peer.recv().await.id;
        peer.send(id, Message::Exited(status)).await;
        let seen = session.next().await;
        assert!(
            matches!(&seen, Err(ClientError::Unexpected(what)) if what.contains("impossible exit status")),
            "{status:?}: {seen:?}"
        );
        assert_eq!(session.next().await.unwrap(), None);
    }
    for possible in [
        ExitStatus::Code(0),
        ExitStatus::Code(255),
        ExitStatus::Signal(1),
        ExitStatus::Signal(64),
    ] {
        assert!(possible.is_possible(), "{possible:?}");
    }
    assert_eq!(ExitStatus::Signal(i32::MAX).shell_code(), i32::MAX);
}

#[tokio::test]
async fn a_frame_too_large_fails_only_its_own_session() {
    let (client, mut peer) = connect().await;
    let mut session = client.exec(exec_request(&["sh"])).await.unwrap();
    let id = peer.recv().await.id;

    let refused = timeout(PATIENCE, client.request(Message::Stdin(vec![0; MAX_FRAME_LEN])))
        .await
        .expect("the oversized request got no answer");
    match refused {
        Err(ClientError::Rejected(e)) => assert!(e.contains("exceeds"), "{e}"),
        other => panic!("expected the request to fail, got {other:?}"),
    }
    // Nothing of it reached the peer, and the framing is intact (the sync's ping decodes).
    assert_eq!(peer.sync(&client).await, vec![]);

    peer.send(id, Message::Stdout(b"still here".to_vec())).await;
    assert_eq!(
        session.next().await.unwrap(),
        Some(ExecEvent::Stdout(b"still here".to_vec()))
    );
    session.control().signal(2).await.unwrap();
    assert_eq!(peer.recv().await.msg, Message::Signal(2));
}

#[tokio::test]
async fn exec_refuses_a_request_over_the_limit_before_sending_anything() {
    let (client, mut peer) = connect().await;
    let big = "x".repeat(MAX_FRAME_LEN);
    match client.exec(exec_request(&[&big])).await {
        Err(ClientError::TooLarge { size, .. }) => assert!(size > MAX_FRAME_LEN),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(peer.sync(&client).await, vec![]);
}

#[tokio::test]
async fn exec_sends_a_request_of_exactly_the_limit() {
    let (client, mut peer) = connect().await;
    // Grow the argument until the frame is exactly MAX_FRAME_LEN.
    let mut arg = "x".repeat(MAX_FRAME_LEN - 64);
    let size = |arg: &str| frame_len(&Message::Exec(exec_request(&[arg]))).unwrap();
    while size(&arg) < MAX_FRAME_LEN {
        arg.push('x');
    }
    assert_eq!(size(&arg), MAX_FRAME_LEN);
    let mut session = client.exec(exec_request(&[&arg])).await.unwrap();
    let frame = peer.recv().await;
    assert_eq!(frame.msg, Message::Exec(exec_request(&[&arg])));
    peer.send(frame.id, Message::Started { pid: 1 }).await;
    assert_eq!(session.next().await.unwrap(), Some(ExecEvent::Started(1)));
}

/// Once the connection's reader has ended, a new session must fail at once: it was once
/// added after the reader had drained the routes, never ended, and its caller waited forever.
#[tokio::test]
async fn a_request_after_the_connection_closed_fails() {
    let (client, peer) = connect().await;
    drop(peer);
    timeout(PATIENCE, client.mux().closed()).await.expect("mux not closed");
    let answer = timeout(PATIENCE, client.request(Message::Ping)).await;
    let answer = answer.expect("the request waited 5 s on a closed connection");
    assert!(matches!(answer, Err(ClientError::Disconnected)), "{answer:?}");
}
