//! `msb-erofs`: turns an OCI layer (an uncompressed tar stream) into an EROFS image,
//! and reads EROFS images back.
//!
//! The writer reads the tar once. File contents are copied into the image as they
//! arrive; only metadata (names, modes, block addresses, small tails) is kept in
//! memory, and the directory blocks and inode table are written after the data, with
//! the superblock's `meta_blkaddr` pointing at them. OCI whiteouts become overlayfs
//! whiteouts (0:0 character devices) and opaque markers become
//! `trusted.overlay.opaque=y`, so the image can serve directly as an overlayfs lower.
//!
//! ```no_run
//! # fn main() -> Result<(), msb_erofs::Error> {
//! let tar = std::fs::File::open("layer.tar").map_err(msb_erofs::Error::Read)?;
//! let out = std::fs::File::create("layer.erofs").map_err(msb_erofs::Error::Write)?;
//! let stats = msb_erofs::write_from_tar(tar, out, &Default::default())?;
//! println!("{} bytes of tar -> {} bytes of EROFS", stats.bytes_in, stats.bytes_out);
//! let mut img = msb_erofs::Reader::open("layer.erofs")?;
//! if let Some(ino) = img.lookup("etc/os-release")? {
//!     let text = img.read_file(&ino)?;
//! #   let _ = text;
//! }
//! # Ok(()) }
//! ```

mod dir;
mod error;
mod ingest;
pub mod layout;
mod path;
mod reader;
mod sparse;
mod spool;
mod tarball;
mod tree;
mod writer;
mod xattr;

use std::io::{Read, Seek, Write};

pub use error::{Error, Result};
pub use reader::{DirEntry, FileKind, FileReader, Inode, Reader};

/// Knobs for `write_from_tar`; `Default` is what OCI layers want.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// mtime (seconds) of directories a tar implies without listing them, and of the
    /// root when the tar has no `./` entry. Default 0, for reproducible images.
    pub implied_mtime: i64,
    /// Volume UUID written to the superblock. Default all zero (reproducible).
    pub uuid: [u8; 16],
    /// Volume name written to the superblock (NUL padded).
    pub volume_name: [u8; 16],
    /// Store whole chunks of zeros as holes instead of writing them. Default true.
    pub detect_holes: bool,
    /// Bytes of file tails kept in memory for packing next to their inodes; past it,
    /// tails take a whole block. Bounds memory on layers with many small files.
    pub inline_budget: usize,
    /// Convert `.wh.` entries to overlayfs whiteouts. Default true.
    pub oci_whiteouts: bool,
    /// Keep `trusted.overlay.*` xattrs found in the tar. Default false: they would be
    /// acted on by the guest's overlayfs, and OCI layers express that with `.wh.` files.
    pub keep_overlay_xattrs: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            implied_mtime: 0,
            uuid: [0; 16],
            volume_name: [0; 16],
            detect_holes: true,
            inline_budget: 256 << 20,
            oci_whiteouts: true,
            keep_overlay_xattrs: false,
        }
    }
}

/// What `write_from_tar` did, for logs and throughput figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Bytes read from the tar stream (including what follows the end marker).
    pub bytes_in: u64,
    /// Size of the image written.
    pub bytes_out: u64,
    /// Tar entries processed (not counting PAX/GNU extension headers).
    pub entries: u64,
    /// Inodes in the image.
    pub inodes: u64,
    /// Regular file entries.
    pub files: u64,
    /// Sum of regular file sizes as listed (apparent size).
    pub file_bytes: u64,
    /// Directory entries.
    pub dirs: u64,
    /// Symlink entries.
    pub symlinks: u64,
    /// Hard link entries.
    pub hardlinks: u64,
    /// Device entries.
    pub devices: u64,
    /// OCI whiteouts converted.
    pub whiteouts: u64,
    /// OCI opaque markers converted.
    pub opaque_dirs: u64,
    /// Xattrs not stored (unsupported namespace, or `trusted.overlay.*`).
    pub dropped_xattrs: u64,
    /// Entries skipped on purpose (aufs `.wh..wh.` bookkeeping).
    pub skipped: u64,
}

/// Converts an uncompressed tar stream into an EROFS image written to `out`.
///
/// `tar` is read once, front to back; `out` should be empty (it is written from the
/// start, mostly sequentially). Memory use grows with the number of entries, not
/// with the bytes of file data.
pub fn write_from_tar<R: Read, W: Write + Seek>(tar: R, out: W, opts: &WriteOptions) -> Result<WriteStats> {
    write_from_tar_into(tar, out, opts).map(|(_, s)| s)
}

/// Like `write_from_tar`, but hands the writer back (useful with in-memory buffers).
pub fn write_from_tar_into<R: Read, W: Write + Seek>(tar: R, out: W, opts: &WriteOptions) -> Result<(W, WriteStats)> {
    let ing = ingest::read_tar(tar, out, opts)?;
    writer::finish(ing, opts)
}
