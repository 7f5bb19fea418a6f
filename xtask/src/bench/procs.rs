//! Finding VM processes after the bench: ours must all be gone; others are load to report.

use std::path::Path;

/// What was running when the bench ended.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Processes started by this bench that were still alive (killed by the sweep).
    pub leftovers: Vec<(u32, String)>,
    /// QEMU processes on the machine that this bench did not start (other users' VMs).
    pub other_qemu: usize,
}

/// Finds processes whose command line mentions `tmp` (every QEMU and virtiofsd this bench
/// starts has its sockets, logs or initramfs there), kills them, and counts other QEMUs.
/// Like `pgrep -f`, but it can tell ours from the rest.
pub fn sweep(tmp: &Path) -> Sweep {
    let needle = tmp.as_os_str().as_encoded_bytes();
    let mut sweep = Sweep::default();
    for (pid, cmdline) in processes() {
        if pid == std::process::id() {
            continue;
        }
        let ours = cmdline.windows(needle.len()).any(|w| w == needle);
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        let is_qemu = String::from_utf8_lossy(argv0).contains("qemu-system");
        if ours {
            // SAFETY: kill(2) on a pid whose command line names our private temp dir.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            let shown = String::from_utf8_lossy(argv0).into_owned();
            sweep.leftovers.push((pid, shown));
        } else if is_qemu {
            sweep.other_qemu += 1;
        }
    }
    sweep
}

/// (pid, raw NUL-separated command line) of every process we can read.
fn processes() -> Vec<(u32, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, std::fs::read(format!("/proc/{pid}/cmdline")).ok()?)))
        .filter(|(_, cmdline)| !cmdline.is_empty())
        .collect()
}
