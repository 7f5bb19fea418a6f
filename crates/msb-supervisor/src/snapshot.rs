//! Saving the running sandbox for a snapshot. The guest pauses; its memory and device state
//! go to a file through QEMU's monitor; each writable disk is copied as it stands (the
//! pause drained QEMU's writes, so the copy matches the memory); then the guest runs on.
//! Everything lands in the sandbox's [`msb_boot::saved::STAGING`] directory, the one this
//! process may write; the client moves it among the snapshots.

use msb_boot::saved::{copy_sparse, create_private, MEMORY_FILE, STAGING};
use msb_boot::MonitorLink;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// What saving the sandbox takes.
#[derive(Debug)]
pub struct Saver {
    /// QEMU's monitor; `None` where the VM gave none.
    monitor: Mutex<Option<MonitorLink>>,
    /// The sandbox's directory.
    dir: PathBuf,
    /// The files of its writable disks, each with the name it is saved under.
    disks: Vec<(PathBuf, String)>,
    /// Set while a save runs (the guest stands still then, and answers no pings).
    saving: Arc<AtomicBool>,
}

/// How a save went.
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    /// How long the guest stood still.
    pub paused: Duration,
}

impl Saver {
    /// The saver of the sandbox in `dir` whose VM's monitor is `monitor` and whose
    /// writable disks are `disks` (each with the name it is saved under, see
    /// [`msb_boot::saved::saved_disk_file`]).
    pub fn new(monitor: Option<MonitorLink>, dir: PathBuf, disks: Vec<(PathBuf, String)>) -> Saver {
        Saver {
            monitor: Mutex::new(monitor),
            dir,
            disks,
            saving: Arc::default(),
        }
    }

    /// Whether a save is running, as it changes (for the watchdog).
    pub fn saving(&self) -> Arc<AtomicBool> {
        self.saving.clone()
    }

    /// Saves the running guest into the staging directory (made afresh) and lets it run on,
    /// whatever happened. One save at a time.
    pub async fn save(&self) -> Result<Saved, String> {
        let mut link = self.monitor.lock().await;
        let monitor = link
            .as_mut()
            .ok_or("this sandbox's VM has no monitor")?
            .monitor()
            .await
            .map_err(|e| e.to_string())?;
        let staging = self.dir.join(STAGING);
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| format!("creating {}: {e}", staging.display()))?;
        let memory = staging.join(MEMORY_FILE);
        let file = create_private(&memory).map_err(|e| format!("creating {}: {e}", memory.display()))?;
        let paused = Instant::now();
        self.saving.store(true, Ordering::SeqCst);
        let mut saved = monitor.save(&file).await.map_err(|e| e.to_string());
        if saved.is_ok() {
            // Off the runtime's thread: the relays of other clients go on meanwhile.
            let (disks, into) = (self.disks.clone(), staging.clone());
            saved = tokio::task::spawn_blocking(move || copy_disks(&disks, &into))
                .await
                .map_err(|e| e.to_string())
                .and_then(|copied| copied);
        }
        // The guest runs on even when the save failed (`stop` may have been all it did).
        let resumed = monitor.resume().await.map_err(|e| format!("resuming the guest: {e}"));
        self.saving.store(false, Ordering::SeqCst);
        let paused = paused.elapsed();
        if saved.is_err() || resumed.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        saved.and(resumed).map(|()| Saved { paused })
    }
}

/// Copies each of `disks` into `staging` under its name, keeping its holes.
fn copy_disks(disks: &[(PathBuf, String)], staging: &std::path::Path) -> Result<(), String> {
    for (disk, name) in disks {
        copy_sparse(disk, &staging.join(name)).map_err(|e| format!("copying {}: {e}", disk.display()))?;
    }
    Ok(())
}
