//! Buffered positional writes into the image. Writes to consecutive blocks are gathered
//! into one buffer and go out with one `pwrite`; all-zero blocks are never written, so
//! they stay holes in the sparse image file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::layout::{BLOCK, BLOCK_SIZE};

/// Gathered bytes beyond which the buffer is written out.
const CAP: usize = 8 << 20;

/// Whether a block is all zeros (checked in slices the compiler vectorises).
pub(crate) fn is_zero(block: &[u8]) -> bool {
    block.chunks(256).all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// The image file and the run of blocks not yet written.
#[derive(Debug)]
pub(crate) struct Sink<'f> {
    file: &'f File,
    start: u64,
    buf: Vec<u8>,
    written: u64,
}

impl<'f> Sink<'f> {
    /// A sink writing into `file`.
    pub(crate) fn new(file: &'f File) -> Sink<'f> {
        Sink {
            file,
            start: 0,
            buf: Vec::with_capacity(CAP),
            written: 0,
        }
    }

    /// Bytes written to the file so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Puts `data` at block `block` (a partial last block reads as zero-padded).
    pub(crate) fn put(&mut self, block: u64, data: &[u8]) -> io::Result<()> {
        let end = self.start + (self.buf.len() as u64).div_ceil(BLOCK);
        if !self.buf.is_empty() && block == end && self.buf.len() + data.len() <= CAP {
            self.buf.resize((end - self.start) as usize * BLOCK_SIZE, 0);
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.flush()?;
        if data.len() >= CAP / 2 {
            return self.write_nonzero(block, data);
        }
        self.start = block;
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Puts `data` at byte `offset` of block `block`, for the primary superblock.
    pub(crate) fn put_at(&mut self, block: u64, offset: usize, data: &[u8]) -> io::Result<()> {
        let mut padded = vec![0u8; offset + data.len()];
        padded[offset..].copy_from_slice(data);
        self.put(block, &padded)
    }

    /// Writes out what is gathered.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let result = self.write_nonzero(self.start, &buf);
        self.buf = buf;
        self.buf.clear();
        result
    }

    fn write_nonzero(&mut self, block: u64, data: &[u8]) -> io::Result<()> {
        let mut run: Option<usize> = None;
        let blocks: Vec<&[u8]> = data.chunks(BLOCK_SIZE).collect();
        for (i, b) in blocks.iter().enumerate() {
            match (is_zero(b), run) {
                (false, None) => run = Some(i),
                (true, Some(from)) => {
                    self.write_run(block, data, from, i)?;
                    run = None;
                }
                _ => {}
            }
        }
        if let Some(from) = run {
            self.write_run(block, data, from, blocks.len())?;
        }
        Ok(())
    }

    fn write_run(&mut self, block: u64, data: &[u8], from: usize, to: usize) -> io::Result<()> {
        let bytes = &data[from * BLOCK_SIZE..(to * BLOCK_SIZE).min(data.len())];
        self.file.write_all_at(bytes, (block + from as u64) * BLOCK)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn consecutive_blocks_coalesce_and_zero_blocks_stay_holes() {
        let mut f = tempfile::tempfile().unwrap();
        f.set_len(10 * BLOCK).unwrap();
        let mut s = Sink::new(&f);
        s.put(1, b"one").unwrap();
        s.put(2, &[0u8; BLOCK_SIZE]).unwrap();
        s.put(3, b"three").unwrap();
        s.put(7, b"seven").unwrap();
        s.put_at(0, 1024, b"sb").unwrap();
        s.flush().unwrap();
        assert_eq!(s.written(), BLOCK + 5 + 5 + 1026);
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        assert_eq!(&all[4096..4099], b"one");
        assert_eq!(&all[3 * 4096..3 * 4096 + 5], b"three");
        assert_eq!(&all[7 * 4096..7 * 4096 + 5], b"seven");
        assert_eq!(&all[1024..1026], b"sb");
        assert!(is_zero(&all[2 * 4096..3 * 4096]));
    }
}
