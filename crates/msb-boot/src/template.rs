//! Templates: a guest saved once its agent is up and waiting for the host's first word, so
//! later sandboxes made alike resume it instead of booting.
//!
//! A template is recorded by a VM of its own, booted with the sandbox's devices but an
//! empty placeholder of the same size behind each disk, and saved before the host says
//! anything to it. So it holds no image, no sandbox's files, settings or secrets: those
//! reach the agent after the resume, which reseeds the guest's random generator from fresh
//! host randomness and drops the blocks it read from the placeholders (see the agent's
//! `fresh` module), and takes its clock, name and addresses from the host.
//!
//! Templates are keyed by *make*: the VMM's whole command line for the recording VM
//! (devices in order, the network's MAC, which every sandbox shares as each has a network
//! stack of its own, RAM, CPUs, accelerator, kernel arguments) and the disks' sizes, so in
//! effect per image and upper size; and by *build*: msb's version, the kernel, initramfs
//! and QEMU known by their files' identity and last change, and the host's kernel and CPU.
//! A new build records a new template and removes those of older builds of the
//! same make; beyond 16 makes, recording one removes the least recently used. They live
//! in the home's cache, owner-only, and are never shared between homes.

use crate::BootPlan;
use msb_vmm::{DiskBacking, DiskFormat, Monitor, VmSpec, Vmm, VmmError};
use sha2::{Digest, Sha256};
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The templates' file name ending.
const EXTENSION: &str = "vm";
/// Changes when what a template holds or how it is keyed changes.
const FORMAT: &str = "msb-template-1";
/// Changes when what a saved guest's state names changes (its RAM block is `mem` since
/// forks), so that snapshots saved before are refused as of another build.
const SAVED_LAYOUT: &str = "ram=mem";
/// How many makes keep their templates (about 40 MB each for a 512 MiB guest); recording
/// one more removes the least recently used.
const KEPT_MAKES: usize = 16;
/// How the names of a recording's files begin (the template itself is renamed when done).
const PARTIAL: &str = "partial-";
/// How old a recording's file must be to count as left by a recording that died.
const STALE: Duration = Duration::from_secs(3600);

/// Where the templates of the home whose cache is `cache` are kept.
pub fn dir(cache: &Path) -> PathBuf {
    cache.join("templates")
}

/// The VM a boot of `plan` launches first, as `msb inspect --boot-plan` shows it:
/// `plan.vm`, resuming its template where one is recorded.
pub fn first_launch(plan: &BootPlan, vmm: &impl Vmm) -> VmSpec {
    let mut vm = plan.vm.clone();
    let template = plan.template.as_deref().and_then(|dir| Template::of(plan, vmm, dir));
    vm.resume_from = template.filter(Template::exists).map(|t| t.file);
    vm
}

/// Why a VM like `vm` cannot resume from a template, if it cannot; else the size of each
/// of its disk files (a LUNs disk's, each LUN's), in order.
fn disk_sizes(vm: &VmSpec) -> Result<Vec<u64>, String> {
    // QEMU 7.2 marks vhost-user-fs unmigratable: a guest with a virtio-fs share (a
    // directory root, a directory volume, a bind mount) cannot be saved.
    if !vm.shares.is_empty() {
        return Err("it shares host directories over virtio-fs, which QEMU cannot save".into());
    }
    let mut sizes = Vec::new();
    for disk in &vm.disks {
        match &disk.backing {
            DiskBacking::Luns(parts) => sizes.extend(parts.iter().map(|part| part.len)),
            DiskBacking::File {
                path,
                format: DiskFormat::Raw,
            } => sizes.push(
                std::fs::metadata(path)
                    .map(|m| m.len())
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            ),
            DiskBacking::File { format, .. } => {
                return Err(format!("its {format:?} disk's size is known only by reading the image"))
            }
        }
    }
    Ok(sizes)
}

/// The template file of one make and build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    file: PathBuf,
    /// The size of each disk file (see [`disk_sizes`]), which its placeholder has too.
    disk_sizes: Vec<u64>,
}

impl Template {
    /// The template for `plan` among the templates in `dir`; `None`, said at debug level,
    /// where it cannot have one.
    pub(crate) fn of(plan: &BootPlan, vmm: &impl Vmm, dir: &Path) -> Option<Template> {
        let keyed = disk_sizes(&plan.vm).and_then(|sizes| {
            let recording = recording_spec(&plan.vm, &vec![PathBuf::new(); sizes.len()]);
            let argv = vmm.command_line(&recording).map_err(|e| e.to_string())?;
            let build = build_key(plan).map_err(|e| e.to_string())?;
            Ok(Template {
                file: dir.join(make_key(&argv, &sizes)).join(format!("{build}.{EXTENSION}")),
                disk_sizes: sizes,
            })
        });
        keyed
            .inspect_err(|why| tracing::debug!("booting without a template: {why}"))
            .ok()
    }

