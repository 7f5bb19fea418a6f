//! The layer disk: every EROFS layer of an image, one after another on a single read-only
//! disk, so an image of any depth takes one virtio slot. QEMU joins the layer files with a
//! VMDK descriptor of flat extents (nothing is copied); the guest puts a loop device on
//! each layer's range.

use crate::PatchError;
use msb_protocol::Extent;
use std::io::Write;
use std::path::{Path, PathBuf};

const SECTOR: u64 = 512;
/// Layers start on 4 KiB boundaries, so loop devices can read them with direct I/O.
const ALIGN: u64 = 4096;

/// Writes a VMDK descriptor at `descriptor` joining `layers` (bottom first) and returns
/// where each layer lies on the resulting disk.
pub fn write_layer_disk(layers: &[PathBuf], descriptor: &Path) -> Result<Vec<Extent>, PatchError> {
    if layers.is_empty() {
        return Err(PatchError::Invalid("an image needs at least one layer".into()));
    }
    let mut lines = String::new();
    let mut extents = Vec::with_capacity(layers.len());
    let mut offset = 0u64;
    for layer in layers {
        let len = std::fs::metadata(layer)
            .map_err(PatchError::io(format!("reading layer {}", layer.display())))?
            .len();
        let name = layer
            .to_str()
            .filter(|n| layer.is_absolute() && n.len() <= 511 && !n.contains(['"', '\n', '\r']));
        let Some(name) = name else {
            return Err(PatchError::Invalid(format!(
                "layer path {} cannot be named in a disk descriptor (it must be absolute, at most 511 bytes, without quotes or newlines): move MSB_HOME",
                layer.display()
            )));
        };
        if len == 0 {
            return Err(PatchError::Invalid(format!("layer {} is empty", layer.display())));
        }
        // Past the end of a flat extent's file QEMU reads zeros, so a layer whose size is
        // not a multiple of 4 KiB is padded by declaring its extent longer. QEMU only
        // reads extents marked RW; the drive itself is attached read-only.
        let padded = len.div_ceil(ALIGN) * ALIGN;
        lines.push_str(&format!("RW {} FLAT \"{name}\" 0\n", padded / SECTOR));
        extents.push(Extent { offset, len: padded });
        offset += padded;
    }
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n\
         # Extent description\n{lines}\n# The Disk Data Base\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n"
    );
    let tmp = descriptor.with_extension("vmdk.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, descriptor)
    };
    write().map_err(PatchError::io(format!("writing {}", descriptor.display())))?;
    Ok(extents)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_laid_out_back_to_back_on_4k_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.erofs");
        let b = dir.path().join("b.erofs");
        std::fs::write(&a, vec![1u8; 5000]).unwrap();
        std::fs::write(&b, vec![2u8; 8192]).unwrap();
        let desc = dir.path().join("layers.vmdk");
        let extents = write_layer_disk(&[a.clone(), b.clone()], &desc).unwrap();
        assert_eq!(
            extents,
            [
                Extent { offset: 0, len: 8192 },
                Extent {
                    offset: 8192,
                    len: 8192
                }
            ]
        );
        let text = std::fs::read_to_string(&desc).unwrap();
        assert!(
            text.contains(&format!(
                "RW 16 FLAT \"{}\" 0\nRW 16 FLAT \"{}\" 0\n\n",
                a.display(),
                b.display()
            )),
            "{text}"
        );
        assert!(write_layer_disk(&[PathBuf::from("rel.erofs")], &desc).is_err());
        assert!(write_layer_disk(&[], &desc).is_err());
    }
}
