//! On-disk geometry and the filesystem-wide structures: superblock, group descriptors
//! and bitmaps. Everything is little-endian; offsets follow the kernel's `struct
//! ext4_super_block` and `struct ext4_group_desc` (32-byte form, no `64bit`).

use crate::Error;

/// Filesystem block size; the only one this writer makes.
pub(crate) const BLOCK_SIZE: usize = 4096;
/// [`BLOCK_SIZE`] as a `u64`, for offset arithmetic.
pub(crate) const BLOCK: u64 = BLOCK_SIZE as u64;
/// Blocks (and at most inodes) per block group: one bitmap block covers 32768 bits.
pub(crate) const BLOCKS_PER_GROUP: u64 = 32768;
/// On-disk inode size.
pub(crate) const INODE_SIZE: usize = 256;
/// `i_extra_isize`: the extra fields we fill (ctime/mtime/atime/crtime extra, version_hi, projid).
pub(crate) const EXTRA_ISIZE: u16 = 32;
/// First inode number available to files (1..=10 are reserved).
pub(crate) const FIRST_INO: u32 = 11;
/// Root directory inode.
pub(crate) const ROOT_INO: u32 = 2;
/// Journal inode.
pub(crate) const JOURNAL_INO: u32 = 8;
/// `lost+found`, the first non-reserved inode, as mke2fs makes it.
pub(crate) const LOST_FOUND_INO: u32 = 11;
/// Smallest image accepted.
pub(crate) const MIN_SIZE: u64 = 16 << 20;
/// Largest block count with 32-bit block numbers.
pub(crate) const MAX_BLOCKS: u64 = u32::MAX as u64;
const GROUP_DESC_SIZE: usize = 32;
const INODES_PER_BLOCK: u32 = (BLOCK_SIZE / INODE_SIZE) as u32;

const COMPAT_HAS_JOURNAL: u32 = 0x4;
const COMPAT_EXT_ATTR: u32 = 0x8;
const COMPAT_DIR_INDEX: u32 = 0x20;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_EXTENTS: u32 = 0x40;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_LARGE_FILE: u32 = 0x2;
const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const RO_COMPAT_DIR_NLINK: u32 = 0x20;
const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;

/// Little-endian field writers over a byte buffer.
pub(crate) fn put16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian `u32` at `off`.
pub(crate) fn put32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Sets bits `from..to` of a bitmap.
pub(crate) fn set_bits(map: &mut [u8], from: usize, to: usize) {
    let mut i = from;
    while i < to && i % 8 != 0 {
        map[i / 8] |= 1 << (i % 8);
        i += 1;
    }
    let whole_end = to - (to - i) % 8;
    if i < whole_end {
        map[i / 8..whole_end / 8].fill(0xff);
        i = whole_end;
    }
    while i < to {
        map[i / 8] |= 1 << (i % 8);
        i += 1;
    }
}

/// Sizes of the filesystem and of its block groups, and where each group's metadata lives.
///
/// Classic layout: every group starts with (if it carries a superblock backup) the
/// superblock and the group descriptor table, then its block bitmap, inode bitmap and
/// inode table; the rest of the group is data.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    /// Filesystem blocks (the last group may be short).
    pub blocks: u64,
    /// Block groups.
    pub groups: u32,
    /// Inodes per group (a multiple of 16).
    pub inodes_per_group: u32,
    /// Blocks of inode table per group.
    pub itable_blocks: u64,
    /// Blocks of group descriptor table.
    pub gdt_blocks: u64,
}

