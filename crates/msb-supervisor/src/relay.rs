//! One client connection: after the handshake, its exec sessions are relayed to the agent
//! frame by frame under fresh agent session ids. Credit messages pass through untouched, so
//! flow control runs end to end: a slow client holds back the guest process, and the
//! supervisor never buffers more than the windows allow. Control requests (stop, kill,
//! metrics) are served here.

use crate::execlog::{describe, ExecLog};
use crate::hostproc;
use futures::{SinkExt, StreamExt};
use msb_protocol::client::AgentClient;
use msb_protocol::{
    Control, Frame, FrameCodec, GuestMetrics, Message, Ready, SandboxMetrics, CONTROL_SESSION, PROTOCOL_VERSION,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{FramedRead, FramedWrite};

/// How the VM is to be stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHow {
    /// The guest syncs and powers off; killed after the grace period.
    Graceful(Duration),
    /// Killed at once.
    Kill,
}

/// A request to end the sandbox, with what to record and whom to tell when it is done.
#[derive(Debug)]
pub struct StopRequest {
    /// How.
    pub how: StopHow,
    /// Why, as recorded in the store.
    pub reason: String,
    /// The exit code to record (the main command's).
    pub exit_code: Option<i32>,
    /// Told once the VM is down and the state recorded.
    pub done: Option<oneshot::Sender<()>>,
}

/// When the sandbox last had something running in it.
#[derive(Debug)]
pub struct Activity {
    active: AtomicUsize,
    last_end: Mutex<Instant>,
}

impl Activity {
    /// No session yet; idle since now.
    pub fn new() -> Activity {
        Activity {
            active: AtomicUsize::new(0),
            last_end: Mutex::new(Instant::now()),
        }
    }

