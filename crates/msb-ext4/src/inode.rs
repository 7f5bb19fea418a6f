//! The 256-byte on-disk inode: type and permission bits, owners, sizes, times with
//! nanoseconds in the extra fields, the 60-byte `i_block` area and in-inode xattrs.

use crate::layout::{put16, put32, EXTRA_ISIZE, INODE_SIZE};

/// `S_IFIFO`.
pub(crate) const S_IFIFO: u16 = 0o010000;
/// `S_IFCHR`.
pub(crate) const S_IFCHR: u16 = 0o020000;
/// `S_IFDIR`.
pub(crate) const S_IFDIR: u16 = 0o040000;
/// `S_IFBLK`.
pub(crate) const S_IFBLK: u16 = 0o060000;
/// `S_IFREG`.
pub(crate) const S_IFREG: u16 = 0o100000;
/// `S_IFLNK`.
pub(crate) const S_IFLNK: u16 = 0o120000;
/// `S_IFSOCK`.
pub(crate) const S_IFSOCK: u16 = 0o140000;
/// `EXT4_EXTENTS_FL`: `i_block` holds an extent tree.
pub(crate) const EXTENTS_FL: u32 = 0x80000;
/// Where the in-inode xattr area starts (after the fixed 128 bytes and the extra fields).
pub(crate) const IBODY_XATTR_OFFSET: usize = 128 + EXTRA_ISIZE as usize;
/// Bytes of in-inode xattr area, magic included.
pub(crate) const IBODY_XATTR_SIZE: usize = INODE_SIZE - IBODY_XATTR_OFFSET;

/// Smallest time the extra-epoch encoding holds (1901-12-13).
const TIME_MIN: i64 = i32::MIN as i64;
/// Largest time we encode: epoch bits 3 with bit 31 set would read as a mis-encoded
/// pre-1970 date to e2fsck, so stop below that (year 2310).
const TIME_MAX: i64 = 3 * (1 << 32) + i32::MIN as i64 - 1;

/// Everything the writer sets in an inode.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    /// Type and permission bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// atime, ctime, mtime and crtime seconds.
    pub time: i64,
    /// Their nanoseconds.
    pub nsec: u32,
    /// Link count.
    pub links: u16,
    /// Blocks held (data, extent tree, xattr block), in filesystem blocks.
    pub blocks: u64,
    /// `i_flags`.
    pub flags: u32,
    /// The 60-byte `i_block` area: extent root, fast symlink target or device number.
    pub i_block: [u8; 60],
    /// External xattr block, 0 for none.
    pub xattr_block: u64,
}

/// Splits a time into the 32-bit field and the extra field (epoch bits and nanoseconds),
/// the way the kernel's `ext4_encode_extra_time` does, clamped to what it can represent.
pub(crate) fn encode_time(secs: i64, nsec: u32) -> (u32, u32) {
    let secs = secs.clamp(TIME_MIN, TIME_MAX);
    let low = secs as i32;
    let epoch = ((secs - i64::from(low)) >> 32) as u32 & 3;
    (low as u32, (nsec << 2) | epoch)
}

/// `i_block` for a character or block device: the kernel's old encoding in word 0 when
/// both numbers fit in 8 bits, else the new encoding in word 1.
pub(crate) fn device_i_block(major: u32, minor: u32) -> [u8; 60] {
    let mut b = [0u8; 60];
    if major < 256 && minor < 256 {
        put32(&mut b, 0, (major << 8) | minor);
    } else {
        put32(&mut b, 4, (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12));
    }
    b
}

impl Default for Inode {
    fn default() -> Inode {
        Inode {
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            time: 0,
            nsec: 0,
            links: 0,
            blocks: 0,
            flags: 0,
            i_block: [0; 60],
            xattr_block: 0,
        }
    }
}

impl Inode {
    /// The on-disk bytes, with `ibody_xattrs` (magic, entries, values) after the extra fields.
    pub(crate) fn encode(&self, ibody_xattrs: Option<&[u8]>) -> [u8; INODE_SIZE] {
        let mut raw = [0u8; INODE_SIZE];
        let (t, extra) = encode_time(self.time, self.nsec);
        let sectors = self.blocks * 8;
        put16(&mut raw, 0x00, self.mode);
        put16(&mut raw, 0x02, self.uid as u16);
        put32(&mut raw, 0x04, self.size as u32);
        put32(&mut raw, 0x08, t); // atime
        put32(&mut raw, 0x0c, t); // ctime
        put32(&mut raw, 0x10, t); // mtime
        put16(&mut raw, 0x18, self.gid as u16);
        put16(&mut raw, 0x1a, self.links);
        put32(&mut raw, 0x1c, sectors as u32);
        put32(&mut raw, 0x20, self.flags);
        raw[0x28..0x64].copy_from_slice(&self.i_block);
        put32(&mut raw, 0x68, self.xattr_block as u32);
        put32(&mut raw, 0x6c, (self.size >> 32) as u32);
        put16(&mut raw, 0x74, (sectors >> 32) as u16);
        put16(&mut raw, 0x76, (self.xattr_block >> 32) as u16);
        put16(&mut raw, 0x78, (self.uid >> 16) as u16);
        put16(&mut raw, 0x7a, (self.gid >> 16) as u16);
        put16(&mut raw, 0x80, EXTRA_ISIZE);
        put32(&mut raw, 0x84, extra); // ctime extra
        put32(&mut raw, 0x88, extra); // mtime extra
        put32(&mut raw, 0x8c, extra); // atime extra
        put32(&mut raw, 0x90, t); // crtime
        put32(&mut raw, 0x94, extra); // crtime extra
        if let Some(x) = ibody_xattrs {
            let n = x.len().min(IBODY_XATTR_SIZE);
            raw[IBODY_XATTR_OFFSET..IBODY_XATTR_OFFSET + n].copy_from_slice(&x[..n]);
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(lo: u32, extra: u32) -> (i64, u32) {
        let mut s = i64::from(lo as i32);
        s += i64::from(extra & 3) << 32;
        (s, extra >> 2)
    }

    #[test]
    fn times_round_trip_through_the_kernel_decoding() {
        for s in [
            0i64,
            1,
            -1,
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            1 << 32,
            4_000_000_000,
            10_000_000_000,
        ] {
            let (lo, extra) = encode_time(s, 999_999_999);
            assert_eq!(decode(lo, extra), (s, 999_999_999), "{s}");
        }
        let (lo, extra) = encode_time(i64::MIN, 0);
        assert_eq!(decode(lo, extra).0, i64::from(i32::MIN));
        let (lo, extra) = encode_time(i64::MAX, 0);
        assert_eq!(decode(lo, extra).0, TIME_MAX);
        assert!(
            lo & (1 << 31) == 0 || extra & 3 != 3,
            "never looks like a mis-encoded pre-1970 time"
        );
    }

    #[test]
    fn devices_use_old_or_new_encoding() {
        let old = device_i_block(8, 1);
        assert_eq!(&old[..8], &[1, 8, 0, 0, 0, 0, 0, 0]);
        let new = device_i_block(259, 0x12345);
        assert_eq!(&new[..4], &[0; 4]);
        let word = u32::from_le_bytes([new[4], new[5], new[6], new[7]]);
        assert_eq!(word, 0x45 | (259 << 8) | (0x12300 << 12));
        assert_eq!(device_i_block(0, 0), [0u8; 60], "a whiteout is 0:0");
    }
}
