//! A sandbox's logs: its command's output, its exec sessions, the guest console, the
//! supervisor's diagnostics; read in bounded chunks, and followed while it runs.

use crate::{Microsandbox, MicrosandboxError, MicrosandboxResult, SandboxState};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

/// Which log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// Output of the sandbox's command (`msb run -d … -- CMD`, `msb create … -- CMD`).
    Output,
    /// One line per exec session (start, user, directory, command; how it ended) and the
    /// sandbox's starts and stops with their reasons.
    Exec,
    /// The guest's console: kernel and agent messages.
    Console,
    /// The supervisor's own diagnostics.
    Supervisor,
}

impl std::str::FromStr for LogSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "output" => Ok(LogSource::Output),
            "exec" => Ok(LogSource::Exec),
            "console" => Ok(LogSource::Console),
            "supervisor" => Ok(LogSource::Supervisor),
            other => Err(format!("unknown log '{other}': output, exec, console or supervisor")),
        }
    }
}

/// The largest chunk [`LogReader::next_chunk`] returns.
const CHUNK: usize = 64 * 1024;

/// How often a followed log is looked at again.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// A log being read from the start; with `follow`, until its sandbox stops.
#[derive(Debug)]
pub struct LogReader {
    msb: Microsandbox,
    name: String,
    path: PathBuf,
    offset: u64,
    follow: bool,
    /// The sandbox was seen stopped: what remains is read, then the log ends.
    draining: bool,
}

impl Microsandbox {
    /// Opens a sandbox's log: `source` (default: its command's output when it has a
    /// command, else its exec log); for the console, `boot` counts boots back from the last
    /// one (the last five are kept). With `follow`, reading waits for more while it runs.
    pub async fn logs(
        &self,
        name: &str,
        source: Option<LogSource>,
        boot: usize,
        follow: bool,
    ) -> MicrosandboxResult<LogReader> {
        let info = self.get(name).await?;
        let source = source.unwrap_or(if info.spec.command.is_some() {
            LogSource::Output
        } else {
            LogSource::Exec
        });
        let file = match source {
            LogSource::Output => "output.log",
            LogSource::Exec => "exec.log",
            LogSource::Console => "console.log",
            LogSource::Supervisor => "supervisor.log",
        };
        let mut path = self.paths().sandbox_dir(name).join("logs").join(file);
        if source == LogSource::Console {
            path = msb_boot::console::numbered(&path, boot);
        } else if boot > 0 {
            return Err(MicrosandboxError::InvalidArgument(
                "a boot number applies to the console log only".into(),
            ));
        }
        Ok(LogReader {
            msb: self.clone(),
            name: name.to_string(),
            path,
            offset: 0,
            follow,
            draining: false,
        })
    }
}

impl LogReader {
    /// The next bytes of the log (at most 64 KiB); `None` at its end (with `follow`: once
    /// the sandbox is no longer running and everything it wrote has been read).
    pub async fn next_chunk(&mut self) -> MicrosandboxResult<Option<Vec<u8>>> {
        loop {
            let chunk = read_at(&self.path, self.offset)?;
            if !chunk.is_empty() {
                self.offset += chunk.len() as u64;
                return Ok(Some(chunk));
            }
            if !self.follow || self.draining {
                return Ok(None);
            }
            let running = self
                .msb
                .get(&self.name)
                .await
                .is_ok_and(|i| i.state == SandboxState::Running);
            if running {
                tokio::time::sleep(FOLLOW_POLL).await;
            } else {
                // What was written while it stopped is still read.
                self.draining = true;
            }
        }
    }
}

/// Up to [`CHUNK`] bytes of `path` from `offset` (none when it is missing).
fn read_at(path: &std::path::Path, offset: u64) -> MicrosandboxResult<Vec<u8>> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(Vec::new());
    };
    let context = || format!("reading {}", path.display());
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| MicrosandboxError::io(context())(e))?;
    let mut buf = Vec::with_capacity(CHUNK);
    file.take(CHUNK as u64)
        .read_to_end(&mut buf)
        .map_err(|e| MicrosandboxError::io(context())(e))?;
    Ok(buf)
}
