//! The helpers' view of the host's files, shut with Landlock. QEMU may read the system's
//! programs and libraries and the VM's kernel and initramfs, and use a few devices; nothing
//! else — not its disks' or runtime directories (it was handed what it needs there), not the
//! user's home, not `/etc`. A virtiofsd without namespaces (see `virtiofsd::FsSandbox`) may
//! read the system's files and use its share and socket directory. Built here, in msb, and
//! enforced in the child just before it executes the helper (see
//! `child::spawn_owned`). The supervisor shuts its own view with the same pieces
//! (`msb-supervisor::landlock`). On a kernel without Landlock there is no ruleset and
//! nothing is enforced (`msb doctor` says so).

use crate::{Share, VmSpec, VmmError};
use landlock::{
    Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, ABI,
};
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The Landlock ABI whose file rights we handle: reading, writing, making and removing
/// files, truncation (v3). Later ABIs add device ioctls, which QEMU needs on `/dev/kvm`;
/// leaving them unhandled keeps them allowed.
const ABI_HANDLED: ABI = ABI::V3;

/// Read-only trees and files every QEMU needs: its binary, libraries and firmware, the
/// loader's cache, and the kernel's views of itself and of the hardware.
const SYSTEM_READ: &[&str] = &["/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/proc", "/sys"];

/// Devices QEMU opens read-write.
const QEMU_DEVICES: &[&str] = &["/dev/kvm", "/dev/null", "/dev/urandom", "/dev/random"];

/// Devices virtiofsd opens read-write.
const VIRTIOFSD_DEVICES: &[&str] = &["/dev/null"];

/// What one rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Reading files and listing directories.
    Read,
    /// Everything the handled ABI covers: also writing, making, removing and renaming.
    ReadWrite,
    /// Only removing empty directories beneath (a directory's own removal is a right on
    /// its parent).
    RemoveEmptyDirs,
}

/// The system's files to read, and `devices` to read and write.
pub fn system_rules(devices: &[&str]) -> Vec<(PathBuf, Grant)> {
    let mut rules: Vec<(PathBuf, Grant)> = SYSTEM_READ.iter().map(|p| (PathBuf::from(p), Grant::Read)).collect();
    rules.extend(devices.iter().map(|p| (PathBuf::from(p), Grant::ReadWrite)));
    rules
}

/// The paths QEMU may use for `spec`, and how: besides the system's, only the kernel and
/// initramfs, which it reopens through the descriptors it was handed (every other file and
/// socket of its VM it uses through its descriptor alone; see `handed`).
fn rules(spec: &VmSpec) -> Vec<(PathBuf, Grant)> {
    let mut rules = system_rules(QEMU_DEVICES);
    rules.push((spec.kernel.clone(), Grant::Read));
    rules.push((spec.initramfs.clone(), Grant::Read));
    rules
}

/// The ruleset confining a QEMU that runs `spec`, as the descriptor the child enforces;
/// `None` where the kernel has no Landlock.
pub(crate) fn qemu_ruleset(spec: &VmSpec) -> Result<Option<OwnedFd>, VmmError> {
    ruleset("QEMU", rules(spec))
}

/// The ruleset confining a virtiofsd that serves `share` on a socket in `socket_dir`.
pub(crate) fn virtiofsd_ruleset(share: &Share, socket_dir: &Path) -> Result<Option<OwnedFd>, VmmError> {
    let mut rules = system_rules(VIRTIOFSD_DEVICES);
    let grant = if share.readonly { Grant::Read } else { Grant::ReadWrite };
    rules.push((share.dir.clone(), grant));
    rules.push((socket_dir.to_path_buf(), Grant::ReadWrite));
    ruleset("virtiofsd", rules)
}

/// A ruleset of `rules` (paths that do not exist are left out), as a descriptor to
/// enforce with [`restrict_thread`]; `None` where the kernel has no Landlock. `what` names
/// whom it is for in errors.
pub fn ruleset(what: &str, rules: Vec<(PathBuf, Grant)>) -> Result<Option<OwnedFd>, VmmError> {
    let failed = |e: &dyn std::fmt::Display| VmmError::InvalidSpec(format!("building {what}'s Landlock ruleset: {e}"));
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_HANDLED))
        .and_then(|r| r.create())
        .map_err(|e| failed(&e))?;
    for (path, grant) in rules {
        let Some(access) = access_for(&path, grant) else {
            continue;
        };
        let fd = PathFd::new(&path).map_err(|e| failed(&e))?;
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(|e| failed(&e))?;
    }
    Ok(ruleset.into())
}

/// Puts the calling thread, and every thread and process it starts from now on, under
/// `ruleset` for good, with no new privileges first (which Landlock requires of a thread
/// without `CAP_SYS_ADMIN`). Other threads stay as they were. Async-signal-safe (two
/// system calls).
pub fn restrict_thread(ruleset: RawFd) -> std::io::Result<()> {
    // SAFETY: prctl and landlock_restrict_self take plain numbers and touch no memory.
    let failed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The rights `grant` stands for on `path` (a file gets no directory rights); `None` for a
/// path that does not exist (an optional system path such as `/lib64`).
fn access_for(path: &Path, grant: Grant) -> Option<landlock::BitFlags<AccessFs>> {
    let meta = std::fs::metadata(path).ok()?;
    let access = match grant {
        Grant::Read => AccessFs::from_read(ABI_HANDLED),
        Grant::ReadWrite => AccessFs::from_all(ABI_HANDLED),
        Grant::RemoveEmptyDirs => AccessFs::RemoveDir.into(),
    };
    Some(if meta.is_dir() {
        access
    } else {
        access & AccessFs::from_file(ABI_HANDLED)
    })
}

#[cfg(test)]
mod tests;