impl Geometry {
    /// The geometry for an image of `size` bytes with one inode per `bytes_per_inode`.
    pub(crate) fn new(size: u64, bytes_per_inode: u64) -> Result<Geometry, Error> {
        if !(MIN_SIZE..=MAX_BLOCKS * BLOCK).contains(&size) {
            return Err(Error::Size { size });
        }
        if !(1024..=(64 << 20)).contains(&bytes_per_inode) {
            return Err(Error::BytesPerInode { bytes_per_inode });
        }
        let mut blocks = size / BLOCK;
        loop {
            let groups = blocks.div_ceil(BLOCKS_PER_GROUP);
            let wanted = (blocks * BLOCK / bytes_per_inode).div_ceil(groups);
            let cap = (u64::from(u32::MAX) / groups).min(BLOCKS_PER_GROUP);
            let ipg = wanted
                .next_multiple_of(u64::from(INODES_PER_BLOCK))
                .clamp(16, cap - cap % 16);
            let geo = Geometry {
                blocks,
                groups: groups as u32,
                inodes_per_group: ipg as u32,
                itable_blocks: ipg / u64::from(INODES_PER_BLOCK),
                gdt_blocks: (groups * GROUP_DESC_SIZE as u64).div_ceil(BLOCK),
            };
            // Like mke2fs: a last group too small for its own metadata plus some data is dropped.
            let last = geo.groups - 1;
            if geo.group_len(last) < geo.overhead(last) + 50 {
                if last == 0 {
                    return Err(Error::Size { size });
                }
                blocks = u64::from(last) * BLOCKS_PER_GROUP;
                continue;
            }
            return Ok(geo);
        }
    }

    /// Total inodes.
    pub(crate) fn inodes(&self) -> u64 {
        u64::from(self.groups) * u64::from(self.inodes_per_group)
    }

    /// First block of group `g`.
    pub(crate) fn group_start(&self, g: u32) -> u64 {
        u64::from(g) * BLOCKS_PER_GROUP
    }

    /// Blocks in group `g` (the last one may be short).
    pub(crate) fn group_len(&self, g: u32) -> u64 {
        (self.blocks - self.group_start(g)).min(BLOCKS_PER_GROUP)
    }

    /// Whether group `g` holds a superblock backup (`sparse_super`: 0, 1, powers of 3, 5, 7).
    pub(crate) fn has_super(&self, g: u32) -> bool {
        if g <= 1 {
            return true;
        }
        [3u32, 5, 7].iter().any(|&base| {
            let mut p = base;
            while p < g {
                match p.checked_mul(base) {
                    Some(next) => p = next,
                    None => return false,
                }
            }
            p == g
        })
    }

    fn super_blocks(&self, g: u32) -> u64 {
        if self.has_super(g) {
            1 + self.gdt_blocks
        } else {
            0
        }
    }

    /// Blocks of metadata at the start of group `g`.
    pub(crate) fn overhead(&self, g: u32) -> u64 {
        self.super_blocks(g) + 2 + self.itable_blocks
    }

    /// Block bitmap of group `g`.
    pub(crate) fn block_bitmap(&self, g: u32) -> u64 {
        self.group_start(g) + self.super_blocks(g)
    }

    /// Inode bitmap of group `g`.
    pub(crate) fn inode_bitmap(&self, g: u32) -> u64 {
        self.block_bitmap(g) + 1
    }

    /// First block of the inode table of group `g`.
    pub(crate) fn inode_table(&self, g: u32) -> u64 {
        self.block_bitmap(g) + 2
    }

    /// First data block of group `g`.
    pub(crate) fn data_start(&self, g: u32) -> u64 {
        self.group_start(g) + self.overhead(g)
    }
}

/// Per-group usage, as counted by the writer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupUsage {
    /// Blocks in use, metadata included.
    pub used_blocks: u64,
    /// Inodes in use (the first `used_inodes` of the group).
    pub used_inodes: u32,
    /// Directories among them.
    pub dirs: u32,
}

/// The block bitmap of group `g`: its first `used` blocks in use, padding past the end set.
pub(crate) fn block_bitmap(geo: &Geometry, g: u32, used: u64) -> Vec<u8> {
    let mut map = vec![0u8; BLOCK_SIZE];
    set_bits(&mut map, 0, used as usize);
    set_bits(&mut map, geo.group_len(g) as usize, BLOCKS_PER_GROUP as usize);
    map
}

