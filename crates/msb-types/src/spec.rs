//! What a user asks for: the sandbox spec and its resource limits.

use crate::{ImageConfig, Patch};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a sandbox's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootSpec {
    /// A host directory, shared read-write as the guest's `/`.
    Bind(PathBuf),
    /// An OCI image from the local store (canonical reference), under a writable upper.
    Oci(String),
    /// A disk image file holding a filesystem, attached read-write as the guest's `/`.
    DiskImage {
        /// The image file.
        path: PathBuf,
        /// How the file holds the disk.
        format: DiskImageFormat,
        /// Filesystem type (`ext4`, …); probed by the guest when absent.
        fstype: Option<String>,
    },
}

/// Formats of disk-image roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskImageFormat {
    /// Raw bytes (`.raw`, `.img`, `.ext4`, anything unrecognised).
    Raw,
    /// QEMU copy-on-write (`.qcow2`).
    Qcow2,
    /// VMware (`.vmdk`).
    Vmdk,
}

impl DiskImageFormat {
    /// The format a file's extension names (raw when it names none we know).
    pub fn from_path(path: &std::path::Path) -> DiskImageFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("qcow2") => DiskImageFormat::Qcow2,
            Some("vmdk") => DiskImageFormat::Vmdk,
            _ => DiskImageFormat::Raw,
        }
    }
}

/// Default size of an OCI sandbox's writable upper layer (sparse: only writes take space).
pub const DEFAULT_UPPER_SIZE_MIB: u32 = 4096;

fn default_upper_size() -> u32 {
    DEFAULT_UPPER_SIZE_MIB
}

/// CPU and memory of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Virtual CPUs.
    pub cpus: u8,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
}

/// Limits that resources must respect.
pub const MAX_CPUS: u8 = 64;
/// Smallest guest RAM that boots our kernel and agent comfortably.
pub const MIN_MEMORY_MIB: u32 = 64;

/// Why resources were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// cpus out of range.
    #[error("--cpus {0} is out of range: use 1 to {MAX_CPUS}")]
    Cpus(u32),
    /// memory out of range.
    #[error("--memory {got} MiB is out of range: use {MIN_MEMORY_MIB} to {max} MiB (this host's RAM)")]
    Memory {
        /// Requested MiB.
        got: u64,
        /// Host RAM in MiB.
        max: u64,
    },
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1,
            memory_mib: 512,
        }
    }
}

impl Resources {
    /// Validates `cpus` and `memory_mib` against fixed bounds and the host's RAM.
    pub fn new(cpus: u32, memory_mib: u64, host_memory_mib: u64) -> Result<Self, ResourceError> {
        if cpus == 0 || cpus > u32::from(MAX_CPUS) {
            return Err(ResourceError::Cpus(cpus));
        }
        let max = host_memory_mib.min(u64::from(u32::MAX));
        if memory_mib < u64::from(MIN_MEMORY_MIB) || memory_mib > max {
            return Err(ResourceError::Memory { got: memory_mib, max });
        }
        // Both checked above to fit.
        Ok(Resources {
            cpus: cpus as u8,
            memory_mib: memory_mib as u32,
        })
    }
}

/// A validated request for a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Sandbox name (also the default hostname).
    pub name: String,
    /// Root filesystem.
    pub root: RootSpec,
    /// CPUs and memory.
    pub resources: Resources,
    /// Guest hostname.
    pub hostname: String,
    /// Changes to the root filesystem made before the first boot, in order.
    #[serde(default)]
    pub patches: Vec<Patch>,
    /// Size of the writable upper layer of an OCI root, in MiB.
    #[serde(default = "default_upper_size")]
    pub upper_size_mib: u32,
    /// The image the root was made from, pinned when the sandbox was created.
    #[serde(default)]
    pub image: Option<PinnedImage>,
    /// Environment for every process, over the image's (same names: these win).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory of processes, over the image's.
    #[serde(default)]
    pub workdir: Option<String>,
    /// User processes run as, over the image's.
    #[serde(default)]
    pub user: Option<String>,
    /// Replaces the image's entrypoint for the sandbox's command.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// A command started at boot; the sandbox stops when it ends (docker's `run -d`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Stop after this many seconds without any exec or attach session.
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// Stop this many seconds after each start, whatever runs.
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
    /// Removed as soon as it stops (an unnamed `msb run`).
    #[serde(default)]
    pub ephemeral: bool,
}

