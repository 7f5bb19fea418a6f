//! The processes one sandbox runs for envd's API. As in E2B, a process outlives the stream
//! that started it: it is listed, signalled, fed input and re-joined (`Connect`) by pid or
//! tag until it ends. A pump task per process owns its exec handle and fans each event out
//! to the streams watching it.

use microsandbox::{ExecEvent, ExecHandle, ExecSink, ExecStatus};
use msb_envd::process::{process_event, ProcessConfig, ProcessEvent, ProcessInfo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Events a watcher may fall behind by before the process waits for it.
const WATCHER_BACKLOG: usize = 64;

/// One sandbox's processes, by guest pid.
#[derive(Debug, Default)]
pub struct ProcessTable {
    procs: Mutex<HashMap<u32, Arc<Process>>>,
}

/// A running process.
#[derive(Debug)]
pub struct Process {
    /// What was started.
    pub config: ProcessConfig,
    /// The caller's tag.
    pub tag: Option<String>,
    /// Its guest pid.
    pub pid: u32,
    /// Its input and signals.
    pub sink: ExecSink,
    watchers: Mutex<Vec<mpsc::Sender<ProcessEvent>>>,
}

impl Process {
    /// A stream of this process's events from now on, ending after its end event.
    pub fn watch(&self) -> mpsc::Receiver<ProcessEvent> {
        let (tx, rx) = mpsc::channel(WATCHER_BACKLOG);
        lock(&self.watchers).push(tx);
        rx
    }

    async fn publish(&self, event: ProcessEvent) {
        let watchers: Vec<_> = lock(&self.watchers).clone();
        for tx in watchers {
            if tx.send(event.clone()).await.is_err() {
                lock(&self.watchers).retain(|w| !w.same_channel(&tx));
            }
        }
    }
}

impl ProcessTable {
    /// Registers the process `handle` runs (it has sent its `Started` event) and starts
    /// pumping its events; returns it, with a first watcher already attached.
    pub fn adopt(
        self: &Arc<Self>,
        handle: ExecHandle,
        pid: u32,
        config: ProcessConfig,
        tag: Option<String>,
    ) -> (Arc<Process>, mpsc::Receiver<ProcessEvent>) {
        let process = Arc::new(Process {
            config,
            tag,
            pid,
            sink: handle.stdin(),
            watchers: Mutex::new(Vec::new()),
        });
        let first = process.watch();
        lock(&self.procs).insert(pid, process.clone());
        tokio::spawn(pump(self.clone(), process.clone(), handle));
        (process, first)
    }

    /// The process with guest pid `pid`.
    pub fn by_pid(&self, pid: u32) -> Option<Arc<Process>> {
        lock(&self.procs).get(&pid).cloned()
    }

    /// The process tagged `tag`.
    pub fn by_tag(&self, tag: &str) -> Option<Arc<Process>> {
        lock(&self.procs)
            .values()
            .find(|p| p.tag.as_deref() == Some(tag))
            .cloned()
    }

    /// Every running process, by pid.
    pub fn list(&self) -> Vec<ProcessInfo> {
        let mut infos: Vec<_> = lock(&self.procs)
            .values()
            .map(|p| ProcessInfo {
                config: Some(p.config.clone()),
                pid: p.pid,
                tag: p.tag.clone(),
            })
            .collect();
        infos.sort_by_key(|p| p.pid);
        infos
    }

    /// Forgets every process (the sandbox is gone; their pumps end with its connection).
    pub fn close(&self) {
        lock(&self.procs).clear();
    }
}

/// Moves `process`'s events to its watchers until it ends, then removes it from `table`.
async fn pump(table: Arc<ProcessTable>, process: Arc<Process>, mut handle: ExecHandle) {
    loop {
        let event = match handle.recv().await {
            Ok(Some(ExecEvent::Stdout(bytes))) => data(process_event::data_event::Output::Stdout(bytes)),
            Ok(Some(ExecEvent::Stderr(bytes))) => data(process_event::data_event::Output::Stderr(bytes)),
            Ok(Some(ExecEvent::Started(_))) => continue,
            Ok(Some(ExecEvent::Exited(status))) => end(&ExecStatus::from(status), None),
            Ok(Some(ExecEvent::SpawnFailed(failure))) => {
                let status = ExecStatus::SpawnFailed(failure.clone());
                end(&status, Some(failure.message.clone()))
            }
            Ok(None) => end(
                &ExecStatus::Exited(-1),
                Some("the process's stream ended without a status".into()),
            ),
            Err(e) => end(&ExecStatus::Exited(-1), Some(format!("lost the process: {e}"))),
        };
        let last = matches!(event.event, Some(process_event::Event::End(_)));
        process.publish(event).await;
        if last {
            break;
        }
    }
    lock(&table.procs).remove(&process.pid);
    lock(&process.watchers).clear();
}

fn data(output: process_event::data_event::Output) -> ProcessEvent {
    ProcessEvent {
        event: Some(process_event::Event::Data(process_event::DataEvent {
            output: Some(output),
        })),
    }
}

/// The end event, worded as envd (a Go program) words a process state.
fn end(status: &ExecStatus, error: Option<String>) -> ProcessEvent {
    let (exit_code, exited, text) = match status {
        ExecStatus::Exited(code) => (*code, true, format!("exit status {code}")),
        ExecStatus::Signaled(sig) => (-1, false, format!("signal: {}", signal_name(*sig))),
        ExecStatus::SpawnFailed(failure) => (status.code(), false, failure.message.clone()),
    };
    ProcessEvent {
        event: Some(process_event::Event::End(process_event::EndEvent {
            exit_code,
            exited,
            status: text,
            error,
        })),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGKILL => "killed".into(),
        libc::SIGTERM => "terminated".into(),
        libc::SIGINT => "interrupt".into(),
        libc::SIGHUP => "hangup".into(),
        other => format!("signal {other}"),
    }
}

/// The start event of the process `pid`.
pub fn started(pid: u32) -> ProcessEvent {
    ProcessEvent {
        event: Some(process_event::Event::Start(process_event::StartEvent { pid })),
    }
}

/// A keep-alive event.
pub fn keepalive() -> ProcessEvent {
    ProcessEvent {
        event: Some(process_event::Event::Keepalive(process_event::KeepAlive {})),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each change under these locks is one collection operation.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