    /// The saved guest.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// Whether it has been recorded.
    pub(crate) fn exists(&self) -> bool {
        self.file.metadata().is_ok_and(|m| m.is_file() && m.len() > 0)
    }

    /// Removes it (it could not be resumed).
    pub(crate) fn discard(&self) {
        let _ = std::fs::remove_file(&self.file);
    }

    /// Boots a VM made as `plan` says, but with an empty placeholder of the same size
    /// behind each disk (no sandbox's data gets into a template), waits for its agent, and
    /// saves it as this template; gives up at `deadline`.
    pub(crate) async fn record(&self, plan: &BootPlan, vmm: &impl Vmm, deadline: Instant) -> Result<(), String> {
        let make = self.file.parent().ok_or("a template file without a directory")?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(make)
            .map_err(|e| format!("creating {}: {e}", make.display()))?;
        remove_stale(make);
        // Names no other recording uses, in this process or another.
        static RECORDINGS: AtomicU64 = AtomicU64::new(0);
        let id = format!("{}-{}", std::process::id(), RECORDINGS.fetch_add(1, Ordering::Relaxed));
        let placeholders: Vec<PathBuf> = (0..self.disk_sizes.len())
            .map(|i| make.join(format!("{PARTIAL}placeholder-{id}-{i}")))
            .collect();
        let partial = make.join(format!("{PARTIAL}{id}"));
        let made: Result<(), String> = placeholders
            .iter()
            .zip(&self.disk_sizes)
            .try_for_each(|(placeholder, size)| {
                new_file(placeholder)?
                    .set_len(*size)
                    .map_err(|e| format!("sizing {}: {e}", placeholder.display()))
            });
        let recorded = match made {
            Ok(()) => self.record_with(&placeholders, &partial, plan, vmm, deadline).await,
            Err(e) => Err(e),
        };
        for placeholder in &placeholders {
            let _ = std::fs::remove_file(placeholder);
        }
        match recorded {
            Ok(()) => {
                std::fs::rename(&partial, &self.file).map_err(|e| format!("keeping {}: {e}", self.file.display()))?;
                self.remove_older_builds();
                self.remove_least_used();
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    async fn record_with(
        &self,
        placeholders: &[PathBuf],
        partial: &Path,
        plan: &BootPlan,
        vmm: &impl Vmm,
        deadline: Instant,
    ) -> Result<(), String> {
        let spec = recording_spec(&plan.vm, placeholders);
        let mut process = vmm.launch(&spec).await.map_err(|e| said(&e))?;
        // QEMU holds them open now; nothing is left behind if this process dies.
        for placeholder in placeholders {
            let _ = std::fs::remove_file(placeholder);
        }
        // The guest stalls once its console's pipe is full: keep it, for a failure's sake.
        if let Some(mut console) = process.take_console() {
            let log = spec.runtime_dir.join("console.log");
            tokio::spawn(async move {
                if let Ok(mut file) = tokio::fs::File::create(log).await {
                    let _ = tokio::io::copy(&mut console, &mut file).await;
                }
            });
        }
        let monitor = process.take_monitor().map_err(|e| said(&e))?;
        let saved = tokio::time::timeout_at(deadline.into(), async {
            let mut monitor = Monitor::connect(monitor).await?;
            // Launched paused: the port cannot open before the monitor hears of it.
            monitor.resume().await?;
            monitor.wait_agent_port_open().await?;
            let file = new_file(partial).map_err(|detail| VmmError::Failed {
                what: "a template".into(),
                detail,
            })?;
            monitor.save(&file).await
        })
        .await;
        process.kill().await;
        match saved {
            Ok(saved) => saved.map_err(|e| said(&e)),
            Err(_) => Err("its guest was not up in time".into()),
        }
    }

    /// Marks it used now, so it is among the last to go (see [`Template::remove_least_used`]).
    pub(crate) fn used(&self) {
        let _ = set_modified(&self.file, std::time::SystemTime::now());
    }

    /// Removes the makes whose templates were used least recently, beyond the
    /// [`KEPT_MAKES`] most recent (this one among them).
    fn remove_least_used(&self) {
        let Some(dir) = self.file.parent().and_then(Path::parent) else {
            return;
        };
        let Ok(makes) = std::fs::read_dir(dir) else { return };
        let mut makes: Vec<(std::time::SystemTime, PathBuf)> = makes
            .flatten()
            .map(|make| {
                let last_used = std::fs::read_dir(make.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|f| f.metadata().ok()?.modified().ok())
                    .max()
                    .unwrap_or(std::time::UNIX_EPOCH);
                (last_used, make.path())
            })
            .collect();
        makes.sort_by_key(|(last_used, _)| std::cmp::Reverse(*last_used));
        for (_, make) in makes.into_iter().skip(KEPT_MAKES) {
            if Some(make.as_path()) != self.file.parent() {
                let _ = std::fs::remove_dir_all(make);
            }
        }
    }

    /// Removes the templates of the same make recorded by other builds.
    fn remove_older_builds(&self) {
        let Some(make) = self.file.parent() else { return };
        let Ok(entries) = std::fs::read_dir(make) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path != self.file && path.extension().is_some_and(|e| e == EXTENSION) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// `e` with its cause, for the debug log.
fn said(e: &VmmError) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Sets the last-modified time of `path` to `when`.
fn set_modified(path: &Path, when: std::time::SystemTime) -> std::io::Result<()> {
    std::fs::File::options().write(true).open(path)?.set_modified(when)
}

/// A new owner-only file at `path`.
fn new_file(path: &Path) -> Result<std::fs::File, String> {
    crate::saved::create_private(path).map_err(|e| format!("creating {}: {e}", path.display()))
}

/// The VM that records a template for `vm`: the same devices, `placeholders` behind its
/// disk files (in the order of [`disk_sizes`]), its own runtime directory (its logs apart
/// from the sandbox's), paused at launch.
fn recording_spec(vm: &VmSpec, placeholders: &[PathBuf]) -> VmSpec {
    let mut spec = vm.clone();
    spec.runtime_dir = spec.runtime_dir.join("template");
    spec.paused = true;
    spec.resume_from = None;
    let mut placeholders = placeholders.iter().cloned();
    for disk in &mut spec.disks {
        match &mut disk.backing {
            DiskBacking::Luns(parts) => {
                for part in parts {
                    part.path = placeholders.next().unwrap_or_default();
                }
            }
            backing => {
                *backing = DiskBacking::File {
                    path: placeholders.next().unwrap_or_default(),
                    format: DiskFormat::Raw,
                }
            }
        }
    }
    spec
}

/// Removes what recordings that never ended left in `make` (their process died).
fn remove_stale(make: &Path) {
    let Ok(entries) = std::fs::read_dir(make) else { return };
    let old = |e: &std::fs::DirEntry| {
        e.metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE))
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(PARTIAL) && old(&entry) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The key of what the guest is made of: the VMM's whole command line for it (devices in
/// order, the network's MAC, RAM, CPUs, accelerator, kernel arguments; every file is a
/// descriptor there, so no path of a sandbox is in it) and each disk's size, which its
/// driver read at boot. Not what is behind its disks: a template is recorded with
/// placeholders there.
fn make_key(argv: &[String], disk_sizes: &[u64]) -> String {
    let mut make = Sha256::new();
    make.update(FORMAT);
    for arg in argv {
        make.update(format!("{}:{arg}|", arg.len()));
    }
    for size in disk_sizes {
        make.update(format!("disk bytes={size}|"));
    }
    hex(&make.finalize()[..16])
}

/// The key of what runs the guest: this msb; the kernel, initramfs and QEMU by their
/// files' identity and last change (ctime, which no one can set back); and the host's
/// kernel and CPU, which a guest saved under KVM has adapted itself to.
pub fn build_key(plan: &BootPlan) -> std::io::Result<String> {
    let mut build = Sha256::new();
    build.update(env!("CARGO_PKG_VERSION"));
    build.update(SAVED_LAYOUT);
    for file in [&plan.vm.kernel, &plan.vm.initramfs, &plan.vmm.binary] {
        let meta =
            std::fs::metadata(file).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
        build.update(format!(
            "{}:{}:{}:{}:{}.{}|",
            file.display(),
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.ctime(),
            meta.ctime_nsec()
        ));
    }
    build.update(std::fs::read("/proc/sys/kernel/osrelease").unwrap_or_default());
    // The first CPU's features and microcode: enough to tell a changed or other CPU.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    for line in cpuinfo.lines().take_while(|l| !l.is_empty()) {
        if line.starts_with("flags") || line.starts_with("microcode") || line.starts_with("model name") {
            build.update(line);
        }
    }
    Ok(hex(&build.finalize()[..16]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
