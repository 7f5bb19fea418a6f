//! `msb-ext4`: writes a fresh ext4 image from an in-memory [`Dir`] tree, without root
//! privileges, loop devices or e2fsprogs. It is how a sandbox's writable upper layer is
//! made, with patches and overlayfs whiteouts already in it.
//!
//! Why write ext4 ourselves rather than run `mke2fs -d DIR`: the upper layer holds
//! overlayfs whiteouts (character devices 0:0) and `trusted.*` xattrs (opaque
//! directories), and putting those in a host directory first needs `mknod` and
//! `CAP_SYS_ADMIN`. Scripting `debugfs` instead cannot express arbitrary file names
//! (newlines, non-UTF-8 bytes) and costs a process plus per-command parsing. This writer
//! is exact (every field is chosen here), unprivileged, one pass and fast; the tests check
//! every image it makes with `e2fsck -fn`, read it back with `debugfs`, and, as root,
//! mount it, write to it and use it as an overlayfs upper.
//!
//! The format: 4 KiB blocks, 32-bit block numbers (16 MiB to 16 TiB), classic block
//! groups with `sparse_super` backups, 256-byte inodes with nanosecond times, extents,
//! linear directories, xattrs in the inode or one block, an optional internal jbd2
//! journal. Unwritten regions (inode tables, the journal, file holes) are holes in the
//! image file, so an empty 4 GiB image takes a few hundred KiB on disk.
//!
//! ```no_run
//! use msb_ext4::{Dir, Metadata, Node, Options};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut root = Dir::new(Metadata::root(0o755, 0));
//! root.insert(&[b"gone"], Node::whiteout()).map_err(|_| "no parent")?;
//! let out = std::fs::File::create("upper.ext4")?;
//! let opts = Options { size: 1 << 30, ..Options::default() }.with_random_ids()?;
//! let stats = msb_ext4::write(&root, &out, &opts)?;
//! # let _ = stats;
//! # Ok(()) }
//! ```

mod alloc;
mod data;
mod dir;
mod error;
mod extent;
mod inode;
mod journal;
mod layout;
mod plan;
mod sink;
mod tree;
mod writer;
mod xattr;

use std::io::Read;

pub use error::Error;
pub use tree::{Data, Dir, File, Metadata, Node, SpecialKind, Xattrs, OPAQUE_XATTR};

/// How the image is made. `Default` is a 4 GiB image with an 8 MiB journal and fixed ids;
/// call [`Options::with_random_ids`] for a unique UUID and hash seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Image size in bytes (16 MiB to 16 TiB); the image file gets exactly this length.
    pub size: u64,
    /// One inode per this many bytes of image (1024 to 64 MiB).
    pub bytes_per_inode: u64,
    /// Journal size in 4 KiB blocks: 0 for none, else 1024 to 10240000.
    pub journal_blocks: u32,
    /// Volume label (NUL-padded).
    pub label: [u8; 16],
    /// Volume UUID; also the journal's.
    pub uuid: [u8; 16],
    /// Seed of the directory index hash; must not be all zeros.
    pub hash_seed: [u8; 16],
    /// Seconds since the epoch for filesystem times, the journal and a made-up `lost+found`.
    pub now: i64,
}

/// Fixed UUID of `Options::default()`, so images are reproducible unless asked otherwise.
const DEFAULT_UUID: [u8; 16] = *b"msb-ext4-upper-0";
/// Fixed hash seed of `Options::default()`.
const DEFAULT_HASH_SEED: [u8; 16] = *b"msb-ext4-dirhash";

impl Default for Options {
    fn default() -> Options {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Options {
            size: 4 << 30,
            bytes_per_inode: 16384,
            journal_blocks: 2048,
            label: [0; 16],
            uuid: DEFAULT_UUID,
            hash_seed: DEFAULT_HASH_SEED,
            now,
        }
    }
}

impl Options {
    /// These options with a random (version 4) UUID and hash seed from `/dev/urandom`.
    pub fn with_random_ids(mut self) -> std::io::Result<Options> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        self.uuid.copy_from_slice(&bytes[..16]);
        self.uuid[6] = (self.uuid[6] & 0x0f) | 0x40;
        self.uuid[8] = (self.uuid[8] & 0x3f) | 0x80;
        self.hash_seed.copy_from_slice(&bytes[16..]);
        if self.hash_seed == [0; 16] {
            self.hash_seed = DEFAULT_HASH_SEED;
        }
        Ok(self)
    }
}

/// What [`write()`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Inodes in use, the reserved ones (1 to 11) included.
    pub inodes: u64,
    /// Blocks allocated to the journal, files, directories, symlinks, extent trees and xattrs.
    pub data_blocks: u64,
    /// Blocks in the filesystem.
    pub total_blocks: u64,
    /// Bytes actually written to the image file (the rest are holes).
    pub bytes_written: u64,
}

/// Writes `root` as a fresh ext4 filesystem into `out`, which is truncated and set to
/// `opts.size` bytes (sparse). `root` becomes inode 2; `lost+found` is added (or taken
/// from the tree, where it must be a directory). A hard-link group takes its attributes
/// and data from its first file in a depth-first walk in name order.
pub fn write(root: &Dir, out: &std::fs::File, opts: &Options) -> Result<Stats, Error> {
    writer::write(root, out, opts)
}
