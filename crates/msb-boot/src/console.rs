//! The guest console. QEMU writes it into a pipe; it is copied here into the boot's console
//! log (capped: a guest that floods its console cannot fill the host's disk), earlier boots'
//! logs are kept by rotation, and the kernel's last words (panic, halt, power off, reboot)
//! are picked out so the supervisor can tell how the guest ended.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

/// Console logs kept per sandbox: this boot's and the ones before it.
pub const KEPT_BOOTS: usize = 5;
/// Console bytes written to one boot's log; the rest is counted and its tail kept.
const LOG_CAP: u64 = 8 << 20;
/// Bytes of the end of a capped console kept and written when the console closes.
const TAIL: usize = 64 << 10;
/// Longest line examined for last words (longer lines are cut for matching only).
const LINE_CAP: usize = 4096;

/// How the guest said it ended, on its console. The guest can write anything there, so this
/// is its own account: it decides nothing without other evidence (the VM exiting, the agent
/// not answering).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastWords {
    /// The kernel rebooted (with `-no-reboot`, QEMU exits).
    Rebooted,
    /// The kernel halted: the CPUs stop, QEMU keeps running.
    Halted,
    /// The kernel powered off; without ACPI it halts.
    PoweredOff,
    /// The agent (PID 1) failed and powered the VM off.
    AgentFailed(String),
    /// The kernel panicked, with this message.
    Panicked(String),
}

impl LastWords {
    /// Finds last words in one console line.
    fn in_line(line: &str) -> Option<LastWords> {
        if let Some((_, msg)) = line.split_once("Kernel panic - not syncing: ") {
            return Some(LastWords::Panicked(msg.trim().to_string()));
        }
        if let Some((_, msg)) = line.split_once("msb-agent: fatal: ") {
            return Some(LastWords::AgentFailed(msg.trim().to_string()));
        }
        // Without ACPI a power off halts; the kernel says so ("Power off not available:
        // System halted instead").
        if line.contains("reboot: Power down") || line.contains("reboot: Power off not available") {
            return Some(LastWords::PoweredOff);
        }
        if line.contains("reboot: System halted") {
            return Some(LastWords::Halted);
        }
        if line.contains("reboot: Restarting system") {
            return Some(LastWords::Rebooted);
        }
        None
    }

    /// A panic or an agent failure explains an ending better than what follows it.
    fn rank(&self) -> u8 {
        match self {
            LastWords::Panicked(_) => 3,
            LastWords::AgentFailed(_) => 2,
            _ => 1,
        }
    }
}

