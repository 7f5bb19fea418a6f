//! The end of the VM: every process stopped, filesystems synced and frozen clean, then a
//! reboot (with `reboot=t` and QEMU's `-no-reboot`, QEMU exits).

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::os::fd::AsRawFd;

/// Sends `signal` to every process but PID 1 (pid -1 in `kill(2)`).
pub fn signal_all(signal: Signal) {
    let _ = kill(Pid::from_raw(-1), signal);
}

/// User processes still present (zombies not yet reaped included; kernel threads not).
pub fn processes_left() -> u32 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut count = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid <= 2 {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the command (which may hold spaces) start after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        // Kernel threads are children of kthreadd (pid 2).
        if ppid.is_some_and(|p| p != 2) {
            count += 1;
        }
    }
    count
}

/// Flushes everything and freezes each filesystem in `writable`: a frozen ext4 has its
/// journal flushed and its `needs_recovery` flag cleared, so the host finds it clean.
pub fn sync_and_freeze(writable: &[File]) {
    nix::unistd::sync();
    for fs in writable {
        // SAFETY: FIFREEZE takes no argument beyond the descriptor, which is open.
        let rc = unsafe { libc::ioctl(fs.as_raw_fd(), FIFREEZE, 0) };
        if rc != 0 {
            crate::log(&format!("freezing a filesystem: {}", std::io::Error::last_os_error()));
        }
    }
}

/// `_IOWR('X', 119, int)` from linux/fs.h.
const FIFREEZE: libc::c_ulong = 0xC004_5877;

/// Syncs and reboots; with `reboot=t` and QEMU's `-no-reboot` that ends the VM.
pub fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    // reboot(2) only returns on failure (not PID 1, or no CAP_SYS_BOOT).
    std::process::exit(1)
}
