//! On-disk EROFS structures: constants, and encoding/decoding of the superblock,
//! inodes and directory entries (little endian, as in Linux `fs/erofs/erofs_fs.h`).

/// Byte offset of the superblock inside the image.
pub const SUPER_OFFSET: u64 = 1024;
/// Superblock magic number.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// Block size bits used by the writer (4 KiB blocks, what every kernel page size supports).
pub const BLKSZ_BITS: u8 = 12;
/// Block size used by the writer.
pub const BLKSZ: u64 = 1 << BLKSZ_BITS;
/// Inode slot size: nids count 32-byte units from the metadata start.
pub const ISLOT: u64 = 32;
/// Size of a compact inode.
pub const COMPACT_SIZE: u64 = 32;
/// Size of an extended inode.
pub const EXTENDED_SIZE: u64 = 64;
/// Size of an on-disk directory entry.
pub const DIRENT_SIZE: u64 = 12;
/// Longest file name EROFS stores.
pub const NAME_MAX: usize = 255;
/// Block address meaning "no block" (a hole in a chunk map, or "all data inline").
pub const NULL_ADDR: u32 = u32::MAX;

/// Incompat feature: chunk-based files.
pub const FEATURE_INCOMPAT_CHUNKED_FILE: u32 = 0x4;
/// Incompat feature: zero padding for compressed data (harmless for plain images).
pub const FEATURE_INCOMPAT_ZERO_PADDING: u32 = 0x1;
/// Incompat features whose presence the reader can cope with.
pub const READER_INCOMPAT_OK: u32 = FEATURE_INCOMPAT_CHUNKED_FILE | FEATURE_INCOMPAT_ZERO_PADDING;

/// Data layout: blocks only.
pub const LAYOUT_FLAT_PLAIN: u16 = 0;
/// Data layout: compressed (full indexes). Readable metadata, unreadable data.
pub const LAYOUT_COMPRESSED_FULL: u16 = 1;
/// Data layout: blocks, then a tail stored right after the inode.
pub const LAYOUT_FLAT_INLINE: u16 = 2;
/// Data layout: compressed (compact indexes). Readable metadata, unreadable data.
pub const LAYOUT_COMPRESSED_COMPACT: u16 = 3;
/// Data layout: chunk map after the inode; holes are `NULL_ADDR` chunks.
pub const LAYOUT_CHUNK_BASED: u16 = 4;

/// Chunk format: low bits are log2(chunk size / block size).
pub const CHUNK_FORMAT_BLKBITS_MASK: u16 = 0x1f;
/// Chunk format: 8-byte chunk indexes instead of 4-byte block addresses.
pub const CHUNK_FORMAT_INDEXES: u16 = 0x20;

/// Directory entry file types (the generic `FT_*` values).
pub mod ft {
    /// Unknown type.
    pub const UNKNOWN: u8 = 0;
    /// Regular file.
    pub const REG: u8 = 1;
    /// Directory.
    pub const DIR: u8 = 2;
    /// Character device.
    pub const CHR: u8 = 3;
    /// Block device.
    pub const BLK: u8 = 4;
    /// FIFO.
    pub const FIFO: u8 = 5;
    /// Socket.
    pub const SOCK: u8 = 6;
    /// Symbolic link.
    pub const SYMLINK: u8 = 7;
}

/// `S_IFMT` and friends, the file type bits of `i_mode`.
pub mod mode {
    /// Mask of the type bits.
    pub const S_IFMT: u16 = 0o170000;
    /// Socket.
    pub const S_IFSOCK: u16 = 0o140000;
    /// Symbolic link.
    pub const S_IFLNK: u16 = 0o120000;
    /// Regular file.
    pub const S_IFREG: u16 = 0o100000;
    /// Block device.
    pub const S_IFBLK: u16 = 0o060000;
    /// Directory.
    pub const S_IFDIR: u16 = 0o040000;
    /// Character device.
    pub const S_IFCHR: u16 = 0o020000;
    /// FIFO.
    pub const S_IFIFO: u16 = 0o010000;
}

