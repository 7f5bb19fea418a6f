//! Linear directories: `ext4_dir_entry_2` records (inode, rec_len, name_len, file type,
//! name) packed into 4096-byte blocks, `.` and `..` first, the last record of each block
//! stretched to its end. Linear directories are valid with `dir_index`; the kernel indexes
//! them itself when it needs to.

use crate::layout::{put16, put32, BLOCK_SIZE};

/// `EXT4_FT_REG_FILE`.
pub(crate) const FT_REG: u8 = 1;
/// `EXT4_FT_DIR`.
pub(crate) const FT_DIR: u8 = 2;
/// `EXT4_FT_CHRDEV`.
pub(crate) const FT_CHR: u8 = 3;
/// `EXT4_FT_BLKDEV`.
pub(crate) const FT_BLK: u8 = 4;
/// `EXT4_FT_FIFO`.
pub(crate) const FT_FIFO: u8 = 5;
/// `EXT4_FT_SOCK`.
pub(crate) const FT_SOCK: u8 = 6;
/// `EXT4_FT_SYMLINK`.
pub(crate) const FT_SYMLINK: u8 = 7;

/// Whether `name` can be a directory entry: 1 to 255 bytes, no `/` or NUL, not `.` or `..`.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    (1..=255).contains(&name.len()) && !name.contains(&b'/') && !name.contains(&0) && name != b"." && name != b".."
}

fn rec_len(name_len: usize) -> usize {
    (8 + name_len).next_multiple_of(4)
}

/// Builds the blocks of one directory.
#[derive(Debug)]
pub(crate) struct DirBuilder {
    buf: Vec<u8>,
    /// Offset of the last record in the current block.
    last: usize,
}

impl DirBuilder {
    /// A directory `ino` whose parent is `parent`: `.` and `..` are added.
    pub(crate) fn new(ino: u32, parent: u32) -> DirBuilder {
        let mut d = DirBuilder {
            buf: vec![0u8; BLOCK_SIZE],
            last: 0,
        };
        d.write(0, ino, b".", FT_DIR, 12);
        d.write(12, parent, b"..", FT_DIR, BLOCK_SIZE - 12);
        d.last = 12;
        d
    }

    fn write(&mut self, at: usize, ino: u32, name: &[u8], ft: u8, len: usize) {
        put32(&mut self.buf, at, ino);
        put16(&mut self.buf, at + 4, len as u16);
        self.buf[at + 6] = name.len() as u8;
        self.buf[at + 7] = ft;
        self.buf[at + 8..at + 8 + name.len()].copy_from_slice(name);
    }

    /// Appends an entry (the name must be valid).
    pub(crate) fn add(&mut self, ino: u32, name: &[u8], ft: u8) {
        let block_start = self.buf.len() - BLOCK_SIZE;
        let last_len = rec_len(usize::from(self.buf[self.last + 6]));
        let at = self.last + last_len;
        let need = rec_len(name.len());
        if at + need <= block_start + BLOCK_SIZE {
            put16(&mut self.buf, self.last + 4, last_len as u16);
            self.write(at, ino, name, ft, block_start + BLOCK_SIZE - at);
            self.last = at;
        } else {
            let start = self.buf.len();
            self.buf.resize(start + BLOCK_SIZE, 0);
            self.write(start, ino, name, ft, BLOCK_SIZE);
            self.last = start;
        }
    }

    /// The blocks, at least `min_blocks` of them (extra ones hold one empty record).
    pub(crate) fn finish(mut self, min_blocks: usize) -> Vec<u8> {
        while self.buf.len() < min_blocks * BLOCK_SIZE {
            let start = self.buf.len();
            self.buf.resize(start + BLOCK_SIZE, 0);
            put16(&mut self.buf, start + 4, BLOCK_SIZE as u16);
        }
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the records of each block, checking rec_len covers the block exactly.
    fn records(buf: &[u8]) -> Vec<(u32, Vec<u8>, u8)> {
        let mut out = Vec::new();
        for block in buf.chunks(BLOCK_SIZE) {
            let mut at = 0;
            while at < BLOCK_SIZE {
                let ino = u32::from_le_bytes(block[at..at + 4].try_into().unwrap());
                let len = usize::from(u16::from_le_bytes([block[at + 4], block[at + 5]]));
                let name_len = usize::from(block[at + 6]);
                assert!(len >= rec_len(name_len) && len % 4 == 0);
                if ino != 0 {
                    out.push((ino, block[at + 8..at + 8 + name_len].to_vec(), block[at + 7]));
                }
                at += len;
            }
            assert_eq!(at, BLOCK_SIZE);
        }
        out
    }

    #[test]
    fn entries_fill_blocks_exactly() {
        let mut d = DirBuilder::new(12, 2);
        let names: Vec<Vec<u8>> = (0..100u32)
            .map(|i| vec![b'a' + (i % 26) as u8; 1 + (i as usize * 7) % 255])
            .collect();
        for (i, n) in names.iter().enumerate() {
            d.add(100 + i as u32, n, FT_REG);
        }
        let buf = d.finish(1);
        assert!(buf.len() > BLOCK_SIZE);
        let recs = records(&buf);
        assert_eq!(recs.len(), 102);
        assert_eq!(recs[0], (12, b".".to_vec(), FT_DIR));
        assert_eq!(recs[1], (2, b"..".to_vec(), FT_DIR));
        for (i, n) in names.iter().enumerate() {
            assert_eq!(&recs[i + 2].1, n);
        }
    }

    #[test]
    fn empty_directory_padded_to_min_blocks() {
        let buf = DirBuilder::new(11, 2).finish(4);
        assert_eq!(buf.len(), 4 * BLOCK_SIZE);
        assert_eq!(records(&buf).len(), 2);
    }

    #[test]
    fn names_are_validated() {
        assert!(valid_name(b"a\nb\xff"));
        assert!(valid_name(&[b'x'; 255]));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0", &[b'x'; 256]] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
