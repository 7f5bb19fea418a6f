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

    /// The root of the layout.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Where the guest kernel and agent initramfs are installed by default (`lib/`).
    pub fn lib_dir(&self) -> PathBuf {
        self.home.join("lib")
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
