//! What every bench shares on the console: progress lines, load, and keeping stdout clean.

use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Write};

/// Runs `f` with file descriptor 1 pointing at stderr (child processes included).
pub fn stdout_to_stderr<T>(f: impl FnOnce() -> T) -> Result<T> {
    std::io::stdout().flush().context("flushing stdout")?;
    // SAFETY: dup of our own standard output; the copy is owned here and closed below.
    let saved = unsafe { libc::dup(1) };
    // SAFETY: dup2 onto fd 1, which Rust's Stdout (just flushed) writes through by number.
    if saved < 0 || unsafe { libc::dup2(2, 1) } < 0 {
        bail!("redirecting stdout: {}", std::io::Error::last_os_error());
    }
    let out = f();
    let _ = std::io::stdout().flush();
    // SAFETY: puts the saved descriptor back on fd 1 and closes the copy, which nothing else uses.
    let restored = unsafe { libc::dup2(saved, 1) >= 0 && libc::close(saved) == 0 };
    if !restored {
        bail!("restoring stdout: {}", std::io::Error::last_os_error());
    }
    Ok(out)
}

/// The three load averages, as a noise indicator.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A progress line on stderr, rewritten in place on a terminal.
pub fn progress(bench: &str, what: &str) {
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[2Kbench {bench}: {what}");
        let _ = err.flush();
    } else {
        let _ = writeln!(err, "bench {bench}: {what}");
    }
}

/// Clears the progress line on a terminal.
pub fn progress_done() {
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}
