//! Small helpers for running commands from tasks.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// Runs a command, inheriting stdio, and fails with its name if it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout as a string.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with stdout and stderr appended to `log`; on failure shows the log's tail.
pub fn logged(cmd: &mut Command, log: &std::path::Path) -> Result<()> {
    let out = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    let status = cmd
        .stdout(out)
        .stderr(err)
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        bail!("{cmd:?} failed: {status}; end of {}:\n{tail}", log.display());
    }
    Ok(())
}

/// Writes `bytes` to `dest` atomically (temp file + rename) unless it already holds them.
pub fn install_if_changed(bytes: &[u8], dest: &std::path::Path) -> Result<()> {
    if std::fs::read(dest).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    let dir = dest.parent().context("destination has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("installing {}", dest.display()))
}

/// Runs a command with its output captured and returns how long it took and its stdout; on
/// failure the error names `what` and carries the command's stderr.
pub fn timed(cmd: &mut Command, what: &str) -> Result<(std::time::Duration, Vec<u8>)> {
    let started = std::time::Instant::now();
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((elapsed, out.stdout))
}

/// Builds `example` of `package` in release mode and returns its path.
pub fn release_example(package: &str, example: &str) -> Result<std::path::PathBuf> {
    let root = crate::paths::repo_root();
    run(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "--quiet",
        "--release",
        "-p",
        package,
        "--example",
        example,
    ]))?;
    Ok(root.join("target/release/examples").join(example))
}
