//! The agent's service loop: handshake, then routing frames to exec sessions.

use crate::port::Port;
use crate::reaper::Reaper;
use crate::session::{self, Link};
use crate::{init, metrics, power, spawn};
use bytes::BytesMut;
use msb_protocol::{BootTimings, Frame, FrameCodec, Hello, Message, Ready, CONTROL_SESSION, PROTOCOL_VERSION};
use std::collections::HashMap;
use std::io;
use std::time::Duration;
use tokio::sync::mpsc;
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

/// Serves the host until it asks for shutdown.
pub async fn serve(port: Port, start_ns: u64) -> io::Result<()> {
    LocalSet::new().run_until(serve_local(port, start_ns)).await
}

async fn serve_local(port: Port, start_ns: u64) -> io::Result<()> {
    let Port { rx, tx } = port;
    let (out, mut out_rx) = mpsc::channel::<Frame>(64);
    spawn_local(async move {
        while let Some(frame) = out_rx.recv().await {
            let mut buf = BytesMut::new();
            match FrameCodec.encode(frame, &mut buf) {
                Ok(()) if tx.send(buf.to_vec()).await.is_ok() => {}
                Ok(()) => return,
                Err(e) => crate::log(&format!("encode: {e}")),
            }
        }
    });
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
    if let Err(e) =
        init::enter_root(&hello.config).and_then(|()| init::identity(&hello.config.hostname, hello.host_time))
    {
        let _ = out
            .send(control(Message::Error(format!("guest setup failed: {e}"))))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        return Err(e);
    }
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
    let mut sessions: HashMap<u32, mpsc::UnboundedSender<Message>> = HashMap::new();
    loop {
        let frame = inbound.next().await?;
        match frame.msg {
            Message::Exec(req) => {
                sessions.retain(|_, tx| !tx.is_closed());
                if frame.id == CONTROL_SESSION || sessions.contains_key(&frame.id) {
                    let msg = format!("session id {} is in use", frame.id);
                    let _ = out.send(Frame::new(frame.id, Message::Error(msg))).await;
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
                        sessions.insert(frame.id, tx);
                        spawn_local(session::run(link, child, exit, inbox));
                    }
                    Err(failure) => {
                        let _ = out.send(Frame::new(frame.id, Message::SpawnFailed(failure))).await;
                    }
                }
            }
            Message::MetricsRequest => {
                let _ = out
                    .send(Frame::new(frame.id, Message::Metrics(metrics::sample())))
                    .await;
            }
            Message::Shutdown => {
                power::stop_all_processes(Duration::from_secs(2));
                power::power_off();
            }
            Message::Hello(_) => {
                // A host that reconnects starts over with a Hello; the guest is already set up.
                let ready = Ready {
                    version: PROTOCOL_VERSION,
                    timings,
                };
                let _ = out.send(control(Message::Ready(ready))).await;
            }
            msg => {
                if let Some(tx) = sessions.get(&frame.id) {
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
