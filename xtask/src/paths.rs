//! Where build outputs and caches live.

use std::path::PathBuf;

/// The workspace root (parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The user's home directory (`$HOME`, else /root).
pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Long-lived build cache shared by checkouts (`$XDG_CACHE_HOME/msb`, default `~/.cache/msb`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"))
        .join("msb")
}

/// `$MSB_HOME/lib`, where `msb` looks for the guest kernel and initramfs.
pub fn msb_lib_dir() -> PathBuf {
    std::env::var_os("MSB_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".microsandbox"))
        .join("lib")
}
