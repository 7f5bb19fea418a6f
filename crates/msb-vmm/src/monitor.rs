//! QEMU's machine protocol (QMP) on the monitor socket msb hands every QEMU: pausing and
//! resuming the guest, and saving it into a file msb opened (see `VmProcess::take_monitor`).
//!
//! Written here rather than taken from a QMP crate: saving needs the file passed over the
//! socket as a descriptor (`getfd`, SCM_RIGHTS), which none of them does, and the handful
//! of commands msb sends fit in this file. QEMU's replies are untrusted like any guest-
//! facing input: a line longer than [`MAX_LINE`] ends the conversation.

use crate::VmmError;
use serde_json::{json, Value};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;

/// Longest reply line taken from QEMU (its replies to msb's commands are a few hundred bytes).
const MAX_LINE: usize = 1 << 20;
/// How often a running migration is asked how far it got.
const POLL: Duration = Duration::from_millis(2);
/// Most events kept while waiting for replies; older ones go (msb waits for one kind only).
const MAX_EVENTS: usize = 64;
/// The bandwidth a save may use, in bytes a second: QEMU's default (128 MiB/s) would make
/// saving a 40 MB guest take a third of a second; a file can take it as fast as it comes.
const SAVE_BANDWIDTH: u64 = 16 << 30;
/// The id QEMU knows the agent's virtio-serial port by.
pub(crate) const AGENT_PORT_ID: &str = "agent-port";

/// A QMP conversation with one QEMU, its capabilities negotiated.
#[derive(Debug)]
pub struct Monitor {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Events read while waiting for replies, oldest first.
    events: Vec<Value>,
}

fn failed(detail: impl Into<String>) -> VmmError {
    VmmError::Failed {
        what: "QEMU's monitor".into(),
        detail: detail.into(),
    }
}

impl Monitor {
    /// Reads QEMU's greeting on its monitor socket `stream` and leaves negotiation mode.
    pub async fn connect(stream: UnixStream) -> Result<Monitor, VmmError> {
        let mut monitor = Monitor {
            stream,
            buf: Vec::new(),
            events: Vec::new(),
        };
        let greeting = monitor.next().await?;
        if greeting.get("QMP").is_none() {
            return Err(failed(format!("no greeting but {greeting}")));
        }
        monitor.execute("qmp_capabilities", json!({})).await?;
        Ok(monitor)
    }

