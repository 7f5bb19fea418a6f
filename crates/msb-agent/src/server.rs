//! The agent's service loop: handshake, then routing frames to exec sessions.

use crate::port::{Port, PortOut};
use crate::reaper::Reaper;
use crate::session::{self, Link, Sessions};
use crate::{files, init, metrics, shutdown, spawn};
use bytes::BytesMut;
use msb_protocol::{
    BootTimings, Frame, FrameCodec, Hello, Message, Ready, SpawnErrorKind, SpawnFailure, CONTROL_SESSION,
    PROTOCOL_VERSION,
};
use std::collections::HashMap;
use std::io;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{spawn_local, LocalSet};
use tokio_util::codec::{Decoder, Encoder};

/// Frames decoded from the port's byte stream.
struct Inbound {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: BytesMut,
}

impl Inbound {
    async fn next(&mut self) -> io::Result<Frame> {
        loop {
            match FrameCodec.decode(&mut self.buf) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => {
                    // A corrupt stream cannot be resynchronised; drop what we have.
                    crate::log(&format!("bad frame from host: {e}"));
                    self.buf.clear();
                }
            }
            let chunk = self
                .rx
                .recv()
                .await
                .ok_or_else(|| io::Error::other("agent port closed"))?;
            self.buf.extend_from_slice(&chunk);
        }
    }
}

/// The outbound side: frames from every task, encoded in order onto the port; a flush
/// resolves once all frames queued before it are written.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Frames to send.
    pub frames: mpsc::Sender<Frame>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
}

impl Outbound {
    fn start(port: mpsc::Sender<PortOut>) -> Outbound {
        let (frames, mut frame_rx) = mpsc::channel::<Frame>(64);
        let (flushes, mut flush_rx) = mpsc::channel::<oneshot::Sender<()>>(1);
        let encode = |frame: Frame| {
            let mut buf = BytesMut::new();
            match FrameCodec.encode(frame, &mut buf) {
                Ok(()) => Some(PortOut::Data(buf.to_vec())),
                Err(e) => {
                    crate::log(&format!("encode: {e}"));
                    None
                }
            }
        };
        spawn_local(async move {
            loop {
                tokio::select! {
                    frame = frame_rx.recv() => {
                        let Some(frame) = frame else { return };
                        if let Some(out) = encode(frame) {
                            if port.send(out).await.is_err() { return; }
                        }
                    }
                    Some(done) = flush_rx.recv() => {
                        while let Ok(frame) = frame_rx.try_recv() {
                            if let Some(out) = encode(frame) {
                                if port.send(out).await.is_err() { return; }
                            }
                        }
                        if port.send(PortOut::Flush(done)).await.is_err() { return; }
                    }
                }
            }
        });
        Outbound { frames, flushes }
    }

