//! What a user asks for: the sandbox spec and its resource limits.

use crate::{Field, ImageConfig, Patch, Rlimit, SpecError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
/// Smallest upper layer: room for the journal and some writes.
pub const MIN_UPPER_SIZE_MIB: u32 = 64;
/// Virtual CPUs of a sandbox unless asked otherwise.
pub const DEFAULT_CPUS: u32 = 1;
/// Guest RAM of a sandbox unless asked otherwise, MiB.
pub const DEFAULT_MEMORY_MIB: u32 = 512;
/// Most virtual CPUs a sandbox may have.
pub const MAX_CPUS: u32 = 64;
/// Smallest guest RAM that boots our kernel and agent comfortably, MiB.
pub const MIN_MEMORY_MIB: u32 = 64;

fn default_upper_size() -> u32 {
    DEFAULT_UPPER_SIZE_MIB
}

/// CPU and memory of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Virtual CPUs.
    pub cpus: u32,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: DEFAULT_CPUS,
            memory_mib: DEFAULT_MEMORY_MIB,
        }
    }
}

impl Resources {
    /// Validates `cpus` and `memory_mib` against fixed bounds and the host's RAM.
    pub fn new(cpus: u32, memory_mib: u32, host_memory_mib: u64) -> Result<Self, SpecError> {
        if cpus == 0 || cpus > MAX_CPUS {
            return Err(SpecError::new(
                Field::Cpus,
                format!("{cpus} is out of range: use 1 to {MAX_CPUS}"),
            ));
        }
        if memory_mib < MIN_MEMORY_MIB || u64::from(memory_mib) > host_memory_mib {
            return Err(SpecError::new(
                Field::Memory,
                format!(
                    "{memory_mib} MiB is out of range: use {MIN_MEMORY_MIB} MiB to {host_memory_mib} MiB (this host's RAM)"
                ),
            ));
        }
        Ok(Resources { cpus, memory_mib })
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
    /// The signal that asks its processes to stop (`SIGTERM` style); else the image's
    /// `StopSignal`, else SIGTERM.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Resource limits of every process started in it (per-exec limits win by resource).
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    /// Scripts put on the guest's PATH (`/.msb/scripts/NAME`, mode 0755), by name.
    #[serde(default)]
    pub scripts: BTreeMap<String, String>,
    /// The shell that runs `shell` calls (default `/bin/sh`).
    #[serde(default)]
    pub shell: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How much its supervisor logs (`MSB_LOG` syntax: `warn`, `debug`, `msb_net=trace` …).
    #[serde(default)]
    pub log_level: Option<String>,
    /// Host directories and tmpfs mounted into the guest, in order.
    #[serde(default)]
    pub mounts: Vec<crate::Mount>,
    /// Its network: policy, DNS, published ports.
    #[serde(default)]
    pub network: crate::NetworkSpec,
    /// Always boot its VM, never resume it from a template (as `MSB_NO_TEMPLATE=1` does
    /// for every sandbox).
    #[serde(default)]
    pub cold_boot: bool,
}

/// Most bytes all scripts may hold together: they travel in the guest configuration, one
/// protocol frame.
pub const MAX_SCRIPT_BYTES: usize = 512 << 10;

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
            stop_signal: None,
            rlimits: Vec::new(),
            scripts: BTreeMap::new(),
            shell: None,
            labels: BTreeMap::new(),
            log_level: None,
            network: Default::default(),
            mounts: Vec::new(),
            cold_boot: false,
        }
    }

    /// Checks what can be checked before touching any filesystem: the name, the patches
    /// (not asked of a disk-image root), mounts, env, limits, scripts, the network.
    pub fn validate(&self) -> Result<(), SpecError> {
        crate::validate_name(&self.name).map_err(|e| SpecError::new(Field::Name, e.to_string()))?;
        if !self.patches.is_empty() && matches!(self.root, RootSpec::DiskImage { .. }) {
            return Err(SpecError::new(
                Field::Patches,
                "patches are not compatible with disk image rootfs: patch the image file itself, \
                 or use an OCI image or a directory root",
            ));
        }
        if let RootSpec::DiskImage {
            fstype: Some(fstype), ..
        } = &self.root
        {
            let plain = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
            if fstype.is_empty() || fstype.len() > 32 || !fstype.bytes().all(plain) {
                return Err(SpecError::new(
                    Field::Root,
                    format!("'{fstype}' is not a filesystem type (a-z, 0-9 and '_', like ext4 or xfs)"),
                ));
            }
        }
        for patch in &self.patches {
            patch.validate()?;
        }
        crate::check_mounts(&self.mounts)?;
        for (key, value) in &self.env {
            check_env(key, value)?;
        }
        if let Some(dir) = &self.workdir {
            if !dir.starts_with('/') {
                return Err(SpecError::new(
                    Field::Workdir,
                    format!("'{dir}' must be an absolute path"),
                ));
            }
        }
        if self.idle_timeout_secs == Some(0) {
            return Err(SpecError::new(Field::IdleTimeout, "must be at least one second"));
        }
        if self.max_duration_secs == Some(0) {
            return Err(SpecError::new(Field::MaxDuration, "must be at least one second"));
        }
        if let Some(signal) = &self.stop_signal {
            crate::parse_signal(signal, Field::StopSignal)?;
        }
        for limit in &self.rlimits {
            limit.validate()?;
        }
        self.validate_scripts()?;
        self.network.validate()?;
        if let Some(secret) = self
            .network
            .secrets
            .iter()
            .find(|s| self.env.iter().any(|(k, _)| *k == s.env))
        {
            return Err(SpecError::new(
                Field::Secrets,
                format!("{} is both a secret and a plain variable (-e): keep one", secret.env),
            ));
        }
        if let Some(shell) = &self.shell {
            if !shell.starts_with('/') || shell.contains('\0') {
                return Err(SpecError::new(
                    Field::Shell,
                    format!("'{shell}' must be an absolute path"),
                ));
            }
        }
        if let Some(key) = self.labels.keys().find(|k| k.is_empty() || k.contains(['=', '\0'])) {
            return Err(SpecError::new(
                Field::Labels,
                format!("'{key}' is not a label name (non-empty, no '=' or NUL)"),
            ));
        }
        if self.upper_size_mib < MIN_UPPER_SIZE_MIB {
            return Err(SpecError::new(
                Field::UpperSize,
                format!(
                    "{} MiB is too small: use at least {MIN_UPPER_SIZE_MIB} MiB",
                    self.upper_size_mib
                ),
            ));
        }
        Ok(())
    }
}

