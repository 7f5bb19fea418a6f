//! The host's settings: where the guest kernel, the agent and the VMM's programs are, and
//! which accelerator to use. Built once at the edge (the CLI's and SDK's `from_env`) and
//! passed down as a value; nothing below reads the process environment.

use msb_types::Paths;
use msb_vmm::AccelSetting;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the host's boot artefacts and programs are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostConfig {
    /// Guest kernel (uncompressed, PVH).
    pub kernel: PathBuf,
    /// Initramfs holding the guest agent.
    pub initramfs: PathBuf,
    /// `qemu-system-x86_64`, if found.
    pub qemu: Option<PathBuf>,
    /// virtiofsd, if found (needed for directory roots).
    pub virtiofsd: Option<PathBuf>,
    /// Whether sandboxes may resume from templates (see [`crate::template`]); `false`:
    /// every VM boots cold (`MSB_NO_TEMPLATE=1`).
    #[serde(default = "yes")]
    pub templates: bool,
    /// Which accelerator to use.
    pub accel: AccelSetting,
}

fn yes() -> bool {
    true
}

impl HostConfig {
    /// The kernel and initramfs where `cargo xtask` installs them under `paths`
    /// (`lib/vmlinux`, `lib/initramfs.cpio`), the programs as found in `search` (in order),
    /// templates on, and the accelerator chosen automatically.
    pub fn installed(paths: &Paths, search: &[PathBuf]) -> HostConfig {
        let lib = paths.lib_dir();
        HostConfig {
            kernel: lib.join("vmlinux"),
            initramfs: lib.join("initramfs.cpio"),
            qemu: find_program("qemu-system-x86_64", search),
            virtiofsd: find_program("virtiofsd", search),
            templates: true,
            accel: AccelSetting::Auto,
        }
    }
}

/// The first executable file called `name` in `dirs`.
pub fn find_program(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_search_order_and_must_be_executable() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        for dir in [&a, &b] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::write(a.join("virtiofsd"), "").unwrap();
        std::fs::write(b.join("virtiofsd"), "").unwrap();
        std::fs::set_permissions(b.join("virtiofsd"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dirs = [a.clone(), b.clone()];
        assert_eq!(find_program("virtiofsd", &dirs), Some(b.join("virtiofsd")));
        std::fs::set_permissions(a.join("virtiofsd"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_program("virtiofsd", &dirs), Some(a.join("virtiofsd")));
        let host = HostConfig::installed(&Paths::new("/h"), &dirs);
        assert_eq!(host.kernel, PathBuf::from("/h/lib/vmlinux"));
        assert_eq!(host.qemu, None);
        assert_eq!(host.virtiofsd, Some(a.join("virtiofsd")));
    }
}
