//! Sandbox snapshots: a running sandbox saved whole (memory, devices, processes, its
//! writable layer) under `$MSB_HOME/snapshots/NAME/`, and new sandboxes that resume from
//! one where it stood. `msb.snapshots()`.
//!
//! What is captured is what QEMU can save and msb can copy without the host changing it
//! underneath (see [`crate::snapshot_spec`]). Secrets are not captured: their values never
//! enter the guest, and a sandbox made from a snapshot gets no values of the one that was
//! saved.

use crate::snapshot_spec::{capturable, SavedDisk};
use crate::{Microsandbox, MicrosandboxError, MicrosandboxResult};
use msb_boot::saved::{copy_sparse, create_private, MEMORY_FILE, STAGING};
use msb_protocol::{Control, Message};
use msb_store::SandboxState;
use msb_types::{Paths, SandboxSpec};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// The description of a snapshot, beside its files.
pub(crate) const INFO_FILE: &str = "snapshot.json";
/// The lock, in a sandbox's directory, held while a snapshot of it is taken.
const SNAPSHOT_LOCK: &str = "snapshot.lock";

/// A running sandbox saved in its staging directory, which goes with it unless it was
/// moved away; the sandbox's snapshot lock is held until then.
pub(crate) struct Capture {
    /// The directory the save is in.
    pub staging: std::path::PathBuf,
    /// What was saved.
    pub info: SnapshotInfo,
    _lock: std::fs::File,
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// The snapshots of one home.
#[derive(Debug, Clone)]
pub struct Snapshots {
    msb: Microsandbox,
}

/// A saved sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// The sandbox it was taken of.
    pub sandbox: String,
    /// When it was taken (Unix seconds).
    pub created_at: i64,
    /// The image of its root.
    pub image: String,
    /// Bytes of the saved memory and device state.
    pub memory_bytes: u64,
    /// Bytes its files take on disk (the upper's copy is sparse).
    pub disk_bytes: u64,
    /// How long saving took, in milliseconds (the sandbox stood still for most of it).
    pub save_ms: u64,
    /// What ran the guest (msb, kernel, agent, QEMU, host CPU): a sandbox resumes only on
    /// the same.
    pub build: String,
    /// The saved sandbox's settings, which sandboxes made from it take.
    pub spec: SandboxSpec,
    /// Its mounted disks (sized volumes, disk images) the snapshot holds copies of.
    #[serde(default)]
    pub disks: Vec<SavedDisk>,
}

impl Microsandbox {
    /// The snapshots of this home.
    pub fn snapshots(&self) -> Snapshots {
        Snapshots { msb: self.clone() }
    }
}

impl Snapshots {
    pub(crate) fn paths(&self) -> &Paths {
        self.msb.paths()
    }

    /// Saves running sandbox `sandbox` as snapshot `name`; the sandbox runs on.
    pub async fn create(&self, sandbox: &str, name: &str) -> MicrosandboxResult<SnapshotInfo> {
        valid_name(name)?;
        let target = self.paths().snapshot_dir(name);
        if target.exists() {
            return Err(MicrosandboxError::SnapshotExists(name.into()));
        }
        let capture = self.capture(sandbox, name).await?;
        write_info(&capture.staging, &capture.info)?;
        self.ensure_dir()?;
        std::fs::rename(&capture.staging, &target)
            .map_err(MicrosandboxError::io(format!("keeping {}", target.display())))?;
        Ok(capture.info.clone())
    }

    /// Saves running sandbox `sandbox` into its staging directory, described as snapshot
    /// `name`; the sandbox runs on.
    pub(crate) async fn capture(&self, sandbox: &str, name: &str) -> MicrosandboxResult<Capture> {
        let paths = self.paths();
        let record = crate::lifecycle::get(paths, sandbox)?;
        let spec: SandboxSpec = record.spec()?;
        let disk_files = capturable(&spec, paths)?;
        if record.state != SandboxState::Running {
            return Err(MicrosandboxError::SandboxNotRunning {
                name: sandbox.into(),
                state: record.state.to_string(),
            });
        }
        // One snapshot of a sandbox at a time: they share its staging directory.
        let lock_path = paths.sandbox_dir(sandbox).join(SNAPSHOT_LOCK);
        let lock = std::fs::File::create(&lock_path)
            .map_err(MicrosandboxError::io(format!("creating {}", lock_path.display())))?;
        if lock.try_lock().is_err() {
            return Err(MicrosandboxError::InvalidArgument(format!(
                "a snapshot of sandbox '{sandbox}' is being taken already"
            )));
        }
        let plan = msb_boot::plan(&spec, paths, self.msb.host()?)?;
        let build =
            msb_boot::template::build_key(&plan).map_err(MicrosandboxError::io("identifying this host's build"))?;
        let started = std::time::Instant::now();
        let client = crate::lifecycle::connect(paths, sandbox, false).await?;
        let answer = client.request(Message::Control(Control::Snapshot)).await;
        drop(client);
        let staging = paths.sandbox_dir(sandbox).join(STAGING);
        match answer {
            Ok(Message::Done) => {
                let info = SnapshotInfo {
                    name: name.into(),
                    sandbox: sandbox.into(),
                    created_at: now(),
                    image: spec.image.as_ref().map_or_else(String::new, |i| i.reference.clone()),
                    memory_bytes: std::fs::metadata(staging.join(MEMORY_FILE)).map_or(0, |m| m.len()),
                    disk_bytes: crate::volumes::disk_usage(&staging).unwrap_or(0),
                    save_ms: started.elapsed().as_millis() as u64,
                    build,
                    disks: disk_files
                        .into_iter()
                        .map(|(mount, file)| SavedDisk {
                            mount,
                            bytes: std::fs::metadata(staging.join(&file)).map_or(0, |m| m.len()),
                            file,
                        })
                        .collect(),
                    spec,
                };
                Ok(Capture {
                    staging,
                    info,
                    _lock: lock,
                })
            }
            failed => {
                let _ = std::fs::remove_dir_all(&staging);
                Err(match failed {
                    Ok(other) => MicrosandboxError::Supervisor(format!("an unexpected answer: {other:?}")),
                    Err(e) => e.into(),
                })
            }
        }
    }