/// Little-endian field access on byte slices whose length the caller has checked.
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}

/// Reads a little-endian u32 at `off`.
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian u64 at `off`.
pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The fields of the 128-byte superblock this crate reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Superblock {
    /// Compatible feature bits.
    pub feature_compat: u32,
    /// log2 of the block size.
    pub blkszbits: u8,
    /// Extra superblock slots (16 bytes each).
    pub sb_extslots: u8,
    /// nid of the root directory.
    pub root_nid: u16,
    /// Number of inodes.
    pub inos: u64,
    /// Timestamp of compact inodes (seconds).
    pub build_time: u64,
    /// Timestamp of compact inodes (nanoseconds).
    pub build_time_nsec: u32,
    /// Image size in blocks.
    pub blocks: u32,
    /// First block of the inode area; nids count from here.
    pub meta_blkaddr: u32,
    /// First block of the shared xattr area.
    pub xattr_blkaddr: u32,
    /// Volume UUID.
    pub uuid: [u8; 16],
    /// Volume name (NUL padded).
    pub volume_name: [u8; 16],
    /// Incompatible feature bits.
    pub feature_incompat: u32,
    /// Number of extra devices (multi-device images).
    pub extra_devices: u16,
    /// Number of long xattr name prefixes.
    pub xattr_prefix_count: u8,
}

impl Superblock {
    /// Encodes the superblock into its 128-byte on-disk form (checksum left zero).
    pub fn encode(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        put32(&mut b, 0, MAGIC);
        put32(&mut b, 8, self.feature_compat);
        b[12] = self.blkszbits;
        b[13] = self.sb_extslots;
        put16(&mut b, 14, self.root_nid);
        put64(&mut b, 16, self.inos);
        put64(&mut b, 24, self.build_time);
        put32(&mut b, 32, self.build_time_nsec);
        put32(&mut b, 36, self.blocks);
        put32(&mut b, 40, self.meta_blkaddr);
        put32(&mut b, 44, self.xattr_blkaddr);
        b[48..64].copy_from_slice(&self.uuid);
        b[64..80].copy_from_slice(&self.volume_name);
        put32(&mut b, 80, self.feature_incompat);
        put16(&mut b, 86, self.extra_devices);
        b[91] = self.xattr_prefix_count;
        b
    }

    /// Decodes a superblock; `None` when the magic is wrong.
    pub fn decode(b: &[u8; 128]) -> Option<Superblock> {
        if le32(b, 0) != MAGIC {
            return None;
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[48..64]);
        let mut volume_name = [0u8; 16];
        volume_name.copy_from_slice(&b[64..80]);
        Some(Superblock {
            feature_compat: le32(b, 8),
            blkszbits: b[12],
            sb_extslots: b[13],
            root_nid: le16(b, 14),
            inos: le64(b, 16),
            build_time: le64(b, 24),
            build_time_nsec: le32(b, 32),
            blocks: le32(b, 36),
            meta_blkaddr: le32(b, 40),
            xattr_blkaddr: le32(b, 44),
            uuid,
            volume_name,
            feature_incompat: le32(b, 80),
            extra_devices: le16(b, 86),
            xattr_prefix_count: b[91],
        })
    }
}

/// An on-disk inode, in the union of the compact and extended forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawInode {
    /// True for the 64-byte extended form.
    pub extended: bool,
    /// Data layout (`LAYOUT_*`).
    pub layout: u16,
    /// Inline xattr count in 4-byte units (0 = no xattrs).
    pub xattr_icount: u16,
    /// Type and permission bits.
    pub mode: u16,
    /// Link count.
    pub nlink: u32,
    /// File size in bytes.
    pub size: u64,
    /// Union: raw block address, rdev, or chunk format in the low 16 bits.
    pub i_u: u32,
    /// 32-bit inode number for stat.
    pub ino: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds (extended only; compact uses the superblock's).
    pub mtime: u64,
    /// Modification time, nanoseconds (extended only).
    pub mtime_nsec: u32,
}

