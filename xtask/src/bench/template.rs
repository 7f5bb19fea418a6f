//! The template figures of `cargo xtask bench boot`: `msb run IMAGE -- echo up` until its
//! first output, booting cold against resuming the image's template, and the first run of
//! a make, which records the template; the template's size.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a run starts its VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `MSB_NO_TEMPLATE=1`.
    Cold,
    /// Resumes the template, recorded before.
    Template,
    /// No template yet: records it, then resumes it.
    Recording,
}

/// One `msb run` of the image, as the bench's `msb` binary and home do it.
pub struct ImageRun<'a> {
    /// The release `msb`.
    pub msb: &'a Path,
    /// `MSB_HOME`, `MSB_KERNEL`, `MSB_INITRAMFS`.
    pub env: [(&'static str, &'a Path); 3],
    /// The image reference, pulled into the home already.
    pub image: &'a str,
}

impl ImageRun<'_> {
    fn templates(&self) -> PathBuf {
        self.env[0].1.join("cache/templates")
    }

    /// Launch → first byte of output of `msb run IMAGE -- echo up`, started as `start` says.
    pub fn first_output(&self, start: Start) -> Result<Duration> {
        if start == Start::Recording {
            let dir = self.templates();
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        let mut cmd = Command::new(self.msb);
        cmd.envs(self.env).args(["run", self.image, "--", "echo", "up"]);
        if start == Start::Cold {
            cmd.env("MSB_NO_TEMPLATE", "1");
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().context("starting msb run")?;
        let mut first = [0u8; 1];
        let got = child.stdout.as_mut().map(|out| out.read(&mut first));
        let elapsed = started.elapsed();
        let out = child.wait_with_output().context("waiting for msb run")?;
        if !matches!(got, Some(Ok(1))) || !out.status.success() {
            bail!(
                "msb run {} failed: {}",
                self.image,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if start != Start::Cold && self.template_bytes().is_none() {
            bail!("msb run left no template: templates do not work here");
        }
        Ok(elapsed)
    }

    /// The size of the one template in the home, if there is one.
    pub fn template_bytes(&self) -> Option<u64> {
        let makes = std::fs::read_dir(self.templates()).ok()?;
        makes
            .flatten()
            .flat_map(|make| std::fs::read_dir(make.path()).into_iter().flatten().flatten())
            .find(|f| f.path().extension().is_some_and(|e| e == "vm"))
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
    }
}
