//! The relay between a fake client (a unix socket pair) and a fake agent (a duplex stream
//! behind a real `AgentClient`); the test body plays both ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use msb_protocol::{
    BootTimings, ExecRequest, ExitStatus, GuestConfig, Hello, RootSource, StreamKind, MAX_CHUNK, STREAM_WINDOW,
};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;

const PATIENCE: Duration = Duration::from_secs(5);

/// One end of a connection, played by the test.
struct End<S> {
    io: Framed<S, FrameCodec>,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> End<S> {
    async fn recv(&mut self) -> Frame {
        let next = timeout(PATIENCE, self.io.next()).await.expect("waited 5 s for a frame");
        next.expect("connection closed").expect("bad frame")
    }

    async fn send(&mut self, id: u32, msg: Message) {
        self.io.send(Frame::new(id, msg)).await.unwrap();
    }
}

/// A supervisor's shared state over a fake agent, and what the test watches.
struct Rig {
    shared: Arc<Shared>,
    agent: End<DuplexStream>,
    stops: mpsc::Receiver<StopRequest>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let (host, guest) = tokio::io::duplex(8 << 20);
    let mut agent = End {
        io: Framed::new(guest, FrameCodec),
    };
    let config = GuestConfig::new(RootSource::VirtioFs { tag: "root".into() }, "test");
    let handshake = tokio::spawn(AgentClient::handshake(
        host,
        Hello::new(config, (0, 0), Vec::new(), false),
    ));
    assert!(matches!(agent.recv().await.msg, Message::Hello(_)));
    let ready = Ready {
        version: PROTOCOL_VERSION,
        timings: BootTimings {
            agent_start_ns: 1,
            ready_ns: 2,
        },
    };
    agent.send(CONTROL_SESSION, Message::Ready(ready.clone())).await;
    let client = handshake.await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (stop, stops) = mpsc::channel(4);
    let shared = Shared {
        agent: Arc::new(client),
        ready,
        activity: Activity::new(),
        log: ExecLog::open(&dir.path().join("exec.log")).unwrap(),
        stop,
        connections: watch::channel(0).0,
        vm_pids: Vec::new(),
        memory_limit: 256 << 20,
        cpus: 1,
        started: Instant::now(),
        owner_seen: false.into(),
        main_exit: Mutex::new(None),
        draining: false.into(),
        network: None,
        saver: crate::snapshot::Saver::new(None, dir.path().to_path_buf(), Vec::new()),
    };
    Rig {
        shared: Arc::new(shared),
        agent,
        stops,
        _dir: dir,
    }
}

impl Rig {
    /// A client connected through `serve_client`, past the handshake.
    async fn client(&self, owner: bool) -> (End<UnixStream>, JoinHandle<()>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let served = tokio::spawn(serve_client(ours, self.shared.clone()));
        let mut client = End {
            io: Framed::new(theirs, FrameCodec),
        };
        let connect = Message::Connect {
            version: PROTOCOL_VERSION,
            owner,
        };
        client.send(CONTROL_SESSION, connect).await;
        assert!(matches!(client.recv().await.msg, Message::Ready(_)));
        (client, served)
    }

    /// Everything the relay has sent the agent so far: a ping on a session of its own
    /// queues behind it on the agent connection.
    async fn agent_sync(&mut self) -> Vec<Frame> {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let agent = self.shared.agent.clone();
        let ping = tokio::spawn(async move { agent.request(Message::Ping).await });
        let mut before = Vec::new();
        loop {
            let frame = self.agent.recv().await;
            if frame.msg == Message::Ping {
                self.agent.send(frame.id, Message::Pong).await;
                break;
            }
            before.push(frame);
        }
        let pong = timeout(PATIENCE, ping).await.expect("no Pong");
        assert_eq!(pong.unwrap().unwrap(), Message::Pong);
        before
    }

