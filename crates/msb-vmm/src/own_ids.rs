//! A uid and gid of QEMU's own when msb runs as root. A guest that breaks out of QEMU then
//! holds a process of an id that owns no file on the host and no other process: not root's
//! files, not another sandbox's QEMU. Every file QEMU needs is handed to it as a descriptor
//! (see `handed`), so it needs no right to any path.
//!
//! The id is [`BASE`] plus QEMU's own pid, taken in the child just before exec, so no two
//! live QEMUs share one and nothing has to be allocated or given back (only in the host's
//! own pid namespace, where pids are unique host-wide; see [`available`]). The range lies in
//! the block systemd's map of user ids leaves unused (0x70000000–0x7FFDFFFF), above the
//! ranges it gives containers and below the ids some tools treat as negative.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// The first id of the range.
pub const BASE: u32 = 0x7000_0000;
/// Ids in the range: one per possible pid (the kernel's most, 2^22).
const SPAN: u32 = 1 << 22;

/// QEMU's uid (and gid) when its pid is `pid`.
pub fn of_pid(pid: u32) -> u32 {
    BASE + pid % SPAN
}

/// The initial pid and user namespaces, as `/proc/self/ns` names them (the kernel's fixed
/// inode numbers for them).
const INITIAL_NAMESPACES: [(&str, &str); 2] = [
    ("/proc/self/ns/pid", "pid:[4026531836]"),
    ("/proc/self/ns/user", "user:[4026531837]"),
];

/// Whether QEMU gets ids of its own here: msb is root in the host's own pid and user
/// namespaces, where pids, and so the ids made from them, are unique host-wide. In a
/// container two QEMUs of two containers could share a pid, and so an id.
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && INITIAL_NAMESPACES
        .iter()
        .all(|(link, initial)| std::fs::read_link(link).is_ok_and(|ns| ns.as_os_str() == *initial))
}

/// Whether anyone may read `path` (QEMU under ids of its own reopens the kernel and the
/// initramfs by their descriptors, which checks the file's own mode).
pub fn readable_by_anyone(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// How QEMU under ids of its own opens `/dev/kvm`: `Ok(None)` as anyone, `Ok(Some(gid))`
/// through the group that may; `Err` why it cannot (the group is root's, or may not
/// write).
pub fn kvm_group() -> Result<Option<u32>, String> {
    let meta = std::fs::metadata("/dev/kvm").map_err(|e| format!("/dev/kvm: {e}"))?;
    kvm_access(meta.permissions().mode(), meta.gid())
}

/// [`kvm_group`] for a device of this mode and group.
fn kvm_access(mode: u32, gid: u32) -> Result<Option<u32>, String> {
    if mode & 0o006 == 0o006 {
        Ok(None)
    } else if mode & 0o060 == 0o060 && gid != 0 {
        Ok(Some(gid))
    } else {
        Err(format!(
            "/dev/kvm (mode {:o}, group {gid}) is open to no unprivileged group",
            mode & 0o777
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pid_has_its_id_inside_the_range() {
        assert_eq!(of_pid(1), BASE + 1);
        assert_eq!(of_pid(4_194_303), BASE + SPAN - 1);
        assert!(of_pid(u32::MAX) < BASE + SPAN);
    }

    #[test]
    fn kvm_is_opened_as_anyone_or_through_an_unprivileged_group() {
        assert_eq!(kvm_access(0o20666, 108), Ok(None));
        assert_eq!(kvm_access(0o20660, 108), Ok(Some(108)));
        assert!(kvm_access(0o20660, 0).is_err(), "root's group is no way in");
        assert!(kvm_access(0o20640, 108).is_err(), "a group that may not write");
        assert!(kvm_access(0o20600, 108).is_err());
    }
}
