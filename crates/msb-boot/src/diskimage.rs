//! Disk-image roots are attached read-write, so a file is only taken for one when it is
//! recognisably one: a qcow2 or VMDK container, or raw bytes holding a filesystem the guest
//! kernel can mount. Anything else (`--rootfs /etc/passwd`) is refused before boot.

use msb_types::DiskImageFormat;
use std::io::Read;
use std::path::Path;

/// Why a file is not a usable disk image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct NotADiskImage {
    /// What is wrong.
    pub problem: String,
}

/// Filesystems recognised in a raw image: (name, offset, magic, mountable by our kernel).
const FILESYSTEMS: &[(&str, u64, &[u8], bool)] = &[
    ("ext4", 1080, &[0x53, 0xEF], true),
    ("erofs", 1024, &[0xE2, 0xE1, 0xF5, 0xE0], true),
    ("xfs", 0, b"XFSB", false),
    ("btrfs", 0x10040, b"_BHRfS_M", false),
    ("squashfs", 0, b"hsqs", false),
];

/// Checks that `path` holds a disk image of `format`; for a raw image returns the
/// filesystem type found (for the guest to mount it with).
pub fn probe(path: &Path, format: DiskImageFormat) -> std::io::Result<Result<Option<String>, NotADiskImage>> {
    let mut head = Vec::new();
    std::fs::File::open(path)?.take(0x10040 + 8).read_to_end(&mut head)?;
    let at = |offset: u64, magic: &[u8]| {
        usize::try_from(offset)
            .ok()
            .and_then(|o| head.get(o..o + magic.len()))
            .is_some_and(|bytes| bytes == magic)
    };
    let refuse = |problem: String| Ok(Err(NotADiskImage { problem }));
    match format {
        DiskImageFormat::Qcow2 if at(0, b"QFI\xfb") => Ok(Ok(None)),
        DiskImageFormat::Qcow2 => refuse("is not a qcow2 image (no QFI magic)".into()),
        DiskImageFormat::Vmdk if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") => Ok(Ok(None)),
        DiskImageFormat::Vmdk => refuse("is not a VMDK image".into()),
        DiskImageFormat::Raw => match FILESYSTEMS.iter().find(|(_, offset, magic, _)| at(*offset, magic)) {
            Some((name, _, _, true)) => Ok(Ok(Some((*name).to_string()))),
            Some((name, _, _, false)) => refuse(format!(
                "holds a {name} filesystem, which the guest kernel cannot mount (use ext4)"
            )),
            None => refuse(
                "has no filesystem on the root disk image: it is not qcow2 or VMDK, and holds no ext2/3/4 or \
                 EROFS filesystem"
                    .into(),
            ),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn probe_bytes(bytes: &[u8], format: DiskImageFormat) -> Result<Option<String>, NotADiskImage> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, bytes).unwrap();
        probe(&path, format).unwrap()
    }

    fn with(offset: usize, magic: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x11000];
        bytes[offset..offset + magic.len()].copy_from_slice(magic);
        bytes
    }

    #[test]
    fn images_are_recognised_and_other_files_refused() {
        assert_eq!(
            probe_bytes(&with(1080, &[0x53, 0xEF]), DiskImageFormat::Raw),
            Ok(Some("ext4".into()))
        );
        assert_eq!(probe_bytes(&with(0, b"QFI\xfb"), DiskImageFormat::Qcow2), Ok(None));
        assert_eq!(probe_bytes(b"# Disk DescriptorFile\n", DiskImageFormat::Vmdk), Ok(None));
        assert!(probe_bytes(b"root:x:0:0:root:/root:/bin/sh\n", DiskImageFormat::Raw)
            .unwrap_err()
            .problem
            .contains("no filesystem on the root disk"));
        assert!(probe_bytes(&with(0, b"XFSB"), DiskImageFormat::Raw)
            .unwrap_err()
            .problem
            .contains("xfs"));
        assert!(probe_bytes(&with(1080, &[0x53, 0xEF]), DiskImageFormat::Qcow2).is_err());
        assert!(probe_bytes(b"", DiskImageFormat::Raw).is_err());
    }
}
