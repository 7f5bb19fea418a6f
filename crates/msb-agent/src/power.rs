//! Orderly end of the VM: stop every process, flush filesystems, reboot (QEMU exits).

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// Sends SIGTERM to every process, waits up to `grace` for them to go, then SIGKILLs the rest.
pub fn stop_all_processes(grace: Duration) {
    // pid -1: every process except PID 1 itself.
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(nix::errno::Errno::ECHILD) => return,
            Ok(nix::sys::wait::WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
            _ => {}
        }
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
}

/// Syncs and reboots; with `reboot=t` and QEMU's `-no-reboot` that ends the VM.
pub fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    // reboot(2) only returns on failure (not PID 1, or no CAP_SYS_BOOT).
    std::process::exit(1)
}
