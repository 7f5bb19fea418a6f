//! Forks: a running sandbox copied into new sandboxes that go on from where it stood and
//! share its memory copy-on-write. `msb.fork(...)`, `msb fork NAME --count N`.
//!
//! The sandbox pauses as long as a snapshot takes (its memory and writable layer saved to
//! its staging directory) and runs on. The saved memory becomes one sealed memfd (see
//! [`msb_boot::fork`]); each copy gets its own copy of the writable layer, the devices'
//! state, and that memfd, which its QEMU maps private. Like a sandbox made from a
//! snapshot, each copy takes a name, hostname, clock and randomness of its own, and none
//! of the saved sandbox's secrets or published ports.

use crate::lifecycle::CreateOptions;
use crate::{Microsandbox, MicrosandboxError, MicrosandboxResult};
use msb_boot::saved::MEMORY_FILE;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

/// The devices' state of a fork's saved guest, beside its frozen memory.
pub(crate) const DEVICES_FILE: &str = "devices.vm";

/// What a fork's copies start from.
#[derive(Debug, Clone)]
pub(crate) struct ForkSource {
    /// The save's directory: the writable layer and [`DEVICES_FILE`].
    pub dir: PathBuf,
    /// The frozen memory (a sealed memfd).
    pub memory: Arc<OwnedFd>,
}

impl Microsandbox {
    /// Copies running sandbox `sandbox` into new sandboxes named `copies`, which resume
    /// where it stood (its processes, memory and files) and share its memory until they
    /// change it. The sandbox pauses for the save and runs on. Image roots without mounts
    /// only, as for snapshots. Either every copy starts or none is left.
    pub async fn fork(&self, sandbox: &str, copies: &[String]) -> MicrosandboxResult<()> {
        self.check_copy_names(copies)?;
        let began = std::time::Instant::now();
        let capture = self.snapshots().capture(sandbox, sandbox).await?;
        tracing::debug!("fork of '{sandbox}': saved in {} ms", began.elapsed().as_millis());
        let paths = self.paths();
        let mut plan = msb_boot::plan(&capture.info.spec, paths, self.host()?)?;
        // The helper opens the saved disks, not the running sandbox's, and keeps its logs
        // and sockets apart.
        for disk in &mut plan.vm.disks {
            let saved = msb_boot::saved::saved_disk_file(disk);
            if let (msb_vmm::DiskBacking::File { path, .. }, Some(file)) = (&mut disk.backing, saved) {
                *path = capture.staging.join(file);
            }
        }
        plan.vm.runtime_dir = capture.staging.join("helper");
        let saved = capture.staging.join(MEMORY_FILE);
        let devices = capture.staging.join(DEVICES_FILE);
        let vmm = msb_vmm::Qemu::new(plan.vmm.clone());
        let memory = msb_boot::fork::freeze(&plan.vm, &vmm, &saved, &devices).await?;
        tracing::debug!(
            "fork of '{sandbox}': memory frozen at {} ms",
            began.elapsed().as_millis()
        );
        // Its pages are in the memfd now.
        let _ = std::fs::remove_file(&saved);
        let source = ForkSource {
            dir: capture.staging.clone(),
            memory: Arc::new(memory),
        };
        let started =
            futures::future::join_all(copies.iter().map(|name| self.start_copy(&capture, &source, name))).await;
        tracing::debug!(
            "fork of '{sandbox}': copies started at {} ms",
            began.elapsed().as_millis()
        );
        if let Some(failed) = started.iter().position(Result::is_err) {
            for (name, started) in copies.iter().zip(&started) {
                if started.is_ok() {
                    let _ = crate::lifecycle::remove(paths, name, true).await;
                }
            }
            return started.into_iter().nth(failed).unwrap_or(Ok(()));
        }
        Ok(())
    }

    /// Makes and starts copy `name` of the save `capture` from `source`.
    async fn start_copy(
        &self,
        capture: &crate::snapshots::Capture,
        source: &ForkSource,
        name: &str,
    ) -> MicrosandboxResult<()> {
        let spec = crate::snapshot_spec::spec_from(&capture.info, name, self.paths(), Vec::new())?;
        let opts = CreateOptions {
            snapshot: Some(capture.info.clone()),
            fork: Some(source.clone()),
            ..CreateOptions::default()
        };
        crate::lifecycle::create(self, spec, msb_store::SecretValues::default(), &opts)
            .await
            .map(drop)
    }

    /// Refuses copy names that are not valid, repeat, or are taken.
    fn check_copy_names(&self, copies: &[String]) -> MicrosandboxResult<()> {
        if copies.is_empty() {
            return Err(MicrosandboxError::InvalidArgument(
                "a fork needs at least one copy".into(),
            ));
        }
        let store = msb_store::Store::open(self.paths())?;
        for (i, name) in copies.iter().enumerate() {
            msb_types::validate_name(name)
                .map_err(|e| MicrosandboxError::InvalidArgument(format!("sandbox name '{name}': {e}")))?;
            if copies[..i].contains(name) {
                return Err(MicrosandboxError::InvalidArgument(format!(
                    "sandbox name '{name}' is given twice"
                )));
            }
            if store.get_sandbox(name)?.is_some() {
                return Err(MicrosandboxError::SandboxExists(name.clone()));
            }
        }
        Ok(())
    }
}
