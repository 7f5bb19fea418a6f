//! What lies under the patches: the rootfs as it is before they apply, seen through the
//! overlay rules (whiteouts hide, opaque directories stop the search, nothing is followed).

use crate::PatchError;
use msb_ext4::{Metadata, Xattrs};

/// The type of an entry in the rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

impl Kind {
    /// How error messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::File => "regular file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::CharDevice => "character device",
            Kind::BlockDevice => "block device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// One visible entry of the lower rootfs: what a copy-up takes along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its type.
    pub kind: Kind,
    /// Owner, mode and time.
    pub meta: Metadata,
    /// Extended attributes, without overlayfs' own (`trusted.overlay.*`).
    pub xattrs: Xattrs,
}

/// The rootfs under the patches, read-only.
pub trait Lower {
    /// The entry visible at `path` (components below `/`; empty for the root), or `None`
    /// when nothing is there or a component on the way is not a directory. Symlinks are
    /// never followed.
    fn entry(&mut self, path: &[&[u8]]) -> Result<Option<Entry>, PatchError>;

    /// The contents of the regular file visible at `path`.
    fn read_file(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError>;

    /// The target of the symlink visible at `path`.
    fn read_link(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError>;

    /// Whether this is an image under a separate upper (errors then say "image layer"),
    /// rather than the very directory the patches are written into.
    fn is_image(&self) -> bool {
        true
    }
}

/// A rootfs with nothing in it (a fresh upper with no image below).
#[derive(Debug, Clone, Copy, Default)]
pub struct Empty;

impl Lower for Empty {
    fn entry(&mut self, _path: &[&[u8]]) -> Result<Option<Entry>, PatchError> {
        Ok(None)
    }

    fn read_file(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError> {
        Err(PatchError::AppendMissing {
            path: crate::display(path),
        })
    }

    fn read_link(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError> {
        self.read_file(path)
    }
}

/// Drops the xattrs overlayfs interprets, which a copy-up must not carry along.
pub(crate) fn without_overlay_xattrs(xattrs: &Xattrs) -> Xattrs {
    xattrs
        .iter()
        .filter(|(k, _)| !k.starts_with(b"trusted.overlay."))
        .cloned()
        .collect()
}