    /// Waits until every frame queued so far has been written to the port.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.flushes.send(done).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// Serves the host until it asks for shutdown.
pub async fn serve(port: Port, start_ns: u64) -> io::Result<()> {
    LocalSet::new().run_until(serve_local(port, start_ns)).await
}

async fn serve_local(port: Port, start_ns: u64) -> io::Result<()> {
    let Port { rx, tx } = port;
    let outbound = Outbound::start(tx);
    let out = outbound.frames.clone();
    let mut inbound = Inbound {
        rx,
        buf: BytesMut::new(),
    };
    let hello = wait_for_hello(&mut inbound).await?;
    let control = |msg| Frame::new(CONTROL_SESSION, msg);
    if hello.version != PROTOCOL_VERSION {
        let msg = format!(
            "protocol v{} not supported; this agent speaks v{PROTOCOL_VERSION}",
            hello.version
        );
        let _ = out.send(control(Message::Error(msg.clone()))).await;
        return Err(io::Error::other(msg));
    }
    let renewed = crate::fresh::reseed(&hello.entropy).and_then(|()| match hello.resumed {
        true => crate::fresh::forget_disk_contents(),
        false => Ok(()),
    });
    let writable = match renewed
        .and_then(|()| init::enter_root(&hello.config))
        .and_then(|writable| {
            init::identity(&hello.config.hostname, hello.host_time)?;
            crate::net::configure(hello.config.network.as_ref())?;
            init::guest_files(&hello.config)?;
            Ok(writable)
        }) {
        Ok(writable) => writable,
        Err(e) => {
            let _ = out
                .send(control(Message::Error(format!("guest setup failed: {e}"))))
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(e);
        }
    };
    let timings = BootTimings {
        agent_start_ns: start_ns,
        ready_ns: init::boottime_ns(),
    };
    let ready = Ready {
        version: PROTOCOL_VERSION,
        timings,
    };
    out.send(control(Message::Ready(ready)))
        .await
        .map_err(|_| io::Error::other("port closed"))?;

    let reaper = Reaper::default();
    spawn_local(reaper.clone().run());
    let active = Sessions::default();
    let mut writable = Some(writable);
    let mut inboxes: HashMap<u32, mpsc::UnboundedSender<Message>> = HashMap::new();
    loop {
        let frame = inbound.next().await?;
        match frame.msg {
            Message::Exec(req) => {
                inboxes.retain(|_, tx| !tx.is_closed());
                if frame.id == CONTROL_SESSION || inboxes.contains_key(&frame.id) {
                    let msg = format!("session id {} is in use", frame.id);
                    let _ = out.send(Frame::new(frame.id, Message::Error(msg))).await;
                    continue;
                }
                if writable.is_none() {
                    let failure = SpawnFailure {
                        kind: SpawnErrorKind::Other,
                        message: "the sandbox is stopping".into(),
                    };
                    let _ = out.send(Frame::new(frame.id, Message::SpawnFailed(failure))).await;
                    continue;
                }
                let link = Link {
                    id: frame.id,
                    out: out.clone(),
                };
                match spawn::spawn(&req) {
                    Ok(child) => {
                        // Registered before the next await: the reaper cannot miss this pid.
                        let exit = reaper.watch(child.pid);
                        let (tx, inbox) = mpsc::unbounded_channel();
                        inboxes.insert(frame.id, tx);
                        spawn_local(session::run(link, child, exit, inbox, active.enter()));
                    }
                    Err(failure) => {
                        let _ = out.send(Frame::new(frame.id, Message::SpawnFailed(failure))).await;
                    }
                }
            }
            Message::Fs(req) => {
                inboxes.retain(|_, tx| !tx.is_closed());
                let refusal = if frame.id == CONTROL_SESSION || inboxes.contains_key(&frame.id) {
                    Some(format!("session id {} is in use", frame.id))
                } else if writable.is_none() {
                    Some("the sandbox is stopping".to_string())
                } else {
                    None
                };
                if let Some(message) = refusal {
                    let failure = msb_protocol::FsFailure {
                        kind: msb_protocol::FsErrorKind::Other,
                        message,
                    };
                    let _ = out.send(Frame::new(frame.id, Message::FsFailed(failure))).await;
                    continue;
                }
                let link = Link {
                    id: frame.id,
                    out: out.clone(),
                };
                let (tx, inbox) = mpsc::unbounded_channel();
                inboxes.insert(frame.id, tx);
                spawn_local(files::run(link, req, inbox, active.enter()));
            }
            Message::MetricsRequest => {
                let _ = out
                    .send(Frame::new(frame.id, Message::Metrics(metrics::sample())))
                    .await;
            }
            Message::Ping => {
                let _ = out.send(Frame::new(frame.id, Message::Pong)).await;
            }
            Message::Shutdown(request) => {
                // Frames keep flowing meanwhile: output of stopping processes, credit.
                if let Some(writable) = writable.take() {
                    spawn_local(shutdown::run(request, active.clone(), writable, outbound.clone()));
                }
            }
            Message::Hello(hello) => {
                // A host that reconnects starts over with a Hello; the guest is already set up.
                // One that resumed this guest from a snapshot, as a new sandbox, brings fresh
                // randomness, the time (the guest's stood still while it was saved), the
                // sandbox's name (and a machine id of its own) and its supervisor's
                // interception CA.
                if hello.resumed {
                    let renewed = crate::fresh::reseed(&hello.entropy)
                        .and_then(|()| crate::fresh::renew_machine_id())
                        .and_then(|()| init::identity(&hello.config.hostname, hello.host_time))
                        .and_then(|()| init::identity_files(&hello.config));
                    if let Err(e) = renewed {
                        crate::log(&format!("renewing a resumed guest: {e}"));
                    }
                }
                let ready = Ready {
                    version: PROTOCOL_VERSION,
                    timings,
                };
                let _ = out.send(control(Message::Ready(ready))).await;
            }
            msg => {
                if let Some(tx) = inboxes.get(&frame.id) {
                    let _ = tx.send(msg);
                }
            }
        }
    }
}

async fn wait_for_hello(inbound: &mut Inbound) -> io::Result<Hello> {
    loop {
        match inbound.next().await?.msg {
            Message::Hello(hello) => return Ok(hello),
            other => crate::log(&format!("ignoring {other:?} before handshake")),
        }
    }
}