/// The inode bitmap of a group: its first `used` inodes in use, padding past the group set.
pub(crate) fn inode_bitmap(geo: &Geometry, used: u32) -> Vec<u8> {
    let mut map = vec![0u8; BLOCK_SIZE];
    set_bits(&mut map, 0, used as usize);
    set_bits(&mut map, geo.inodes_per_group as usize, BLOCK_SIZE * 8);
    map
}

/// The group descriptor table.
pub(crate) fn group_descriptors(geo: &Geometry, usage: &[GroupUsage]) -> Vec<u8> {
    let mut gdt = vec![0u8; geo.gdt_blocks as usize * BLOCK_SIZE];
    for (g, u) in (0..geo.groups).zip(usage) {
        let d = &mut gdt[g as usize * GROUP_DESC_SIZE..][..GROUP_DESC_SIZE];
        put32(d, 0x00, geo.block_bitmap(g) as u32);
        put32(d, 0x04, geo.inode_bitmap(g) as u32);
        put32(d, 0x08, geo.inode_table(g) as u32);
        put16(d, 0x0c, (geo.group_len(g) - u.used_blocks) as u16);
        put16(d, 0x0e, (geo.inodes_per_group - u.used_inodes) as u16);
        put16(d, 0x10, u.dirs as u16);
        put16(d, 0x12, 0x0004); // EXT4_BG_INODE_ZEROED: the table reads as zeros (holes)
    }
    gdt
}

/// What the superblock says beyond the geometry.
#[derive(Debug, Clone)]
pub(crate) struct SuperInfo {
    /// Free blocks in the whole filesystem.
    pub free_blocks: u64,
    /// Free inodes in the whole filesystem.
    pub free_inodes: u64,
    /// Filesystem times (mkfs, write, last check).
    pub now: i64,
    /// Volume UUID.
    pub uuid: [u8; 16],
    /// Volume label.
    pub label: [u8; 16],
    /// Directory hash seed.
    pub hash_seed: [u8; 16],
    /// Journal inode's `i_block` words followed by `i_size_high` and `i_size`; `None`: no journal.
    pub journal_backup: Option<[u32; 17]>,
}