/// Moves `console.log` to `console.1.log`, `console.1.log` to `console.2.log` …, keeping
/// [`KEPT_BOOTS`] logs, so the next boot starts a fresh one and the last crash stays readable.
pub fn rotate(log: &Path) -> std::io::Result<()> {
    for n in (1..KEPT_BOOTS).rev() {
        let from = if n == 1 {
            log.to_path_buf()
        } else {
            numbered(log, n - 1)
        };
        match std::fs::rename(&from, numbered(log, n)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// `console.log` of the `back`-th boot before the last one (`console.<back>.log`).
pub fn numbered(log: &Path, back: usize) -> PathBuf {
    if back == 0 {
        return log.to_path_buf();
    }
    let stem = log
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    log.with_file_name(format!("{stem}.{back}.log"))
}

/// Copies the console from `pipe` into `log` until QEMU closes it; publishes last words on
/// the returned channel as they appear.
pub(crate) fn spawn_copier(pipe: pipe::Receiver, log: &Path) -> std::io::Result<watch::Receiver<Option<LastWords>>> {
    let file = std::fs::File::create(log)?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(copy(pipe, file, tx));
    Ok(rx)
}

async fn copy(mut pipe: pipe::Receiver, mut file: std::fs::File, words: watch::Sender<Option<LastWords>>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut line = Vec::new();
    let mut written = 0u64;
    let mut dropped = 0u64;
    let mut tail = VecDeque::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let room = usize::try_from(LOG_CAP.saturating_sub(written))
            .unwrap_or(usize::MAX)
            .min(n);
        if room > 0 && file.write_all(&chunk[..room]).is_ok() {
            written += room as u64;
        }
        if room < n {
            dropped += (n - room) as u64;
            tail.extend(&chunk[room..]);
            let excess = tail.len().saturating_sub(TAIL);
            tail.drain(..excess);
        }
        let publish = |line: &[u8]| {
            if let Some(found) = LastWords::in_line(&String::from_utf8_lossy(line)) {
                words.send_if_modified(|current| match current {
                    Some(seen) if *seen == found || seen.rank() > found.rank() => false,
                    _ => {
                        *current = Some(found);
                        true
                    }
                });
            }
        };
        for &b in chunk {
            if b != b'\n' {
                if line.len() < LINE_CAP {
                    line.push(b);
                }
                continue;
            }
            publish(&line);
            line.clear();
        }
        // A halting CPU may never print the end of its last line.
        publish(&line);
    }
    if dropped > 0 {
        let kept_tail = tail.len() as u64;
        let note = format!(
            "\n[msb: {} bytes of console output past the {} MiB cap were not kept; the last {kept_tail} follow]\n",
            dropped - kept_tail,
            LOG_CAP >> 20
        );
        let _ = file.write_all(note.as_bytes());
        let _ = file.write_all(&tail.into_iter().collect::<Vec<u8>>());
    }
}

/// The last lines of a console log, for error messages.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let start = text.len().saturating_sub(TAIL);
    let text = String::from_utf8_lossy(&text[start..]);
    let mut last: Vec<&str> = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(lines)
        .collect();
    last.reverse();
    last.join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_last_words_are_recognised() {
        let panic = "[    1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009";
        assert_eq!(
            LastWords::in_line(panic),
            Some(LastWords::Panicked(
                "Attempted to kill init! exitcode=0x00000009".into()
            ))
        );
        assert_eq!(LastWords::in_line("reboot: System halted"), Some(LastWords::Halted));
        assert_eq!(LastWords::in_line("reboot: Power down"), Some(LastWords::PoweredOff));
        assert_eq!(
            LastWords::in_line("reboot: Power off not available: System halted instead"),
            Some(LastWords::PoweredOff)
        );
        assert_eq!(
            LastWords::in_line("reboot: Restarting system"),
            Some(LastWords::Rebooted)
        );
        assert_eq!(
            LastWords::in_line("msb-agent: fatal: no virtio port"),
            Some(LastWords::AgentFailed("no virtio port".into()))
        );
        assert_eq!(LastWords::in_line("just a line"), None);
    }

    #[test]
    fn logs_rotate_and_keep_a_bounded_number() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        for boot in 0..KEPT_BOOTS + 3 {
            rotate(&log).unwrap();
            std::fs::write(&log, format!("boot {boot}")).unwrap();
        }
        let last = KEPT_BOOTS + 2;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("boot {last}"));
        assert_eq!(
            std::fs::read_to_string(numbered(&log, 1)).unwrap(),
            format!("boot {}", last - 1)
        );
        let oldest = numbered(&log, KEPT_BOOTS - 1);
        assert_eq!(
            std::fs::read_to_string(oldest).unwrap(),
            format!("boot {}", last - (KEPT_BOOTS - 1))
        );
        assert!(!numbered(&log, KEPT_BOOTS).exists());
    }

    #[tokio::test]
    async fn a_flood_is_capped_and_a_panic_is_not_outranked() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let (rx, mut tx) = std::io::pipe().unwrap();
        let pipe = pipe::Receiver::from_owned_fd(rx.into()).unwrap();
        let mut words = spawn_copier(pipe, &log).unwrap();
        // The writer blocks on a full pipe until the copier (on this runtime) reads: it must
        // not be joined from the runtime's thread.
        let writer = tokio::task::spawn_blocking(move || {
            let line = vec![b'x'; 1023];
            for _ in 0..(LOG_CAP / 1024 + 100) {
                tx.write_all(&line).unwrap();
                tx.write_all(b"\n").unwrap();
            }
            tx.write_all(b"Kernel panic - not syncing: boom\nreboot: Restarting system\nthe end\n")
                .unwrap();
        });
        writer.await.unwrap();
        // The copier ends once the writer's end is gone.
        words.wait_for(|w| w.is_some()).await.unwrap();
        for _ in 0..200 {
            if std::fs::read_to_string(&log).unwrap_or_default().ends_with("the end\n") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(*words.borrow(), Some(LastWords::Panicked("boom".into())));
        let size = std::fs::metadata(&log).unwrap().len();
        assert!(size <= LOG_CAP + TAIL as u64 + 200, "{size}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("were not kept"));
        assert!(text.ends_with("reboot: Restarting system\nthe end\n"));
        assert_eq!(tail(&log, 2), "reboot: Restarting system\nthe end");
    }
}
