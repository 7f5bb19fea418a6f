//! The internal jbd2 journal: a superblock (big-endian, v2) in the journal inode's first
//! block saying the journal is empty and clean; the rest of the journal reads as zeros.

/// Smallest journal jbd2 accepts (`JBD2_MIN_JOURNAL_BLOCKS`).
pub(crate) const MIN_BLOCKS: u32 = 1024;
/// Largest journal mke2fs makes.
pub(crate) const MAX_BLOCKS: u32 = 10_240_000;

fn put(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// The journal superblock for a journal of `blocks` blocks in the filesystem `uuid`.
pub(crate) fn superblock(blocks: u32, uuid: &[u8; 16]) -> Vec<u8> {
    let mut sb = vec![0u8; 1024];
    put(&mut sb, 0x00, 0xC03B_3998); // h_magic
    put(&mut sb, 0x04, 4); // h_blocktype: superblock v2
    put(&mut sb, 0x0c, 4096); // s_blocksize
    put(&mut sb, 0x10, blocks); // s_maxlen
    put(&mut sb, 0x14, 1); // s_first
    put(&mut sb, 0x18, 1); // s_sequence
    put(&mut sb, 0x1c, 0); // s_start: 0 = nothing to replay
    sb[0x30..0x40].copy_from_slice(uuid);
    put(&mut sb, 0x40, 1); // s_nr_users
    sb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_is_big_endian_v2() {
        let sb = superblock(2048, &[9; 16]);
        assert_eq!(&sb[..8], &[0xC0, 0x3B, 0x39, 0x98, 0, 0, 0, 4]);
        assert_eq!(&sb[0x10..0x14], &[0, 0, 8, 0]);
        assert_eq!(&sb[0x30..0x40], &[9; 16]);
    }
}