    /// Starts `argv` as client session `id`; returns the agent's session id for it.
    async fn exec(&mut self, client: &mut End<UnixStream>, id: u32, argv: &str) -> u32 {
        let req = ExecRequest {
            stdin: msb_protocol::StdinMode::Pipe,
            ..ExecRequest::new([argv])
        };
        client.send(id, Message::Exec(req.clone())).await;
        let frame = self.agent.recv().await;
        assert_eq!(frame.msg, Message::Exec(req));
        frame.id
    }
}

fn credit(stream: StreamKind, bytes: u32) -> Message {
    Message::Credit { stream, bytes }
}

#[tokio::test]
async fn credit_passes_through_unchanged_both_ways() {
    let mut rig = rig().await;
    let (mut client, _served) = rig.client(false).await;
    let agent_id = rig.exec(&mut client, 5, "cat").await;

    for (stream, bytes) in [
        (StreamKind::Stdout, 12_345),
        (StreamKind::Stderr, 7),
        (StreamKind::Stdin, 1),
    ] {
        client.send(5, credit(stream, bytes)).await;
        assert_eq!(rig.agent.recv().await, Frame::new(agent_id, credit(stream, bytes)));
    }
    rig.agent.send(agent_id, credit(StreamKind::Stdin, 4_321)).await;
    assert_eq!(client.recv().await, Frame::new(5, credit(StreamKind::Stdin, 4_321)));
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_the_guest_to_its_window() {
    let mut rig = rig().await;
    let (mut client, _served) = rig.client(false).await;
    let agent_id = rig.exec(&mut client, 5, "yes").await;
    rig.agent.send(agent_id, Message::Started { pid: 9 }).await;
    // An honest guest sends what its window allows, then waits for credit.
    let window = STREAM_WINDOW as usize;
    for _ in 0..window / MAX_CHUNK {
        rig.agent.send(agent_id, Message::Stdout(vec![b'y'; MAX_CHUNK])).await;
    }
    // The client reads nothing: no credit may reach the guest, so the guest sends no more
    // and what the relay holds for the client is one window.
    assert_eq!(rig.agent_sync().await, vec![]);
    assert_eq!(client.recv().await.msg, Message::Started { pid: 9 });
    let mut queued = 0;
    while queued < window {
        match client.recv().await.msg {
            Message::Stdout(data) => queued += data.len(),
            other => panic!("expected output, got {other:?}"),
        }
    }
    assert_eq!(queued, window);
    // Once the client grants credit, exactly that reaches the guest.
    client.send(5, credit(StreamKind::Stdout, 65_536)).await;
    assert_eq!(
        rig.agent_sync().await,
        vec![Frame::new(agent_id, credit(StreamKind::Stdout, 65_536))]
    );
}

#[tokio::test]
async fn a_client_disconnecting_kills_the_processes_it_left_running() {
    let mut rig = rig().await;
    let (mut client, served) = rig.client(false).await;
    let ended = rig.exec(&mut client, 1, "true").await;
    let running = rig.exec(&mut client, 2, "sleep").await;
    rig.agent.send(ended, Message::Exited(ExitStatus::Code(0))).await;
    assert_eq!(client.recv().await, Frame::new(1, Message::Exited(ExitStatus::Code(0))));

    drop(client);
    timeout(PATIENCE, served)
        .await
        .expect("serve_client still running")
        .unwrap();
    // Only the process still running is killed; the ended session is not signalled.
    let killed = Frame::new(running, Message::Signal(libc::SIGKILL));
    assert_eq!(rig.agent_sync().await, vec![killed]);
    assert!(
        rig.stops.try_recv().is_err(),
        "a client that is not the owner stopped the sandbox"
    );
}

#[tokio::test]
async fn an_owner_disconnecting_stops_the_sandbox() {
    let mut rig = rig().await;
    let (client, served) = rig.client(true).await;
    assert!(rig.shared.owner_seen.load(Ordering::SeqCst));
    drop(client);
    timeout(PATIENCE, served)
        .await
        .expect("serve_client still running")
        .unwrap();
    let stop = rig.stops.try_recv().expect("no stop request");
    assert_eq!(stop.how, StopHow::Graceful(Duration::from_secs(5)));
    assert_eq!(stop.reason, "its owner disconnected");
}

fn ticks(busy: u64, total: u64) -> GuestMetrics {
    GuestMetrics {
        cpu_busy_ticks: busy,
        cpu_total_ticks: total,
        ..GuestMetrics::default()
    }
}

#[test]
fn guest_cpu_is_the_busy_share_of_all_cpus_in_tenths_of_a_percent_of_one() {
    let first = ticks(1_000, 10_000);
    // One of two CPUs busy all the time: 100 % of one CPU.
    assert_eq!(guest_cpu_permille(&first, &ticks(1_100, 10_200), 2), 1_000);
    // A quarter of two CPUs' time busy: half of one CPU.
    assert_eq!(guest_cpu_permille(&first, &ticks(1_050, 10_200), 2), 500);
    // All four CPUs busy: 400 %.
    assert_eq!(guest_cpu_permille(&first, &ticks(1_400, 10_400), 4), 4_000);
    // Rounded to the nearest tenth of a percent.
    assert_eq!(guest_cpu_permille(&first, &ticks(1_001, 10_003), 1), 333);
    assert_eq!(guest_cpu_permille(&first, &ticks(1_002, 10_003), 1), 667);
    // No CPUs configured counts as one.
    assert_eq!(guest_cpu_permille(&first, &ticks(1_050, 10_200), 0), 250);
}

#[test]
fn guest_counters_that_stand_still_or_go_back_give_zero() {
    let first = ticks(1_000, 10_000);
    assert_eq!(guest_cpu_permille(&first, &first, 2), 0);
    assert_eq!(guest_cpu_permille(&first, &ticks(900, 9_000), 2), 0);
    assert_eq!(guest_cpu_permille(&first, &ticks(900, 10_200), 2), 0);
    // A guest claiming busy time without total time gets nothing, not u32::MAX.
    assert_eq!(guest_cpu_permille(&first, &ticks(1_500, 10_000), 2), 0);
}

#[test]
fn host_cpu_is_ticks_over_the_window_in_tenths_of_a_percent() {
    // 25 ticks at 100 Hz in 0.25 s: one CPU fully busy.
    assert_eq!(host_cpu_permille(25, 100, 0.25), 1_000);
    assert_eq!(host_cpu_permille(5, 100, 0.25), 200);
    assert_eq!(host_cpu_permille(3, 250, 0.5), 24);
    assert_eq!(host_cpu_permille(1, 300, 1.0), 3);
    assert_eq!(host_cpu_permille(0, 100, 0.25), 0);
}

#[tokio::test]
async fn a_snapshot_of_a_vm_without_a_monitor_is_refused_and_the_sandbox_runs_on() {
    let mut rig = rig().await;
    let (mut client, _served) = rig.client(false).await;
    client.send(9, Message::Control(Control::Snapshot)).await;
    let reply = client.recv().await;
    assert_eq!(reply.id, 9);
    assert!(
        matches!(&reply.msg, Message::Error(e) if e.contains("no monitor")),
        "{reply:?}"
    );
    assert!(rig.stops.try_recv().is_err(), "a failed snapshot stopped the sandbox");
    assert_eq!(rig.agent_sync().await, vec![]);
}