/// An image as a sandbox was created from it: the manifest and config stay fixed even if
/// the reference later names another image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedImage {
    /// The reference as stored.
    pub reference: String,
    /// Digest of the platform manifest whose layers the sandbox boots from.
    pub manifest_digest: String,
    /// The image's config (env, entrypoint, cmd, working dir, user …).
    pub config: ImageConfig,
}

impl SandboxSpec {
    /// A spec for `root` with default resources, the name as hostname, no patches and the
    /// default upper size.
    pub fn new(name: impl Into<String>, root: RootSpec) -> SandboxSpec {
        let name = name.into();
        SandboxSpec {
            hostname: name.clone(),
            name,
            root,
            resources: Resources::default(),
            patches: Vec::new(),
            upper_size_mib: DEFAULT_UPPER_SIZE_MIB,
            image: None,
            env: Vec::new(),
            workdir: None,
            user: None,
            entrypoint: None,
            command: None,
            idle_timeout_secs: None,
            max_duration_secs: None,
            ephemeral: false,
        }
    }

    /// Checks what can be checked before touching any filesystem: the name, the patches,
    /// and that patches are not asked of a disk-image root.
    pub fn validate(&self) -> Result<(), String> {
        crate::validate_name(&self.name).map_err(|e| e.to_string())?;
        if !self.patches.is_empty() && matches!(self.root, RootSpec::DiskImage { .. }) {
            return Err(
                "patches are not compatible with disk image rootfs: patch the image file itself, \
                        or use an OCI image or a directory root"
                    .into(),
            );
        }
        for patch in &self.patches {
            patch.validate()?;
        }
        if let Some(dir) = &self.workdir {
            if !dir.starts_with('/') {
                return Err(format!("working directory '{dir}' must be an absolute path"));
            }
        }
        if self.idle_timeout_secs == Some(0) || self.max_duration_secs == Some(0) {
            return Err("idle timeout and max duration must be at least one second".into());
        }
        if self.upper_size_mib < 64 {
            return Err(format!(
                "upper layer size {} MiB is too small: use at least 64 MiB",
                self.upper_size_mib
            ));
        }
        Ok(())
    }
}

/// Parses `KEY=VALUE`, or `KEY` alone to copy the host's value (an error when unset).
pub fn parse_env(item: &str) -> Result<(String, String), String> {
    let (key, value) = match item.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => {
            let v = std::env::var(item).map_err(|_| format!("--env {item}: not set on the host (use {item}=VALUE)"))?;
            (item.to_string(), v)
        }
    };
    if key.is_empty() || key.contains('\0') || value.contains('\0') {
        return Err(format!(
            "--env '{item}': the name must be non-empty and neither part may hold NUL"
        ));
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_bounded() {
        assert!(Resources::new(1, 512, 4096).is_ok());
        assert_eq!(Resources::new(0, 512, 4096), Err(ResourceError::Cpus(0)));
        assert_eq!(Resources::new(65, 512, 4096), Err(ResourceError::Cpus(65)));
        assert!(matches!(Resources::new(1, 32, 4096), Err(ResourceError::Memory { .. })));
        assert!(matches!(
            Resources::new(1, 8192, 4096),
            Err(ResourceError::Memory { .. })
        ));
    }

    #[test]
    fn env_items_parse() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), "".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("MSB_SURELY_UNSET_VARIABLE").is_err());
    }
}
