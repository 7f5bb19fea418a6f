//! Joined disks: several files, one after another, seen by the guest as one read-only
//! disk. An image's EROFS layers ride on one such disk, so an image of any depth takes one
//! virtio slot. Each part starts on a 4 KiB boundary so the guest can read it with direct
//! I/O; QEMU realises the disk as a VMDK descriptor of flat extents (nothing is copied).

use crate::{DiskPart, VmmError};
use msb_protocol::Extent;
use std::path::Path;

const SECTOR: u64 = 512;
/// Parts start on 4 KiB boundaries, so loop devices can read them with direct I/O.
const ALIGN: u64 = 4096;

/// Where each part of a joined disk lies, in order.
pub fn layout(parts: &[DiskPart]) -> Vec<Extent> {
    let mut offset = 0;
    parts
        .iter()
        .map(|part| {
            let len = padded(part.len);
            let extent = Extent { offset, len };
            offset += len;
            extent
        })
        .collect()
}

fn padded(len: u64) -> u64 {
    len.div_ceil(ALIGN) * ALIGN
}

/// The VMDK descriptor text joining extents of these lengths (bytes), each read from the
/// file QEMU knows by its name (the launcher names fd sets, so no path of the host's
/// appears and none needs quoting).
pub(crate) fn vmdk_descriptor(extents: &[(u64, String)]) -> Result<String, VmmError> {
    if extents.is_empty() {
        return Err(VmmError::InvalidSpec("a joined disk needs at least one part".into()));
    }
    let mut lines = String::new();
    for (len, name) in extents {
        if *len == 0 {
            return Err(VmmError::InvalidSpec(format!("part {name} of a joined disk is empty")));
        }
        // Past the end of a flat extent's file QEMU reads zeros, so a part whose size is
        // not a multiple of 4 KiB is padded by declaring its extent longer. QEMU only
        // reads extents marked RW; the drive itself is attached read-only.
        lines.push_str(&format!("RW {} FLAT \"{name}\" 0\n", padded(*len) / SECTOR));
    }
    Ok(format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n\
         # Extent description\n{lines}\n# The Disk Data Base\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n"
    ))
}

/// Writes `text` at `path` (whole, by rename).
pub(crate) fn write_descriptor(path: &Path, text: &str) -> Result<(), VmmError> {
    let tmp = path.with_extension("vmdk.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(VmmError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn part(path: &str, len: u64) -> DiskPart {
        DiskPart { path: path.into(), len }
    }

    #[test]
    fn parts_are_laid_out_back_to_back_on_4k_boundaries() {
        let parts = [part("/l/a.erofs", 5000), part("/l/b.erofs", 8192)];
        assert_eq!(
            layout(&parts),
            [
                Extent { offset: 0, len: 8192 },
                Extent {
                    offset: 8192,
                    len: 8192
                }
            ]
        );
        let extents = [(5000, "/dev/fdset/7".to_string()), (8192, "/dev/fdset/8".to_string())];
        let text = vmdk_descriptor(&extents).unwrap();
        assert!(
            text.contains("RW 16 FLAT \"/dev/fdset/7\" 0\nRW 16 FLAT \"/dev/fdset/8\" 0\n\n"),
            "{text}"
        );
    }

    #[test]
    fn empty_disks_and_parts_are_refused() {
        for bad in [vec![], vec![(0, "/dev/fdset/3".to_string())]] {
            assert!(
                matches!(vmdk_descriptor(&bad), Err(VmmError::InvalidSpec(_))),
                "{bad:?}"
            );
        }
    }
}
