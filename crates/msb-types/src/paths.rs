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

    /// Directory holding a named volume's contents.
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.home.join("volumes").join(name)
    }

    /// The ext4 image of a sized volume (absent for a directory volume). It lives apart
    /// from every volume directory: those are shared with guests, which could otherwise
    /// plant a file, or a symlink to any host file, where a disk is looked for.
    pub fn volume_disk(&self, name: &str) -> PathBuf {
        self.home.join("volume-disks").join(format!("{name}.ext4"))
    }

    /// Whether volume `name` is a sized one: its disk is a regular file (a symlink is not
    /// followed, and does not count).
    pub fn is_sized_volume(&self, name: &str) -> bool {
        std::fs::symlink_metadata(self.volume_disk(name)).is_ok_and(|m| m.file_type().is_file())
    }

    /// Directory of one sandbox.
    pub fn sandbox_dir(&self, name: &str) -> PathBuf {
        self.home.join("sandboxes").join(name)
    }

    /// Where sandbox snapshots are kept, one directory each.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.home.join("snapshots")
    }

    /// Directory of one snapshot.
    pub fn snapshot_dir(&self, name: &str) -> PathBuf {
        self.snapshots_dir().join(name)
    }
}
