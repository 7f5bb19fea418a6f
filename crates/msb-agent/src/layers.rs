//! An image's layers as the guest finds them: LUN 0, 1, … on target 0 of the VM's one
//! virtio-scsi controller, each an `sd` disk. The kernel does not scan at boot
//! (`scsi_mod.scan=manual`: its 256 targets cost ~70 ms under TCG); the agent asks for
//! target 0 alone, then waits for the disks, which probe asynchronously.
//!
//! It does so at its start, before its port opens ([`probe`]): a template is saved as soon
//! as the port opens, so it holds the probed disks (of the same sizes, which are in its
//! key) and a guest resumed from it skips the probe, ~35 ms under TCG. What the probe
//! read from the template's placeholders is forgotten after the resume like any disk's.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the disks may take to appear after boot (they take milliseconds).
const APPEARANCE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(1);

/// Scans target 0 and waits until each LUN found there has its disk; nothing to do in a
/// VM without a SCSI controller.
pub fn probe() -> io::Result<()> {
    if !Path::new("/sys/class/scsi_host").exists() {
        return Ok(());
    }
    scan_target_zero()?;
    let deadline = Instant::now() + APPEARANCE;
    while !every_lun_has_its_disk() {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the layers' disks did not appear",
            ));
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Whether every SCSI device on target 0 has its block device in `/dev`.
fn every_lun_has_its_disk() -> bool {
    let Ok(devices) = std::fs::read_dir("/sys/class/scsi_device") else {
        return true;
    };
    for device in devices.flatten() {
        if parse_address(&device.file_name().to_string_lossy()).is_none() {
            continue;
        }
        let disk = std::fs::read_dir(device.path().join("device/block"))
            .ok()
            .and_then(|mut block| block.next())
            .and_then(Result::ok);
        if !disk.is_some_and(|disk| Path::new("/dev").join(disk.file_name()).exists()) {
            return false;
        }
    }
    true
}

/// `/dev/sdX` of each of the `count` layers, bottom layer (LUN 0) first: found by
/// [`probe`] at the agent's start, else probed now.
pub fn disks(count: u32) -> io::Result<Vec<String>> {
    let count = usize::try_from(count).map_err(io::Error::other)?;
    let mut disks = found(count)?;
    if disks.iter().any(Option::is_none) {
        probe()?;
        disks = found(count)?;
    }
    disks
        .into_iter()
        .enumerate()
        .map(|(lun, disk)| {
            disk.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the disk of layer {lun} (SCSI LUN {lun}) did not appear"),
                )
            })
        })
        .collect()
}

/// `/dev/sdX` of LUNs 0 to `count - 1` on target 0, where the disk is there now.
fn found(count: usize) -> io::Result<Vec<Option<String>>> {
    let mut found = vec![None; count];
    for entry in std::fs::read_dir("/sys/block")?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(lun) = lun_on_target_zero(&entry.path()).filter(|lun| *lun < count) {
            if Path::new(&format!("/dev/{name}")).exists() {
                found[lun] = Some(format!("/dev/{name}"));
            }
        }
    }
    Ok(found)
}

/// Asks each SCSI host (there is one) to scan channel 0, target 0, every LUN.
fn scan_target_zero() -> io::Result<()> {
    for host in std::fs::read_dir("/sys/class/scsi_host")?.flatten() {
        std::fs::write(host.path().join("scan"), "0 0 -")
            .map_err(|e| io::Error::new(e.kind(), format!("scanning {}: {e}", host.path().display())))?;
    }
    Ok(())
}

/// The LUN of block device `sys` (`/sys/block/NAME`), if it is a SCSI disk on target 0:
/// its `device` links to a directory named `host:channel:target:lun`.
fn lun_on_target_zero(sys: &Path) -> Option<usize> {
    let device = std::fs::read_link(sys.join("device")).ok()?;
    parse_address(&device.file_name()?.to_string_lossy())
}

/// The LUN of SCSI address `host:channel:target:lun` where channel and target are 0.
fn parse_address(address: &str) -> Option<usize> {
    let parts: Vec<&str> = address.split(':').collect();
    match parts[..] {
        [host, "0", "0", lun] if host.parse::<u32>().is_ok() => lun.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn only_target_zero_addresses_name_a_layer() {
        assert_eq!(parse_address("0:0:0:0"), Some(0));
        assert_eq!(parse_address("2:0:0:17"), Some(17));
        assert_eq!(parse_address("0:0:1:0"), None);
        assert_eq!(parse_address("0:1:0:0"), None);
        assert_eq!(parse_address("0:0:0"), None);
        assert_eq!(parse_address("vda"), None);
        assert_eq!(parse_address("x:0:0:1"), None);
        assert_eq!(parse_address("0:0:0:-1"), None);
    }
}
