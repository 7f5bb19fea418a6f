//! Forks: one saved guest made into memory that many copies map at once.
//!
//! A sandbox's snapshot (its memory and devices as one migration stream) is loaded by a
//! helper QEMU whose RAM is a memfd mapped shared, so the load fills the memfd; the
//! helper then saves its devices alone ([`Monitor::save_devices`]) and goes, its guest
//! never having run. Sealed against writes, the memfd is the copies' RAM, mapped private
//! ([`GuestMemory::CopyOf`]): each copy resumes the devices' state over it, its writes stay
//! its own, and every page it never writes stays one page of host memory for all of them.
//! The seal holds against any descriptor: a copy's QEMU, which must open the memfd
//! read-write for QEMU 7.2 to map it writable, still cannot change what the others see.

use crate::{BootError, BootResult};
use msb_vmm::{GuestMemory, Monitor, VmSpec, Vmm, VmmError};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the helper may take to load the saved guest and save its devices (a load
/// writes the guest's whole memory; under TCG ~0.3 s for a small guest).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `/proc/self/fd` name of descriptor `fd` of the process that reads it.
pub fn fd_path(fd: std::os::fd::RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// Loads the guest saved whole in `saved` into a new sealed memfd and its devices' state
/// into the new file `devices` (owner-only), through a helper QEMU launched as `vm` (the
/// copies' devices and size; its `runtime_dir` its own) by `vmm`. The guest never runs.
pub async fn freeze(vm: &VmSpec, vmm: &impl Vmm, saved: &Path, devices: &Path) -> BootResult<OwnedFd> {
    let memory = memfd_create(
        c"msb-fork-memory",
        MemFdCreateFlag::MFD_ALLOW_SEALING | MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| BootError::io("making the fork's memory")(e.into()))?;
    let size = u64::from(vm.memory_mib) << 20;
    nix::unistd::ftruncate(&memory, size as i64).map_err(|e| BootError::io("sizing the fork's memory")(e.into()))?;
    let mut helper = vm.clone();
    helper.resume_from = Some(saved.to_path_buf());
    helper.memory = GuestMemory::Fills(fd_path(memory.as_raw_fd()));
    helper.paused = true;
    let mut process = vmm.launch(&helper).await?;
    let filled: BootResult<()> = tokio::time::timeout(FREEZE_TIMEOUT, async {
        let mut monitor = Monitor::connect(process.take_monitor()?).await?;
        monitor.wait_loaded().await?;
        let file =
            crate::saved::create_private(devices).map_err(BootError::io(format!("creating {}", devices.display())))?;
        monitor.save_devices(&file).await?;
        Ok::<_, BootError>(())
    })
    .await
    .unwrap_or_else(|_| {
        Err(BootError::Vmm(VmmError::Failed {
            what: "the fork's helper VM".into(),
            detail: format!("it did not load and save within {} s", FREEZE_TIMEOUT.as_secs()),
        }))
    });
    let filled = match filled {
        Err(e) => Err(crate::boot::qemu_words_or(&mut process, e).await),
        ok => ok,
    };
    // Its shared mapping must be gone before the seal against writes can be set.
    process.kill().await;
    filled.inspect_err(|_| {
        let _ = std::fs::remove_file(devices);
    })?;
    // The load read every page the saved guest never used (QEMU checks that a zero page
    // is zero), and reading a memfd's hole fills it: give those back.
    let kept = drop_zero_pages(&memory, size).map_err(BootError::io("emptying the fork's unused memory"))?;
    tracing::debug!("the fork's memory holds {} MiB of {} MiB", kept >> 20, size >> 20);
    seal(&memory).map_err(|e| BootError::io("sealing the fork's memory")(e.into()))?;
    Ok(memory)
}

/// Seals `memory` for good: no write, growth or shrinking through any descriptor.
fn seal(memory: &OwnedFd) -> nix::Result<()> {
    let seals = SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_SEAL;
    fcntl(memory.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).map(drop)
}

/// The page zero pages are dropped by.
const PAGE: usize = 4096;

/// Punches a hole wherever the first `size` bytes of `memory` hold a whole zero page, so
/// that those pages take no host memory (a hole reads as zeros). Returns the bytes kept.
fn drop_zero_pages(memory: &OwnedFd, size: u64) -> std::io::Result<u64> {
    let file = std::fs::File::from(memory.try_clone()?);
    let mut chunk = vec![0u8; 1 << 20];
    let mut kept = 0;
    let mut zeros: Option<u64> = None; // where the current run of zero pages began
    let mut offset = 0;
    while offset < size {
        let len = chunk.len().min((size - offset) as usize);
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut chunk[..len], offset)?;
        for (i, page) in chunk[..len].chunks(PAGE).enumerate() {
            let at = offset + (i * PAGE) as u64;
            let zero = is_zero(page);
            if !zero {
                kept += page.len() as u64;
            }
            match (zero, zeros) {
                (true, None) => zeros = Some(at),
                (false, Some(from)) => {
                    punch(&file, from, at)?;
                    zeros = None;
                }
                _ => {}
            }
        }
        offset += len as u64;
    }
    if let Some(from) = zeros {
        punch(&file, from, size)?;
    }
    Ok(kept)
}

fn is_zero(page: &[u8]) -> bool {
    // A slice comparison is one memcmp, fast in any build.
    const ZEROS: [u8; PAGE] = [0; PAGE];
    page == &ZEROS[..page.len()]
}

/// Makes bytes `from..to` of `file` a hole.
fn punch(file: &std::fs::File, from: u64, to: u64) -> std::io::Result<()> {
    use nix::fcntl::FallocateFlags as F;
    let flags = F::FALLOC_FL_PUNCH_HOLE | F::FALLOC_FL_KEEP_SIZE;
    nix::fcntl::fallocate(file.as_raw_fd(), flags, from as i64, (to - from) as i64)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn zero_pages_become_holes_and_the_rest_stays() {
        let memory = memfd_create(c"test", MemFdCreateFlag::MFD_CLOEXEC).unwrap();
        let size = 3 << 20;
        nix::unistd::ftruncate(&memory, size as i64).unwrap();
        let file = std::fs::File::from(memory.try_clone().unwrap());
        // Every page filled, as a load's faults do; a few written, one of them at each end.
        file.write_all_at(&vec![0u8; size], 0).unwrap();
        for at in [0, 5 * PAGE, (1 << 20) + 7, size - 1] {
            file.write_all_at(&[0xa5], at as u64).unwrap();
        }
        let allocated = |f: &std::fs::File| {
            f.metadata()
                .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
                .unwrap()
        };
        assert_eq!(allocated(&file), size as u64);
        assert_eq!(drop_zero_pages(&memory, size as u64).unwrap(), 4 * PAGE as u64);
        assert_eq!(allocated(&file), 4 * PAGE as u64);
        let mut after = vec![0u8; size];
        file.read_exact_at(&mut after, 0).unwrap();
        let mut expected = vec![0u8; size];
        for at in [0, 5 * PAGE, (1 << 20) + 7, size - 1] {
            expected[at] = 0xa5;
        }
        assert!(after == expected, "the contents changed");
    }

    #[test]
    fn sealed_memory_refuses_writes_through_any_descriptor() {
        let memory = memfd_create(c"test", MemFdCreateFlag::MFD_ALLOW_SEALING).unwrap();
        nix::unistd::ftruncate(&memory, 1 << 20).unwrap();
        seal(&memory).unwrap();
        // A copy's QEMU reopens it read-write by its /proc name, as here.
        let reopened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(fd_path(memory.as_raw_fd()))
            .unwrap();
        let refused = reopened.write_all_at(b"x", 0).unwrap_err();
        assert_eq!(refused.raw_os_error(), Some(nix::errno::Errno::EPERM as i32));
        assert!(nix::unistd::ftruncate(&memory, 2 << 20).is_err());
        assert!(fcntl(memory.as_raw_fd(), FcntlArg::F_ADD_SEALS(SealFlag::empty())).is_err());
    }
}
