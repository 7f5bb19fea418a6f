//! The Debian fixture (`cargo xtask rootfs --debian`): bookworm minbase with curl,
//! ca-certificates, python3-requests and nodejs, for tests of real TLS clients in a guest.

use crate::{home_dir, missing_prerequisite, vm_available, Sandbox};
use std::path::PathBuf;

/// The cached tree: `MSB_TEST_DEBIAN_ROOTFS` (set by `cargo xtask ci`), else where xtask
/// caches it. Never boot it itself: [`world`] gives a test its own copy.
pub fn rootfs() -> PathBuf {
    std::env::var_os("MSB_TEST_DEBIAN_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".cache/msb/rootfs/debian"))
}

/// A fresh world whose rootfs is a private copy of the Debian tree (about a second to
/// copy its 200 MiB), when VMs and the tree are available; else `None` (the test skips),
/// or a panic under `MSB_REQUIRE_VM=1`.
pub fn world() -> Option<Sandbox> {
    if !vm_available() {
        return None;
    }
    let base = rootfs();
    // xtask renames the tree into place complete, stamp included.
    if !base.join(".msb-recipe").is_file() {
        missing_prerequisite(&format!(
            "Debian test rootfs missing: {} (run `cargo xtask rootfs --debian`)",
            base.display()
        ));
        return None;
    }
    Some(Sandbox::with_rootfs(&base))
}
