//! The sandbox's writable upper image: an ext4 filesystem whose `upper/` is overlayfs'
//! upper directory (with the patches already in it) and whose `work/` is its work dir.

use crate::{build_upper, open_stack, PatchError};
use msb_ext4::{Dir, Metadata, Node, Options};
use msb_types::Patch;
use std::path::{Path, PathBuf};

/// Writes the upper image for an image with `layers` (bottom first) to `out`, `size` bytes
/// (sparse), with `patches` baked in. Everything is checked before the file appears: a
/// failed or interrupted build leaves no `out` behind.
pub fn write_upper_image(
    patches: &[Patch],
    layers: &[PathBuf],
    out: &Path,
    size: u64,
    now: i64,
) -> Result<msb_ext4::Stats, PatchError> {
    let upper = build_upper(patches, &mut open_stack(layers)?, now)?;
    write_upper_tree(upper, out, size, now)
}

/// Writes the upper image holding the upper tree `upper` (from [`build_upper`]) to `out`,
/// `size` bytes (sparse); a failed or interrupted write leaves no `out` behind.
pub fn write_upper_tree(upper: Dir, out: &Path, size: u64, now: i64) -> Result<msb_ext4::Stats, PatchError> {
    let mut root = Dir::new(Metadata::root(0o755, now));
    root.entries.insert(b"upper".to_vec(), Node::Dir(upper));
    root.entries
        .insert(b"work".to_vec(), Node::Dir(Dir::new(Metadata::root(0o700, now))));
    let opts = Options {
        size,
        now,
        ..Options::default()
    }
    .with_random_ids()
    .map_err(PatchError::io("reading /dev/urandom"))?;
    let tmp = out.with_extension("ext4.tmp");
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(PatchError::io(format!("creating {}", tmp.display())))?;
        let stats = msb_ext4::write(&root, &file, &opts).map_err(|source| PatchError::Image {
            path: out.to_path_buf(),
            source,
        })?;
        file.sync_all()
            .map_err(PatchError::io(format!("syncing {}", tmp.display())))?;
        std::fs::rename(&tmp, out).map_err(PatchError::io(format!("installing {}", out.display())))?;
        Ok(stats)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
