//! What makes a guest its own before any user code runs, and above all one resumed from a
//! template, which starts with the memory every other guest of that template had:
//! - the host's fresh randomness goes into the kernel's pool and the kernel's random
//!   generator is forced to reseed from it (at every boot: an early pool under emulation is
//!   thin too);
//! - after a resume, the kernel forgets what it read from the disks: the template was
//!   saved with placeholders of the same sizes behind them, whose blocks its partition scan
//!   cached. Nothing is mounted from them yet, so the cache is dropped and the partitions
//!   of the virtio disks scanned again from this sandbox's disks;
//! - a guest resumed as a new sandbox gets a machine id of its own, where the image has one.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `RNDADDENTROPY`: `_IOW('R', 0x03, int[2])`.
const RNDADDENTROPY: libc::Ioctl = 0x4008_5203;
/// `RNDRESEEDCRNG`: `_IO('R', 0x07)`.
const RNDRESEEDCRNG: libc::Ioctl = 0x5207;
/// `BLKFLSBUF`: `_IO(0x12, 97)`.
const BLKFLSBUF: libc::Ioctl = 0x1261;
/// `BLKRRPART`: `_IO(0x12, 95)`.
const BLKRRPART: libc::Ioctl = 0x125f;

/// Adds `entropy` to the kernel's pool, credited in full, and forces a reseed.
pub fn reseed(entropy: &[u8]) -> io::Result<()> {
    let random = File::options().write(true).open("/dev/urandom")?;
    // `struct rand_pool_info`: bits credited, byte count, then the bytes.
    let bits = i32::try_from(entropy.len() * 8).map_err(|_| io::Error::other("too much entropy"))?;
    let mut info = Vec::with_capacity(8 + entropy.len());
    info.extend_from_slice(&bits.to_ne_bytes());
    info.extend_from_slice(&(bits / 8).to_ne_bytes());
    info.extend_from_slice(entropy);
    // SAFETY: `info` is a complete rand_pool_info of `entropy.len()` bytes, alive for the call.
    if unsafe { libc::ioctl(random.as_raw_fd(), RNDADDENTROPY, info.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: RNDRESEEDCRNG takes no argument.
    if unsafe { libc::ioctl(random.as_raw_fd(), RNDRESEEDCRNG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops what the kernel read from every disk (virtio and SCSI) before the resume (the
/// partition scan at boot read the template's placeholders) and scans each virtio disk
/// for partitions again. The SCSI disks are the image's layers, whole-disk filesystems
/// msb made, without partitions like the placeholders: a rescan (~17 ms under TCG) would
/// find what the kernel has.
pub fn forget_disk_contents() -> io::Result<()> {
    for entry in std::fs::read_dir("/sys/block")?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ops: &[(libc::Ioctl, &str)] = match name.get(..2) {
            Some("vd") => &[
                (BLKFLSBUF, "dropping the cached blocks"),
                (BLKRRPART, "rescanning the partitions"),
            ],
            Some("sd") => &[(BLKFLSBUF, "dropping the cached blocks")],
            _ => continue,
        };
        let disk = File::open(format!("/dev/{name}"))?;
        for &(op, what) in ops {
            // SAFETY: both take no argument.
            if unsafe { libc::ioctl(disk.as_raw_fd(), op) } != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(e.kind(), format!("{what} of {name}: {e}")));
            }
        }
    }
    Ok(())
}

/// Where the image keeps its machine id.
const MACHINE_ID: &str = "/etc/machine-id";

/// Gives a guest resumed as a new sandbox (from a snapshot, as a fork's copy) a machine id
/// of its own where the image has one; an empty or absent file is left for the image's
/// init to fill. Call after [`reseed`]: the id comes from the reseeded generator.
pub fn renew_machine_id() -> io::Result<()> {
    let Ok(old) = std::fs::read(MACHINE_ID) else {
        return Ok(());
    };
    if old.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let mut id = [0u8; 16];
    io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut id)?;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    // Renamed into place: a reader sees the old id or the new one, whole.
    let partial = format!("{MACHINE_ID}.msb-new");
    std::fs::write(&partial, format!("{hex}\n"))?;
    std::fs::rename(&partial, MACHINE_ID)
}