    /// The snapshots' directory (owner-only), made if missing.
    pub(crate) fn ensure_dir(&self) -> MicrosandboxResult<std::path::PathBuf> {
        let dir = self.paths().snapshots_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(MicrosandboxError::io(format!("creating {}", dir.display())))?;
        Ok(dir)
    }

    /// Every snapshot, oldest first.
    pub fn list(&self) -> MicrosandboxResult<Vec<SnapshotInfo>> {
        list_in(self.paths())
    }

    /// Snapshot `name`.
    pub fn get(&self, name: &str) -> MicrosandboxResult<SnapshotInfo> {
        valid_name(name)?;
        let dir = self.paths().snapshot_dir(name);
        if !dir.join(INFO_FILE).is_file() {
            return Err(MicrosandboxError::SnapshotNotFound(name.into()));
        }
        read_info(&dir)
    }

    /// Removes snapshot `name` (sandboxes made from it keep what they took).
    pub fn remove(&self, name: &str) -> MicrosandboxResult<()> {
        self.get(name)?;
        let dir = self.paths().snapshot_dir(name);
        std::fs::remove_dir_all(&dir).map_err(MicrosandboxError::io(format!("removing {}", dir.display())))
    }
}

/// Every snapshot of home `paths`, oldest first.
pub(crate) fn list_in(paths: &Paths) -> MicrosandboxResult<Vec<SnapshotInfo>> {
    let dir = paths.snapshots_dir();
    let mut all: Vec<SnapshotInfo> = match std::fs::read_dir(&dir) {
        // Only snapshots: not a load under way, nor a directory renamed by hand.
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| read_info(&e.path()).ok().filter(|i| e.file_name() == i.name.as_str()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(MicrosandboxError::io(format!("reading {}", dir.display()))(e)),
    };
    all.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    Ok(all)
}

/// Refuses to resume `snapshot` by `plan` where the snapshot was taken under another build.
pub(crate) fn check_build(snapshot: &SnapshotInfo, plan: &msb_boot::BootPlan) -> MicrosandboxResult<()> {
    let build = msb_boot::template::build_key(plan).map_err(MicrosandboxError::io("identifying this host's build"))?;
    if snapshot.build == build {
        return Ok(());
    }
    Err(MicrosandboxError::InvalidArgument(format!(
        "snapshot '{}' was taken under another msb, guest kernel, agent, QEMU or host CPU than \
         this host runs now: it cannot be resumed here",
        snapshot.name
    )))
}

/// Gives the new sandbox in `dir` the files of `snapshot`'s save in `from`: a copy of its
/// upper and of each mounted disk it holds, and its saved guest `saved` (linked: it is
/// only read) to resume at the first start.
pub(crate) fn restore_files(from: &Path, saved: &str, snapshot: &SnapshotInfo, dir: &Path) -> MicrosandboxResult<()> {
    std::fs::create_dir_all(dir).map_err(MicrosandboxError::io(format!("creating {}", dir.display())))?;
    let io = |what: String| MicrosandboxError::io(what);
    let entries = std::fs::read_dir(from).map_err(io(format!("reading {}", from.display())))?;
    for entry in entries.flatten() {
        let file = entry.file_name();
        let to = dir.join(&file);
        if file == saved {
            let saved = dir.join(msb_boot::SAVED_FILE);
            std::fs::hard_link(entry.path(), &saved)
                .or_else(|_| copy_sparse(&entry.path(), &saved).map(drop))
                .map_err(io(format!("linking {}", saved.display())))?;
        } else if file == msb_boot::UPPER_FILE || snapshot.disks.iter().any(|d| file == d.file.as_str()) {
            copy_sparse(&entry.path(), &to).map_err(io(format!("copying {}", to.display())))?;
        }
    }
    Ok(())
}

pub(crate) fn valid_name(name: &str) -> MicrosandboxResult<()> {
    msb_types::validate_name(name)
        .map_err(|e| MicrosandboxError::InvalidArgument(format!("snapshot name '{name}': {e}")))
}

pub(crate) fn read_info(dir: &Path) -> MicrosandboxResult<SnapshotInfo> {
    let path = dir.join(INFO_FILE);
    let text = std::fs::read(&path).map_err(MicrosandboxError::io(format!("reading {}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| {
        MicrosandboxError::InvalidArgument(format!("{} is not a snapshot's description: {e}", path.display()))
    })
}

pub(crate) fn write_info(dir: &Path, info: &SnapshotInfo) -> MicrosandboxResult<()> {
    let path = dir.join(INFO_FILE);
    let json = serde_json::to_vec_pretty(info)
        .map_err(|e| MicrosandboxError::InvalidArgument(format!("describing the snapshot: {e}")))?;
    create_private(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &json))
        .map_err(MicrosandboxError::io(format!("writing {}", path.display())))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