    /// The next message from QEMU.
    async fn next(&mut self) -> Result<Value, VmmError> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return serde_json::from_slice(&line).map_err(|e| failed(format!("an unreadable reply: {e}")));
            }
            if self.buf.len() > MAX_LINE {
                return Err(failed("a reply longer than any QEMU sends"));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(VmmError::io("reading QEMU's monitor"))?;
            if n == 0 {
                return Err(failed("QEMU closed its monitor"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The reply to the command just sent; events read meanwhile are kept.
    async fn reply(&mut self, command: &str) -> Result<Value, VmmError> {
        loop {
            let msg = self.next().await?;
            if msg.get("event").is_some() {
                if self.events.len() == MAX_EVENTS {
                    self.events.remove(0);
                }
                self.events.push(msg);
            } else if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            } else if let Some(error) = msg.get("error") {
                let desc = error.get("desc").and_then(Value::as_str).unwrap_or("no reason given");
                return Err(failed(format!("{command}: {desc}")));
            } else {
                return Err(failed(format!("{command}: an unexpected reply {msg}")));
            }
        }
    }

    /// Runs `command` with `arguments` and returns what it returned.
    pub(crate) async fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, VmmError> {
        let mut line = json!({ "execute": command, "arguments": arguments }).to_string();
        line.push('\n');
        self.stream
            .write_all(line.as_bytes())
            .await
            .map_err(VmmError::io("writing to QEMU's monitor"))?;
        self.reply(command).await
    }

    /// Hands QEMU `file` under the name `name` (QMP `getfd`).
    async fn pass_file(&mut self, name: &str, file: &File) -> Result<(), VmmError> {
        let line = format!("{}\n", json!({ "execute": "getfd", "arguments": { "fdname": name } }));
        let fds = [file.as_raw_fd()];
        let mut sent = 0;
        while sent < line.len() {
            // The descriptor goes with the first byte; the rest of the line follows plainly.
            let rest = &line.as_bytes()[sent..];
            let cmsgs = if sent == 0 {
                vec![nix::sys::socket::ControlMessage::ScmRights(&fds)]
            } else {
                Vec::new()
            };
            sent += self
                .stream
                .async_io(Interest::WRITABLE, || {
                    nix::sys::socket::sendmsg::<()>(
                        self.stream.as_raw_fd(),
                        &[std::io::IoSlice::new(rest)],
                        &cmsgs,
                        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
                        None,
                    )
                    .map_err(std::io::Error::from)
                })
                .await
                .map_err(VmmError::io("passing a file to QEMU"))?;
        }
        self.reply("getfd").await.map(drop)
    }

    /// Waits until the guest opens the agent's port: it has booted, and its agent waits for
    /// the host's first word.
    pub async fn wait_agent_port_open(&mut self) -> Result<(), VmmError> {
        let opened = |e: &Value| {
            e["event"] == "VSERPORT_CHANGE" && e["data"]["id"] == AGENT_PORT_ID && e["data"]["open"] == true
        };
        if let Some(at) = self.events.iter().position(opened) {
            self.events.drain(..=at);
            return Ok(());
        }
        loop {
            let msg = self.next().await?;
            if opened(&msg) {
                return Ok(());
            }
        }
    }

    /// Pauses the guest and writes its whole state (memory and devices) into `file`. The
    /// guest stays paused: [`Monitor::resume`] goes on.
    pub async fn save(&mut self, file: &File) -> Result<(), VmmError> {
        self.execute("stop", json!({})).await?;
        self.execute("migrate-set-parameters", json!({ "max-bandwidth": SAVE_BANDWIDTH }))
            .await?;
        self.pass_file("snapshot", file).await?;
        self.execute("migrate", json!({ "uri": "fd:snapshot" })).await?;
        self.migration_done("saving the guest").await
    }

    /// [`Monitor::save`] of a guest whose RAM is a shared file ([`crate::GuestMemory::Fills`]):
    /// only its devices' state goes into `file`, the memory stays in its own. A guest
    /// launched over a private copy of that memory resumes it ([`crate::GuestMemory::CopyOf`]).
    pub async fn save_devices(&mut self, file: &File) -> Result<(), VmmError> {
        self.ignore_shared_memory().await?;
        self.save(file).await
    }

    /// Tells QEMU's migration to leave memory mapped shared out (both ends must agree).
    async fn ignore_shared_memory(&mut self) -> Result<(), VmmError> {
        let capability = json!([{ "capability": "x-ignore-shared", "state": true }]);
        self.execute("migrate-set-capabilities", json!({ "capabilities": capability }))
            .await
            .map(drop)
    }

    /// Waits until a guest launched to resume a saved state has loaded it, and starts it.
    /// `deferred` is where QEMU reads a saved state it loads only when told
    /// ([`crate::VmProcess::deferred_load`]): one saved by [`Monitor::save_devices`].
    pub async fn resume_loaded(&mut self, deferred: Option<&str>) -> Result<(), VmmError> {
        if let Some(uri) = deferred {
            self.ignore_shared_memory().await?;
            self.execute("migrate-incoming", json!({ "uri": uri })).await?;
        }
        self.wait_loaded().await?;
        self.resume().await
    }

    /// Waits until a guest launched to resume a saved state has loaded it, and leaves it
    /// paused.
    pub async fn wait_loaded(&mut self) -> Result<(), VmmError> {
        self.migration_done("loading the saved guest").await
    }

    /// Lets a paused guest run again.
    pub async fn resume(&mut self) -> Result<(), VmmError> {
        self.execute("cont", json!({})).await.map(drop)
    }

    /// Waits for the migration under way (out or in) to end; fails if it failed.
    async fn migration_done(&mut self, what: &str) -> Result<(), VmmError> {
        loop {
            let info = self.execute("query-migrate", json!({})).await?;
            match info.get("status").and_then(Value::as_str) {
                Some("completed") => return Ok(()),
                Some("failed" | "cancelled") => {
                    let why = info
                        .get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given");
                    return Err(failed(format!("{what}: {why}")));
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }
}

#[cfg(test)]
mod tests;