    /// A session started.
    pub fn begin(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    /// A session ended.
    pub fn end(&self) {
        if let Ok(mut last) = self.last_end.lock() {
            *last = Instant::now();
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sessions open now.
    pub fn running(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// How long nothing has run; zero while a session is open.
    pub fn idle_for(&self) -> Duration {
        if self.active.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last_end.lock().map(|l| l.elapsed()).unwrap_or_default()
    }
}

/// What every connection of one supervisor shares.
#[derive(Debug)]
pub struct Shared {
    /// The agent connection.
    pub agent: Arc<AgentClient>,
    /// The agent's handshake answer, handed to each client.
    pub ready: Ready,
    /// Sessions running and idle time.
    pub activity: Activity,
    /// The exec log.
    pub log: ExecLog,
    /// Requests to stop, served by the main loop.
    pub stop: mpsc::Sender<StopRequest>,
    /// Connections open now.
    pub connections: watch::Sender<usize>,
    /// Host processes of the VM, for metrics.
    pub vm_pids: Vec<u32>,
    /// Guest RAM configured, bytes.
    pub memory_limit: u64,
    /// Virtual CPUs of the guest.
    pub cpus: u32,
    /// When the sandbox started.
    pub started: Instant,
    /// Whether an owner has connected (an owned sandbox stops if none comes).
    pub owner_seen: std::sync::atomic::AtomicBool,
    /// The exit code of the sandbox's command, once it has ended.
    pub main_exit: Mutex<Option<i32>>,
    /// Draining: no new processes.
    pub draining: std::sync::atomic::AtomicBool,
    /// The sandbox's network stack, when it has a network.
    pub network: Option<crate::network::Network>,
    /// Saves the sandbox for snapshots.
    pub saver: crate::snapshot::Saver,
}

/// Counts a connection for as long as it lives.
struct Counted<'a>(&'a watch::Sender<usize>);

impl<'a> Counted<'a> {
    fn new(connections: &'a watch::Sender<usize>) -> Self {
        connections.send_modify(|n| *n += 1);
        Counted(connections)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Client session id → its route, for the sessions still open and held by the client.
type Sessions = Arc<Mutex<HashMap<u32, Route>>>;

/// Where a client's session goes.
#[derive(Clone)]
struct Route {
    /// The agent's session id.
    agent: u32,
    /// Set when the client lets go of the session ([`Message::Release`]).
    released: Arc<std::sync::atomic::AtomicBool>,
}

/// Serves one client until it disconnects.
pub async fn serve_client(stream: UnixStream, shared: Arc<Shared>) {
    let _counted = Counted::new(&shared.connections);
    let (rd, wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, FrameCodec);
    let (out, out_rx) = mpsc::channel::<Frame>(64);
    tokio::spawn(write_loop(FramedWrite::new(wr, FrameCodec), out_rx));
    let mut owner = match reader.next().await {
        Some(Ok(Frame {
            msg: Message::Connect { version, owner },
            ..
        })) if version == PROTOCOL_VERSION => owner,
        Some(Ok(Frame {
            msg: Message::Connect { version, .. },
            ..
        })) => {
            let msg = format!("client speaks protocol v{version}, this supervisor v{PROTOCOL_VERSION}");
            let _ = out.send(Frame::new(CONTROL_SESSION, Message::Error(msg))).await;
            return;
        }
        _ => return,
    };
    if owner {
        shared.owner_seen.store(true, Ordering::SeqCst);
    }
    if out
        .send(Frame::new(CONTROL_SESSION, Message::Ready(shared.ready.clone())))
        .await
        .is_err()
    {
        return;
    }
    let sessions: Sessions = Arc::default();
    while let Some(Ok(frame)) = reader.next().await {
        let id = frame.id;
        match frame.msg {
            Message::Exec(_) if shared.draining.load(Ordering::SeqCst) => {
                let msg = Message::Error("the sandbox is draining: it takes no new processes".into());
                let _ = out.send(Frame::new(id, msg)).await;
            }
            Message::Exec(req) => open_session(id, Opening::Exec(req), &shared, &sessions, &out).await,
            // File operations are not processes: a draining sandbox still serves them.
            Message::Fs(req) => open_session(id, Opening::Fs(req), &shared, &sessions, &out).await,
            Message::Control(Control::Detach) => {
                owner = false;
                let _ = out.send(Frame::new(id, Message::Done)).await;
            }
            Message::Control(control) => {
                tokio::spawn(serve_control(id, control, shared.clone(), out.clone()));
            }
            Message::Release => {
                // The process runs on; the connection's end no longer kills it.
                if let Some(route) = sessions.lock().ok().and_then(|mut s| s.remove(&id)) {
                    route.released.store(true, Ordering::SeqCst);
                }
            }
            msg @ (Message::Stdin(_)
            | Message::StdinEof
            | Message::Credit { .. }
            | Message::Signal(_)
            | Message::Resize(_)) => {
                let agent_id = sessions.lock().ok().and_then(|s| s.get(&id).map(|r| r.agent));
                if let Some(agent_id) = agent_id {
                    let _ = shared.agent.mux().send(agent_id, msg).await;
                }
            }
            other => {
                let msg = format!("unexpected message from client: {other:?}");
                let _ = out.send(Frame::new(id, Message::Error(msg))).await;
            }
        }
    }
    // The client is gone: its processes go too.
    let open: Vec<u32> = sessions
        .lock()
        .map(|s| s.values().map(|r| r.agent).collect())
        .unwrap_or_default();
    for agent_id in open {
        let _ = shared.agent.mux().send(agent_id, Message::Signal(libc::SIGKILL)).await;
    }
    if owner {
        let request = StopRequest {
            how: StopHow::Graceful(Duration::from_secs(5)),
            reason: "its owner disconnected".into(),
            exit_code: None,
            done: None,
        };
        let _ = shared.stop.send(request).await;
    }
}

/// What opens a relayed session.
enum Opening {
    /// A process.
    Exec(msb_protocol::ExecRequest),
    /// A file operation.
    Fs(msb_protocol::FsRequest),
}

/// Starts relaying client session `id` as a new agent session opened by `opening`.
async fn open_session(id: u32, opening: Opening, shared: &Arc<Shared>, sessions: &Sessions, out: &mpsc::Sender<Frame>) {
    let in_use = id == CONTROL_SESSION || sessions.lock().map(|s| s.contains_key(&id)).unwrap_or(true);
    let opened = if in_use {
        Err(format!("session id {id} is in use"))
    } else {
        shared.agent.mux().open(None).map_err(|e| e.to_string())
    };
    let (agent_id, mut from_agent) = match opened {
        Ok(pair) => pair,
        Err(msg) => {
            let _ = out.send(Frame::new(id, Message::Error(msg))).await;
            return;
        }
    };
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Ok(mut s) = sessions.lock() {
        let route = Route {
            agent: agent_id,
            released: released.clone(),
        };
        s.insert(id, route);
    }
    shared.activity.begin();
    let entry = match &opening {
        Opening::Exec(req) => shared.log.started(req),
        Opening::Fs(req) => shared.log.started_fs(req),
    };
    let started = Instant::now();
    let (shared2, sessions2, out2) = (shared.clone(), sessions.clone(), out.clone());
    tokio::spawn(async move {
        let mut outcome = "ended: the sandbox stopped".to_string();
        while let Some(msg) = from_agent.recv().await {
            let last = msg.ends_session();
            match &msg {
                Message::Exited(status) => outcome = describe(*status),
                Message::SpawnFailed(f) => outcome = format!("failed to start: {}", f.message),
                Message::Error(e) => outcome = format!("error: {e}"),
                Message::FsDone(_) => outcome = "done".into(),
                Message::FsFailed(f) => outcome = format!("failed: {}", f.message),
                _ => {}
            }
            if released.load(Ordering::SeqCst) {
                // Nobody reads it: discard the output and let the process write more.
                if let Some((stream, bytes)) = msg.output_len() {
                    let _ = shared2
                        .agent
                        .mux()
                        .send(agent_id, Message::Credit { stream, bytes })
                        .await;
                }
                if last {
                    break;
                }
                continue;
            }
            // Keep draining even if the client is gone, so the session is accounted for.
            let _ = out2.send(Frame::new(id, msg)).await;
            if last {
                break;
            }
        }
        if outcome.starts_with("ended:") && !released.load(Ordering::SeqCst) {
            let msg = Message::Error("the sandbox stopped".into());
            let _ = out2.send(Frame::new(id, msg)).await;
        }
        // A released session left the map already; its id may name a new session by now.
        if !released.load(Ordering::SeqCst) {
            if let Ok(mut s) = sessions2.lock() {
                s.remove(&id);
            }
        }
        shared2.log.ended(entry, &outcome, started.elapsed());
        shared2.activity.end();
    });
    let request = match opening {
        Opening::Exec(req) => Message::Exec(req),
        Opening::Fs(req) => Message::Fs(req),
    };
    let _ = shared.agent.mux().send(agent_id, request).await;
}

async fn serve_control(id: u32, control: Control, shared: Arc<Shared>, out: mpsc::Sender<Frame>) {
    let reply = match control {
        Control::Stop { grace_ms } => {
            let how = StopHow::Graceful(Duration::from_millis(grace_ms.into()));
            stop(&shared, how, "stopped on request").await
        }
        Control::Kill => stop(&shared, StopHow::Kill, "killed on request").await,
        Control::Metrics => match metrics(&shared).await {
            Ok(m) => Message::SandboxMetrics(m),
            Err(e) => Message::Error(format!("measuring the sandbox: {e}")),
        },
        Control::Drain => {
            shared.draining.store(true, Ordering::SeqCst);
            // New execs are refused from now on; the running ones end by themselves.
            while shared.activity.running() > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stop(&shared, StopHow::Graceful(Duration::from_secs(10)), "drained").await
        }
        // A sandbox on its way out is not saved: whatever resumed it would stop at once.
        Control::Snapshot if shared.draining.load(Ordering::SeqCst) || shared.stop.is_closed() => {
            Message::Error("saving the sandbox: it is stopping".into())
        }
        Control::Snapshot => match shared.saver.save().await {
            Ok(saved) => {
                shared.log.note(&format!(
                    "saved for a snapshot (paused {} ms)",
                    saved.paused.as_millis()
                ));
                Message::Done
            }
            Err(e) => Message::Error(format!("saving the sandbox: {e}")),
        },
        // Handled by the connection itself.
        Control::Detach => Message::Done,
    };
    let _ = out.send(Frame::new(id, reply)).await;
}

/// Asks the main loop to stop and waits until it has.
async fn stop(shared: &Shared, how: StopHow, reason: &str) -> Message {
    let (done, finished) = oneshot::channel();
    let request = StopRequest {
        how,
        reason: reason.into(),
        exit_code: None,
        done: Some(done),
    };
    if shared.stop.send(request).await.is_err() {
        // The main loop is already stopping the sandbox for another reason.
        return Message::Done;
    }
    let _ = finished.await;
    Message::Done
}

/// Guest and host use over a quarter of a second; CPU use is in tenths of a percent of one
/// CPU (the guest's tick counters cover all its CPUs together).
async fn metrics(shared: &Shared) -> Result<SandboxMetrics, msb_protocol::client::ClientError> {
    const WINDOW: Duration = Duration::from_millis(250);
    let host = |pids: &[u32]| pids.iter().map(|p| hostproc::cpu_ticks(*p)).sum::<u64>();
    let first = guest(&shared.agent).await?;
    let host_first = host(&shared.vm_pids);
    let t0 = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let last = guest(&shared.agent).await?;
    let host_last = host(&shared.vm_pids);
    let secs = t0.elapsed().as_secs_f64();
    let host_ticks = host_last.saturating_sub(host_first);
    Ok(SandboxMetrics {
        guest: last,
        guest_cpu_permille: guest_cpu_permille(&first, &last, shared.cpus),
        host_rss: shared.vm_pids.iter().map(|p| hostproc::rss_bytes(*p)).sum(),
        host_cpu_permille: host_cpu_permille(host_ticks, hostproc::ticks_per_second(), secs),
        memory_limit: shared.memory_limit,
        uptime_ms: shared.started.elapsed().as_millis() as u64,
        network: shared.network.as_ref().map(crate::network::Network::counters),
    })
}

/// Guest CPU use between two samples, in tenths of a percent of one CPU: the tick counters
/// cover all `cpus` together, so the busy share of them is scaled by their number.
fn guest_cpu_permille(first: &GuestMetrics, last: &GuestMetrics, cpus: u32) -> u32 {
    let busy = last.cpu_busy_ticks.saturating_sub(first.cpu_busy_ticks) as f64;
    let total = last.cpu_total_ticks.saturating_sub(first.cpu_total_ticks) as f64;
    let cpus = f64::from(cpus.max(1));
    let permille = if total > 0.0 { busy / total * 1000.0 * cpus } else { 0.0 };
    permille.round() as u32
}

/// CPU use of `ticks` clock ticks spent over `secs` seconds, in tenths of a percent of one CPU.
fn host_cpu_permille(ticks: u64, ticks_per_second: u64, secs: f64) -> u32 {
    (ticks as f64 / ticks_per_second as f64 / secs * 1000.0).round() as u32
}

async fn guest(agent: &AgentClient) -> Result<msb_protocol::GuestMetrics, msb_protocol::client::ClientError> {
    let asked = tokio::time::timeout(Duration::from_secs(5), agent.request(Message::MetricsRequest)).await;
    let answer = asked.map_err(|_| {
        msb_protocol::client::ClientError::Unexpected("the guest agent did not answer within 5 s".into())
    })?;
    match answer? {
        Message::Metrics(m) => Ok(m),
        other => Err(msb_protocol::client::ClientError::Unexpected(format!("{other:?}"))),
    }
}

async fn write_loop(
    mut writer: FramedWrite<tokio::net::unix::OwnedWriteHalf, FrameCodec>,
    mut rx: mpsc::Receiver<Frame>,
) {
    while let Some(frame) = rx.recv().await {
        if writer.send(frame).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests;
