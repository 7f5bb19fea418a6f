//! The snapshot figures of `cargo xtask bench boot`: saving a running sandbox of the image
//! (`msb snapshot create`, the guest paused meanwhile) and its size, and a new sandbox
//! resumed from it (`msb create --from-snapshot` + `msb exec -- echo up`, to the first
//! output).

use super::template::ImageRun;
use crate::util::timed;
use anyhow::{Context, Result};
use std::process::Command;
use std::time::Duration;

/// The sandbox the snapshots are taken of.
const SOURCE: &str = "bench-snapshot-source";

/// One round's figures.
pub struct SnapshotRound {
    /// `msb snapshot create`, wall time.
    pub save: Duration,
    /// `msb create --from-snapshot` then `msb exec -- echo up`, wall time.
    pub resume: Duration,
    /// The snapshot's files on disk.
    pub bytes: u64,
}

impl ImageRun<'_> {
    fn msb(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.msb);
        cmd.envs(self.env).args(args);
        cmd
    }

    /// Starts the sandbox snapshots are taken of (running until [`ImageRun::end_snapshots`]).
    pub fn begin_snapshots(&self) -> Result<()> {
        let _ = self.msb(&["rm", "-f", SOURCE]).output();
        timed(&mut self.msb(&["create", "-n", SOURCE, self.image]), "msb create").map(drop)
    }

    /// Saves the source as snapshot `round`, resumes it as a new sandbox until its first
    /// output, and removes both.
    pub fn snapshot_round(&self, round: usize) -> Result<SnapshotRound> {
        let (snap, copy) = (format!("bench-snap-{round}"), format!("bench-resumed-{round}"));
        let (save, _) = timed(
            &mut self.msb(&["snapshot", "create", "-q", SOURCE, &snap]),
            "msb snapshot create",
        )?;
        let (_, info) = timed(&mut self.msb(&["snapshot", "inspect", &snap]), "msb snapshot inspect")?;
        let info: serde_json::Value = serde_json::from_slice(&info).context("reading the snapshot")?;
        let (create, _) = timed(
            &mut self.msb(&["create", "-n", &copy, "--from-snapshot", &snap]),
            "msb create --from-snapshot",
        )?;
        let (exec, _) = timed(&mut self.msb(&["exec", &copy, "--", "echo", "up"]), "msb exec")?;
        timed(&mut self.msb(&["rm", "-f", &copy]), "msb rm")?;
        timed(&mut self.msb(&["snapshot", "rm", "-q", &snap]), "msb snapshot rm")?;
        Ok(SnapshotRound {
            save,
            resume: create + exec,
            bytes: info["disk_bytes"].as_u64().unwrap_or(0),
        })
    }

    /// Removes the source.
    pub fn end_snapshots(&self) -> Result<()> {
        timed(&mut self.msb(&["rm", "-f", SOURCE]), "msb rm").map(drop)
    }
}