impl SandboxSpec {
    /// Script names are plain file names; their total size fits in one frame.
    fn validate_scripts(&self) -> Result<(), SpecError> {
        let mut total = 0;
        for (name, body) in &self.scripts {
            let plain = !name.is_empty()
                && name.len() <= 255
                && !name.starts_with('.')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
            if !plain {
                return Err(SpecError::new(
                    Field::Scripts,
                    format!(
                        "'{name}' is not a script name (letters, digits, '.', '_', '-', '+'; not starting with '.')"
                    ),
                ));
            }
            total += name.len() + body.len();
        }
        if total > MAX_SCRIPT_BYTES {
            return Err(SpecError::new(
                Field::Scripts,
                format!(
                    "they hold {total} bytes; at most {MAX_SCRIPT_BYTES} (put big files in with patches or volumes)"
                ),
            ));
        }
        Ok(())
    }
}

/// Parses `KEY=VALUE`; `KEY` alone takes its value from `host` (the caller's environment,
/// say), and is an error when `host` has none.
pub fn parse_env(item: &str, host: impl FnOnce(&str) -> Option<String>) -> Result<(String, String), SpecError> {
    let (key, value) = match item.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => {
            let value = host(item).ok_or_else(|| {
                SpecError::new(Field::Env, format!("{item} is not set on the host (use {item}=VALUE)"))
            })?;
            (item.to_string(), value)
        }
    };
    check_env(&key, &value)?;
    Ok((key, value))
}

fn check_env(key: &str, value: &str) -> Result<(), SpecError> {
    if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
        return Err(SpecError::new(
            Field::Env,
            format!(
                "'{}': the name must be non-empty without '=' or NUL, and the value without NUL",
                key.chars().take(80).collect::<String>()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_bounded() {
        assert!(Resources::new(1, 512, 4096).is_ok());
        for (cpus, mem, field) in [
            (0, 512, Field::Cpus),
            (65, 512, Field::Cpus),
            (1, 32, Field::Memory),
            (1, 8192, Field::Memory),
        ] {
            assert_eq!(Resources::new(cpus, mem, 4096).unwrap_err().field, field);
        }
    }

    #[test]
    fn env_items_parse() {
        let none = |_: &str| None;
        assert_eq!(parse_env("A=b=c", none).unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=", none).unwrap(), ("A".into(), "".into()));
        assert_eq!(
            parse_env("H", |k| Some(format!("{k}!"))).unwrap(),
            ("H".into(), "H!".into())
        );
        assert_eq!(parse_env("=x", none).unwrap_err().field, Field::Env);
        assert!(parse_env("UNSET", none).unwrap_err().problem.contains("UNSET"));
    }

    #[test]
    fn validation_names_the_field() {
        let spec = |f: fn(&mut SandboxSpec)| {
            let mut s = SandboxSpec::new("ok", RootSpec::Bind("/r".into()));
            f(&mut s);
            s.validate().map_err(|e| e.field)
        };
        assert_eq!(spec(|_| {}), Ok(()));
        assert_eq!(spec(|s| s.name = "Bad".into()), Err(Field::Name));
        assert_eq!(spec(|s| s.workdir = Some("rel".into())), Err(Field::Workdir));
        assert_eq!(spec(|s| s.idle_timeout_secs = Some(0)), Err(Field::IdleTimeout));
        assert_eq!(spec(|s| s.max_duration_secs = Some(0)), Err(Field::MaxDuration));
        assert_eq!(spec(|s| s.upper_size_mib = 1), Err(Field::UpperSize));
        assert_eq!(spec(|s| s.env = vec![("A\0".into(), "x".into())]), Err(Field::Env));
        assert_eq!(spec(|s| s.patches = vec![Patch::text("rel", "")]), Err(Field::Patches));
        assert_eq!(
            spec(|s| s.scripts.insert("../x".into(), "".into()).map_or((), drop)),
            Err(Field::Scripts)
        );
        assert_eq!(
            spec(|s| s
                .scripts
                .insert("big".into(), "x".repeat(MAX_SCRIPT_BYTES))
                .map_or((), drop)),
            Err(Field::Scripts)
        );
        assert_eq!(spec(|s| s.shell = Some("bash".into())), Err(Field::Shell));
        assert_eq!(spec(|s| s.network.max_connections = 0), Err(Field::MaxConnections));
        assert_eq!(
            spec(|s| s.rlimits = vec![Rlimit {
                resource: crate::RlimitResource::Nofile,
                soft: 2,
                hard: 1
            }]),
            Err(Field::Rlimits)
        );
    }
}