/// The 1024-byte superblock for the copy in group `group`.
pub(crate) fn superblock(geo: &Geometry, info: &SuperInfo, group: u32) -> [u8; 1024] {
    let mut sb = [0u8; 1024];
    let time = info.now.clamp(0, (1 << 40) - 1);
    let (time_lo, time_hi) = (time as u32, (time >> 32) as u8);
    put32(&mut sb, 0x00, geo.inodes() as u32);
    put32(&mut sb, 0x04, geo.blocks as u32);
    put32(&mut sb, 0x0c, info.free_blocks as u32);
    put32(&mut sb, 0x10, info.free_inodes as u32);
    put32(&mut sb, 0x14, 0); // first data block
    put32(&mut sb, 0x18, 2); // log2(block size) - 10
    put32(&mut sb, 0x1c, 2); // cluster size = block size
    put32(&mut sb, 0x20, BLOCKS_PER_GROUP as u32);
    put32(&mut sb, 0x24, BLOCKS_PER_GROUP as u32);
    put32(&mut sb, 0x28, geo.inodes_per_group);
    put32(&mut sb, 0x30, time_lo); // s_wtime
    put16(&mut sb, 0x36, 0xffff); // s_max_mnt_count = -1
    put16(&mut sb, 0x38, 0xef53);
    put16(&mut sb, 0x3a, 1); // clean
    put16(&mut sb, 0x3c, 1); // errors: continue
    put32(&mut sb, 0x40, time_lo); // s_lastcheck
    put32(&mut sb, 0x48, 0); // creator OS: Linux
    put32(&mut sb, 0x4c, 1); // dynamic revision
    put32(&mut sb, 0x54, FIRST_INO);
    put16(&mut sb, 0x58, INODE_SIZE as u16);
    put16(&mut sb, 0x5a, group as u16);
    let mut compat = COMPAT_EXT_ATTR | COMPAT_DIR_INDEX;
    if info.journal_backup.is_some() {
        compat |= COMPAT_HAS_JOURNAL;
    }
    put32(&mut sb, 0x5c, compat);
    put32(&mut sb, 0x60, INCOMPAT_FILETYPE | INCOMPAT_EXTENTS);
    put32(
        &mut sb,
        0x64,
        RO_COMPAT_SPARSE_SUPER
            | RO_COMPAT_LARGE_FILE
            | RO_COMPAT_HUGE_FILE
            | RO_COMPAT_DIR_NLINK
            | RO_COMPAT_EXTRA_ISIZE,
    );
    sb[0x68..0x78].copy_from_slice(&info.uuid);
    sb[0x78..0x88].copy_from_slice(&info.label);
    sb[0xec..0xfc].copy_from_slice(&info.hash_seed);
    sb[0xfc] = 1; // s_def_hash_version: half_md4
    put32(&mut sb, 0x100, 0x000c); // default mount options: user_xattr, acl
    put32(&mut sb, 0x108, time_lo); // s_mkfs_time
    if let Some(backup) = &info.journal_backup {
        put32(&mut sb, 0xe0, JOURNAL_INO);
        sb[0xfd] = 1; // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS
        for (i, word) in backup.iter().enumerate() {
            put32(&mut sb, 0x10c + 4 * i, *word);
        }
    }
    put32(&mut sb, 0x158, (info.free_blocks >> 32) as u32);
    put16(&mut sb, 0x15c, EXTRA_ISIZE); // s_min_extra_isize
    put16(&mut sb, 0x15e, EXTRA_ISIZE); // s_want_extra_isize
    put32(&mut sb, 0x160, 0x0001); // s_flags: signed directory hash, as mke2fs on x86
    sb[0x274] = time_hi; // s_wtime_hi
    sb[0x276] = time_hi; // s_mkfs_time_hi
    sb[0x277] = time_hi; // s_lastcheck_hi
    sb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups_are_0_1_and_powers_of_3_5_7() {
        let geo = Geometry::new(1 << 40, 1 << 20).unwrap();
        let with: Vec<u32> = (0..1000).filter(|&g| geo.has_super(g)).collect();
        assert_eq!(with, [0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343, 625, 729]);
    }

    #[test]
    fn geometry_of_common_sizes() {
        let geo = Geometry::new(4 << 30, 16384).unwrap();
        assert_eq!((geo.blocks, geo.groups, geo.inodes_per_group), (1 << 20, 32, 8192));
        assert_eq!((geo.itable_blocks, geo.gdt_blocks), (512, 1));
        let small = Geometry::new(MIN_SIZE, 16384).unwrap();
        assert_eq!((small.blocks, small.groups, small.inodes_per_group), (4096, 1, 1024));
        // A 10-block tail group cannot hold its metadata: it is dropped.
        let trimmed = Geometry::new((32768 + 10) * BLOCK, 16384).unwrap();
        assert_eq!((trimmed.blocks, trimmed.groups), (32768, 1));
        assert!(Geometry::new(MIN_SIZE - 1, 16384).is_err());
        assert!(Geometry::new((MAX_BLOCKS + 1) * BLOCK, 16384).is_err());
        assert!(Geometry::new(MIN_SIZE, 512).is_err());
    }

    #[test]
    fn bits_are_set_across_byte_boundaries() {
        let mut m = [0u8; 4];
        set_bits(&mut m, 3, 21);
        assert_eq!(m, [0xf8, 0xff, 0x1f, 0]);
        let mut m = [0u8; 2];
        set_bits(&mut m, 2, 5);
        assert_eq!(m, [0x1c, 0]);
    }
}
