//! A fake agent for client and mux tests: the test body itself plays the peer over an
//! in-memory duplex stream, reading the client's frames with `FrameCodec` and answering.

#![allow(dead_code)]

use futures::{SinkExt, StreamExt};
use msb_protocol::client::AgentClient;
use msb_protocol::{
    BootTimings, ExecRequest, Frame, FrameCodec, GuestConfig, Hello, Message, Ready, RootSource, PROTOCOL_VERSION,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;

/// Longest a test waits for something that should happen at once; only a broken build
/// ever waits this long.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// The agent's end of the connection.
pub struct Peer {
    io: Framed<DuplexStream, FrameCodec>,
}

/// A client that has completed the handshake with a fresh [`Peer`].
pub async fn connect() -> (Arc<AgentClient>, Peer) {
    // Large enough that neither side ever blocks on the pipe itself (frames up to 1 MiB).
    let (host, guest) = tokio::io::duplex(8 << 20);
    let mut peer = Peer {
        io: Framed::new(guest, FrameCodec),
    };
    let config = GuestConfig::new(RootSource::VirtioFs { tag: "root".into() }, "test");
    let handshake = tokio::spawn(AgentClient::handshake(
        host,
        Hello::new(config, (0, 0), Vec::new(), false),
    ));
    let hello = peer.recv().await;
    assert!(matches!(hello.msg, Message::Hello(_)), "expected Hello, got {hello:?}");
    let ready = Ready {
        version: PROTOCOL_VERSION,
        timings: BootTimings {
            agent_start_ns: 0,
            ready_ns: 0,
        },
    };
    peer.send(0, Message::Ready(ready)).await;
    let client = handshake.await.unwrap().unwrap();
    (Arc::new(client), peer)
}

/// An exec request for `argv`, its stdin a pipe.
pub fn exec_request(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        stdin: msb_protocol::StdinMode::Pipe,
        ..ExecRequest::new(argv.iter().copied())
    }
}

/// Lets every other task on this (single-threaded) runtime run until it waits on
/// something: whatever the client was going to send by itself, it has sent.
pub async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

impl Peer {
    /// The next frame from the client.
    pub async fn recv(&mut self) -> Frame {
        let next = tokio::time::timeout(PATIENCE, self.io.next()).await;
        next.expect("the peer waited 5 s for a frame")
            .expect("the client closed the connection")
            .expect("the client sent a bad frame")
    }

    /// Sends `msg` on session `id` to the client.
    pub async fn send(&mut self, id: u32, msg: Message) {
        self.io.send(Frame::new(id, msg)).await.unwrap();
    }

    /// Sends bytes as they are, framed or not.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    /// Everything the client has sent so far and not yet read here. A ping on a session
    /// of its own is queued behind those frames (one writer, in order), so once it
    /// arrives, nothing sent before it is still on the way.
    pub async fn sync(&mut self, client: &Arc<AgentClient>) -> Vec<Frame> {
        settle().await;
        let c = client.clone();
        let ping = tokio::spawn(async move { c.request(Message::Ping).await });
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame.msg == Message::Ping {
                self.send(frame.id, Message::Pong).await;
                break;
            }
            before.push(frame);
        }
        let pong = tokio::time::timeout(PATIENCE, ping).await;
        assert_eq!(
            pong.expect("the client never saw the Pong").unwrap().unwrap(),
            Message::Pong
        );
        before
    }

    /// Reads `n` bytes of stdin from the client; any other frame is a failure.
    pub async fn read_stdin(&mut self, n: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < n {
            match self.recv().await.msg {
                Message::Stdin(data) => got.extend(data),
                other => panic!("expected stdin, got {other:?}"),
            }
        }
        assert_eq!(got.len(), n, "more stdin than expected");
        got
    }
}

/// The stdin bytes among `frames`; any other frame is a failure.
pub fn stdin_bytes(frames: &[Frame]) -> usize {
    frames
        .iter()
        .map(|f| match &f.msg {
            Message::Stdin(data) => data.len(),
            other => panic!("expected only stdin, got {other:?}"),
        })
        .sum()
}
