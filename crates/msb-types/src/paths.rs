//! The on-disk layout under `$MSB_HOME` (default `~/.microsandbox`).

use std::path::{Path, PathBuf};

/// Where msb keeps its files; passed around explicitly rather than looked up globally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    home: PathBuf,
}

impl Paths {
    /// Layout rooted at `home`.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Paths { home: home.into() }
    }

    /// From `$MSB_HOME`, else `~/.microsandbox`.
    pub fn from_env() -> Self {
        if let Some(home) = std::env::var_os("MSB_HOME") {
            return Paths::new(home);
        }
        let user_home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        Paths::new(user_home.join(".microsandbox"))
    }

    /// The root of the layout.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Guest kernel (`$MSB_KERNEL` overrides).
    pub fn kernel(&self) -> PathBuf {
        std::env::var_os("MSB_KERNEL")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.home.join("lib/vmlinux"))
    }

    /// Initramfs holding the guest agent (`$MSB_INITRAMFS` overrides).
    pub fn initramfs(&self) -> PathBuf {
        std::env::var_os("MSB_INITRAMFS")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.home.join("lib/initramfs.cpio"))
    }

    /// Caches: converted layers (`layers/`) and in-progress downloads (`tmp/`).
    pub fn cache_dir(&self) -> PathBuf {
        self.home.join("cache")
    }

    /// Directory of one sandbox.
    pub fn sandbox_dir(&self, name: &str) -> PathBuf {
        self.home.join("sandboxes").join(name)
    }
}