impl RawInode {
    /// On-disk size of this inode's fixed part.
    pub fn isize(&self) -> u64 {
        if self.extended {
            EXTENDED_SIZE
        } else {
            COMPACT_SIZE
        }
    }

    /// Encodes the inode into `out`, which must be `isize()` bytes long.
    /// Compact-form limits are the caller's job (see `fits_compact`).
    pub fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        let format = u16::from(self.extended) | (self.layout << 1);
        put16(out, 0, format);
        put16(out, 2, self.xattr_icount);
        put16(out, 4, self.mode);
        if self.extended {
            put64(out, 8, self.size);
            put32(out, 16, self.i_u);
            put32(out, 20, self.ino);
            put32(out, 24, self.uid);
            put32(out, 28, self.gid);
            put64(out, 32, self.mtime);
            put32(out, 40, self.mtime_nsec);
            put32(out, 44, self.nlink);
        } else {
            put16(out, 6, self.nlink as u16);
            put32(out, 8, self.size as u32);
            put32(out, 16, self.i_u);
            put32(out, 20, self.ino);
            put16(out, 24, self.uid as u16);
            put16(out, 26, self.gid as u16);
        }
    }

    /// Decodes the first 32 bytes' format field: (extended, layout), or `None` if
    /// reserved format bits are set.
    pub fn decode_format(first: &[u8]) -> Option<(bool, u16)> {
        let f = le16(first, 0);
        if f & !0x0f != 0 {
            return None;
        }
        Some((f & 1 == 1, (f >> 1) & 0x7))
    }

    /// Decodes an inode from `b` (32 bytes for compact, 64 for extended).
    /// Compact inodes get the superblock's build time as mtime.
    pub fn decode(b: &[u8], extended: bool, layout: u16, sb: &Superblock) -> RawInode {
        if extended {
            RawInode {
                extended,
                layout,
                xattr_icount: le16(b, 2),
                mode: le16(b, 4),
                size: le64(b, 8),
                i_u: le32(b, 16),
                ino: le32(b, 20),
                uid: le32(b, 24),
                gid: le32(b, 28),
                mtime: le64(b, 32),
                mtime_nsec: le32(b, 40),
                nlink: le32(b, 44),
            }
        } else {
            RawInode {
                extended,
                layout,
                xattr_icount: le16(b, 2),
                mode: le16(b, 4),
                nlink: u32::from(le16(b, 6)),
                size: u64::from(le32(b, 8)),
                i_u: le32(b, 16),
                ino: le32(b, 20),
                uid: u32::from(le16(b, 24)),
                gid: u32::from(le16(b, 26)),
                mtime: sb.build_time,
                mtime_nsec: sb.build_time_nsec,
            }
        }
    }
}

/// Size of the inline xattr body for an `i_xattr_icount` value.
pub fn xattr_ibody_size(icount: u16) -> u64 {
    if icount == 0 {
        0
    } else {
        12 + 4 * (u64::from(icount) - 1)
    }
}

/// Encodes a device number the way Linux `new_encode_dev` does.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Decodes a device number the way Linux `new_decode_dev` does: (major, minor).
pub fn decode_dev(dev: u32) -> (u32, u32) {
    ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
}

/// Rounds `v` up to a multiple of `a` (a power of two), saturating.
pub fn align_up(v: u64, a: u64) -> u64 {
    v.saturating_add(a - 1) & !(a - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_roundtrip() {
        for (ma, mi) in [(0, 0), (1, 3), (8, 1), (4095, 0xfffff), (259, 65536)] {
            assert_eq!(decode_dev(encode_dev(ma, mi)), (ma, mi));
        }
    }

    #[test]
    fn superblock_roundtrip() {
        let sb = Superblock {
            blkszbits: 12,
            root_nid: 7,
            inos: 9,
            build_time: 1234,
            blocks: 40,
            meta_blkaddr: 3,
            feature_incompat: FEATURE_INCOMPAT_CHUNKED_FILE,
            ..Default::default()
        };
        assert_eq!(Superblock::decode(&sb.encode()), Some(sb));
    }
}
