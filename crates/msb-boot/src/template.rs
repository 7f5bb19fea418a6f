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
//! Templates are keyed by *make*: the devices in order with the disks' sizes (so, in
//! effect, per image and upper size), the network's MAC (every sandbox has the same, as
//! each has a network stack of its own), RAM, CPUs, accelerator; and by
//! *build*: the kernel, initramfs and QEMU, known by their files' identity and last
//! change. A new build records a new template and removes those of older builds of the
//! same make; beyond 16 makes, recording one removes the least recently used. They live
//! in the home's cache, owner-only, and are never shared between homes.

use crate::BootPlan;
use msb_vmm::{joined, DiskBacking, DiskFormat, Monitor, VmSpec, Vmm, VmmError};
use sha2::{Digest, Sha256};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The templates' file name ending.
const EXTENSION: &str = "vm";
/// Changes when what a template holds or how it is keyed changes.
const FORMAT: &str = "msb-template-1";
/// How many makes keep their templates (about 40 MB each for a 512 MiB guest); recording
/// one more removes the least recently used.
const KEPT_MAKES: usize = 16;
/// How long a template's guest may take to boot (TCG is slow).
const RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Where the templates of the home whose cache is `cache` are kept.
pub fn dir(cache: &Path) -> PathBuf {
    cache.join("templates")
}

/// The VM a boot of `plan` launches first, as `msb inspect --boot-plan` shows it:
/// `plan.vm`, resuming its template where one is recorded.
pub fn first_launch(plan: &BootPlan) -> VmSpec {
    let mut vm = plan.vm.clone();
    let template = plan.template.as_deref().and_then(|dir| Template::of(plan, dir));
    vm.resume_from = template.filter(Template::exists).map(|t| t.file);
    vm
}

/// Why a VM like `vm` cannot resume from a template, if it cannot; else the size of each
/// of its disks.
fn disk_sizes(vm: &VmSpec) -> Result<Vec<u64>, String> {
    // QEMU 7.2 marks vhost-user-fs unmigratable: a guest with a virtio-fs share (a
    // directory root, a directory volume, a bind mount) cannot be saved.
    if !vm.shares.is_empty() {
        return Err("it shares host directories over virtio-fs, which QEMU cannot save".into());
    }
    vm.disks
        .iter()
        .map(|disk| match &disk.backing {
            DiskBacking::Joined(parts) => Ok(joined::layout(parts).last().map_or(0, |e| e.offset + e.len)),
            DiskBacking::File {
                path,
                format: DiskFormat::Raw,
            } => std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|e| format!("{}: {e}", path.display())),
            DiskBacking::File { format, .. } => {
                Err(format!("its {format:?} disk's size is known only by reading the image"))
            }
        })
        .collect()
}

/// The template file of one make and build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    file: PathBuf,
    /// The size of each disk, which its placeholder has too.
    disk_sizes: Vec<u64>,
}

impl Template {
    /// The template for `plan` among the templates in `dir`; `None`, said at debug level,
    /// where it cannot have one.
    pub(crate) fn of(plan: &BootPlan, dir: &Path) -> Option<Template> {
        let keyed = disk_sizes(&plan.vm).and_then(|sizes| {
            let build = build_key(plan).map_err(|e| e.to_string())?;
            Ok(Template {
                file: dir
                    .join(make_key(&plan.vm, &sizes))
                    .join(format!("{build}.{EXTENSION}")),
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
    /// saves it as this template.
    pub(crate) async fn record(&self, plan: &BootPlan, vmm: &impl Vmm) -> Result<(), String> {
        let make = self.file.parent().ok_or("a template file without a directory")?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(make)
            .map_err(|e| format!("creating {}: {e}", make.display()))?;
        let pid = std::process::id();
        let placeholders: Vec<PathBuf> = (0..plan.vm.disks.len())
            .map(|i| make.join(format!("placeholder-{pid}-{i}.img")))
            .collect();
        let partial = self.file.with_extension(format!("partial-{pid}"));
        let made: Result<(), String> = placeholders
            .iter()
            .zip(&self.disk_sizes)
            .try_for_each(|(placeholder, size)| {
                new_file(placeholder)?
                    .set_len(*size)
                    .map_err(|e| format!("sizing {}: {e}", placeholder.display()))
            });
        let recorded = match made {
            Ok(()) => self.record_with(&placeholders, &partial, plan, vmm).await,
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
    ) -> Result<(), String> {
        let mut spec = plan.vm.clone();
        // Its QEMU's log apart from the sandbox's own.
        spec.runtime_dir = spec.runtime_dir.join("template");
        for (disk, placeholder) in spec.disks.iter_mut().zip(placeholders) {
            disk.backing = DiskBacking::File {
                path: placeholder.clone(),
                format: DiskFormat::Raw,
            };
        }
        let mut process = vmm.launch(&spec).await.map_err(|e| said(&e))?;
        // The guest stalls once its console's pipe is full: keep it empty.
        if let Some(mut console) = process.take_console() {
            tokio::spawn(async move { tokio::io::copy(&mut console, &mut tokio::io::sink()).await });
        }
        let monitor = process.take_monitor().map_err(|e| said(&e))?;
        let saved = tokio::time::timeout(RECORD_TIMEOUT, async {
            let mut monitor = Monitor::connect(monitor).await?;
            monitor.wait_agent_port_open().await?;
            let _ = std::fs::remove_file(partial);
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
            Err(_) => Err(format!("its guest was not up within {} s", RECORD_TIMEOUT.as_secs())),
        }
    }

    /// Marks it used now, so it is among the last to go (see [`Template::remove_least_used`]).
    pub(crate) fn used(&self) {
        let now = std::time::SystemTime::now();
        let _ = std::fs::File::options()
            .write(true)
            .open(&self.file)
            .and_then(|f| f.set_modified(now));
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

/// A new owner-only file at `path`.
fn new_file(path: &Path) -> Result<std::fs::File, String> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))
}

/// The key of what the guest is made of: its devices in order (with the network's MAC
/// and the disks' sizes, which its drivers read at boot), RAM, CPUs, accelerator. Not
/// what is behind its disks: a template is recorded with placeholders there.
fn make_key(vm: &VmSpec, disk_sizes: &[u64]) -> String {
    let mut make = Sha256::new();
    make.update(FORMAT);
    let mac = vm.net.as_ref().map(|net| net.mac);
    make.update(format!("{}:{}:{:?}:{mac:?}", vm.cpus, vm.memory_mib, vm.accel));
    for (disk, size) in vm.disks.iter().zip(disk_sizes) {
        make.update(format!("|disk ro={} bytes={size}", disk.readonly));
    }
    hex(&make.finalize()[..16])
}

/// The key of the programs that run the guest: kernel, initramfs and QEMU, by their
/// files' identity and last change (ctime, which no one can set back).
fn build_key(plan: &BootPlan) -> std::io::Result<String> {
    let mut build = Sha256::new();
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
    Ok(hex(&build.finalize()[..16]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
