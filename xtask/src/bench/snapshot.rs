//! The snapshot figures of `cargo xtask bench boot`: saving a running sandbox of the image
//! (`msb snapshot create`, the guest paused meanwhile) and its size, and a new sandbox
//! resumed from it (`msb create --from-snapshot` + `msb exec -- echo up`, to the first
//! output); a fork of it into four copies (`msb fork --count 4`, then `echo up` in each)
//! and the host memory those four take.

use super::procmem::ProcMem;
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

/// How many copies a fork round makes.
pub const FORKS: usize = 4;

/// One fork round's figures.
#[derive(Debug)]
pub struct ForkRound {
    /// `msb fork --count 4`, to four running copies, wall time.
    pub fork: Duration,
    /// That, plus `msb exec -- echo up` in each copy in turn.
    pub to_output: Duration,
    /// The copies' QEMUs' PSS, summed (KiB).
    pub copies_pss_kib: u64,
    /// The largest RSS of one copy's QEMU (KiB): what it maps, shared pages in full.
    pub copy_rss_kib: u64,
    /// The RSS of the forked sandbox's QEMU (KiB).
    pub source_rss_kib: u64,
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

    /// Forks the source into [`FORKS`] copies, runs `echo up` in each, reads their host
    /// memory, and removes them.
    pub fn fork_round(&self, round: usize) -> Result<ForkRound> {
        let prefix = format!("bench-fork-{round}-");
        let count = FORKS.to_string();
        let (fork, _) = timed(
            &mut self.msb(&["fork", SOURCE, "--count", &count, "--prefix", &prefix, "-q"]),
            "msb fork",
        )?;
        let copies: Vec<String> = (1..=FORKS).map(|i| format!("{prefix}{i}")).collect();
        let mut execs = Duration::ZERO;
        let mut memory = Vec::new();
        for copy in &copies {
            execs += timed(&mut self.msb(&["exec", copy, "--", "echo", "up"]), "msb exec")?.0;
            let (_, info) = timed(&mut self.msb(&["inspect", copy]), "msb inspect")?;
            let info: serde_json::Value = serde_json::from_slice(&info).context("reading the copy")?;
            let pid = info["vmm_pid"].as_u64().context("a copy without a VMM pid")?;
            memory.push(ProcMem::read(pid as u32)?);
        }
        let (_, info) = timed(&mut self.msb(&["inspect", SOURCE]), "msb inspect")?;
        let info: serde_json::Value = serde_json::from_slice(&info).context("reading the source")?;
        let source = ProcMem::read(info["vmm_pid"].as_u64().context("a source without a VMM pid")? as u32)?;
        let mut rm = self.msb(&["rm", "-f"]);
        rm.args(&copies);
        timed(&mut rm, "msb rm")?;
        Ok(ForkRound {
            fork,
            to_output: fork + execs,
            copies_pss_kib: memory.iter().map(|m| m.pss_kib).sum(),
            copy_rss_kib: memory.iter().map(|m| m.rss_kib).max().unwrap_or(0),
            source_rss_kib: source.rss_kib,
        })
    }

    /// Removes the source.
    pub fn end_snapshots(&self) -> Result<()> {
        timed(&mut self.msb(&["rm", "-f", SOURCE]), "msb rm").map(drop)
    }
}
