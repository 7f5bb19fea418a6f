//! What can go wrong writing an image. Tree errors name the path inside the tree
//! (non-UTF-8 and control bytes escaped) and say what to change.

use std::path::PathBuf;

/// An image could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image size is outside what this writer makes.
    #[error("image size {size} bytes is out of range: it must be from 16 MiB to 16 TiB (32-bit block numbers)")]
    Size {
        /// The size asked for.
        size: u64,
    },
    /// The inode ratio is outside what mke2fs accepts.
    #[error("bytes_per_inode {bytes_per_inode} is out of range: use 1024 to 64 MiB (16384 is usual)")]
    BytesPerInode {
        /// The ratio asked for.
        bytes_per_inode: u64,
    },
    /// The journal size is outside what jbd2 accepts.
    #[error("journal_blocks {blocks} is out of range: use 0 for no journal, or 1024 to 10240000 blocks")]
    JournalSize {
        /// The size asked for, in 4096-byte blocks.
        blocks: u32,
    },
    /// A zero hash seed would leave the kernel to pick one at mount time.
    #[error("hash_seed is all zeros: set one (Options::with_random_ids) so directory hashes are seeded")]
    HashSeed,
    /// An entry name that ext4 cannot hold.
    #[error(
        "{path}: invalid name: a name is 1 to 255 bytes, without '/' or NUL, and not '.' or '..'; rename the entry"
    )]
    Name {
        /// The entry (its last component is the bad name).
        path: String,
    },
    /// A symlink target that ext4 cannot hold.
    #[error("{path}: symlink target of {len} bytes is invalid: targets are 1 to 4095 bytes without NUL")]
    SymlinkTarget {
        /// The symlink.
        path: String,
        /// The target's length.
        len: usize,
    },
    /// Mode bits beyond permissions, setuid, setgid and sticky.
    #[error("{path}: mode {mode:#o} has bits outside 0o7777; give only permission, setuid, setgid and sticky bits")]
    Mode {
        /// The node.
        path: String,
        /// The mode given.
        mode: u16,
    },
    /// Nanoseconds of a second that are not below one second.
    #[error("{path}: mtime nanoseconds {nsec} must be below 1000000000")]
    Nanoseconds {
        /// The node.
        path: String,
        /// The value given.
        nsec: u32,
    },
    /// A device number the kernel cannot represent.
    #[error("{path}: device {major}:{minor} cannot be stored: major must be below 4096 and minor below 1048576")]
    Device {
        /// The device node.
        path: String,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// One extended attribute that cannot be stored.
    #[error("{path}: extended attribute {name}: {reason}")]
    Xattr {
        /// The node.
        path: String,
        /// The attribute's full name (escaped).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Extended attributes of one node that do not fit in the inode plus one block.
    #[error("{path}: extended attributes need {needed} bytes, more than the inode and one 4096-byte block hold; drop or shorten some")]
    XattrsTooLarge {
        /// The node.
        path: String,
        /// Bytes they would need in one block.
        needed: usize,
    },
    /// A hard-link group with more entries than ext4 counts.
    #[error("{path}: {count} hard links exceed the ext4 limit of 65000; copy the file instead of linking it")]
    TooManyLinks {
        /// The first entry of the group.
        path: String,
        /// Entries in the group.
        count: u64,
    },
    /// A file bigger than extent-mapped ext4 files can be.
    #[error("{path}: file of {len} bytes exceeds the ext4 limit of 16 TiB - 4 KiB")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its length.
        len: u64,
    },
    /// A directory whose entries take more than a linear directory can hold.
    #[error("{path}: directory entries take {bytes} bytes, more than a directory can hold (2 GiB); split it")]
    DirTooLarge {
        /// The directory.
        path: String,
        /// Bytes of entries.
        bytes: u64,
    },
    /// `lost+found` at the root is not a directory.
    #[error("/lost+found: must be a directory (e2fsck needs it); remove or rename the entry")]
    LostFound,
    /// More inodes needed than the image has.
    #[error("the tree needs {needed} inodes but an image of {size} bytes has {available}; lower bytes_per_inode or raise size")]
    NoInodes {
        /// Inodes the tree needs, reserved ones included.
        needed: u64,
        /// Inodes in the image.
        available: u64,
        /// The image size.
        size: u64,
    },
    /// The data does not fit.
    #[error("{path}: no space left in an image of {size} bytes; make the image larger")]
    NoSpace {
        /// What was being placed when space ran out.
        path: String,
        /// The image size.
        size: u64,
    },
    /// A host file no longer has the length the tree recorded.
    #[error("{path}: host file {} now has {actual} bytes but the tree says {expected}; it changed after the tree was built, rebuild the tree", host.display())]
    HostChanged {
        /// The file in the tree.
        path: String,
        /// The host file.
        host: PathBuf,
        /// Length recorded in the tree.
        expected: u64,
        /// Length found (at least this much when it grew while being read).
        actual: u64,
    },
    /// A host file could not be read.
    #[error("{path}: cannot read host file {}", host.display())]
    HostRead {
        /// The file in the tree.
        path: String,
        /// The host file.
        host: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image file could not be written.
    #[error("cannot write the image ({what})")]
    Write {
        /// Which step.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
