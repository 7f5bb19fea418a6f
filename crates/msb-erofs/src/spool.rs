//! Streaming file data into the image as the tar is read.
//!
//! File contents go straight to the output, block aligned, in the order they arrive;
//! only block addresses (and, for tail packing, the final partial block) are kept in
//! memory. Whole chunks of zeros are not written at all: such a file becomes
//! chunk-based with holes, which is how EROFS expresses sparse files.

use std::io::{BufWriter, Seek, SeekFrom, Write};

use crate::error::{Error, Result};
use crate::layout::{BLKSZ, NULL_ADDR};

/// Most chunk-map entries one file gets; larger files get larger chunks. Bounds the
/// metadata a single (possibly hostile) sparse entry can make us write.
pub const MAX_CHUNKS: u64 = 16384;

/// A run of consecutive data chunks stored in consecutive blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Index of the first chunk of the run.
    pub chunk: u64,
    /// Block where it is stored.
    pub blk: u32,
    /// Number of chunks.
    pub count: u64,
}

/// Where a regular file's data ended up.
#[derive(Debug)]
pub enum FileData {
    /// `size` bytes in consecutive blocks from `blkaddr`.
    Plain {
        /// File size.
        size: u64,
        /// First block (0 for empty files).
        blkaddr: u32,
    },
    /// Full blocks from `blkaddr`, then `tail` stored after the inode.
    Inline {
        /// File size.
        size: u64,
        /// First block (`NULL_ADDR` when the file is all tail).
        blkaddr: u32,
        /// The last `size % BLKSZ` bytes.
        tail: Vec<u8>,
    },
    /// Chunk-based: chunks not covered by a run are holes.
    Chunked {
        /// File size.
        size: u64,
        /// log2(chunk size / block size).
        chunk_bits: u8,
        /// Stored chunks, ascending.
        runs: Vec<Run>,
    },
}

impl FileData {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            FileData::Plain { size, .. } | FileData::Inline { size, .. } | FileData::Chunked { size, .. } => *size,
        }
    }
}

/// The output file, written sequentially during ingestion; remembers its position.
#[derive(Debug)]
pub struct DataOut<W: Write + Seek> {
    w: BufWriter<W>,
    pos: u64,
}

static ZEROS: [u8; 65536] = [0; 65536];

impl<W: Write + Seek> DataOut<W> {
    /// Wraps `w`, positioned at block 1 (block 0 holds the superblock, written last).
    pub fn new(w: W) -> Result<Self> {
        let mut w = BufWriter::with_capacity(1 << 20, w);
        w.seek(SeekFrom::Start(BLKSZ)).map_err(Error::Write)?;
        Ok(DataOut { w, pos: BLKSZ })
    }

    /// Current byte position.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Current block number; the position must be block aligned.
    pub fn block(&self) -> Result<u32> {
        u32::try_from(self.pos / BLKSZ)
            .ok()
            .filter(|b| *b != NULL_ADDR)
            .ok_or_else(|| Error::TooLarge("data exceeds 2^32 blocks".into()))
    }

    /// Appends bytes.
    pub fn write(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(Error::Write)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Appends `n` zero bytes.
    pub fn write_zeros(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            self.write(&ZEROS[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Zero-pads to the next block boundary.
    pub fn pad_block(&mut self) -> Result<()> {
        let rem = self.pos % BLKSZ;
        if rem != 0 {
            self.write_zeros(BLKSZ - rem)?;
        }
        Ok(())
    }

    /// Moves to an absolute position (used for the metadata phase).
    pub fn seek_to(&mut self, pos: u64) -> Result<()> {
        if pos != self.pos {
            self.w.seek(SeekFrom::Start(pos)).map_err(Error::Write)?;
            self.pos = pos;
        }
        Ok(())
    }

    /// Flushes and hands back the inner writer.
    pub fn finish(self) -> Result<W> {
        self.w.into_inner().map_err(|e| Error::Write(e.into_error()))
    }
}

/// True when every byte is zero. Folding 256-byte slices lets the compiler vectorise
/// while still stopping early on typical (non-zero) data.
pub fn is_zero(d: &[u8]) -> bool {
    d.chunks(256).all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// Smallest chunk size (as log2 blocks) that keeps the chunk map within `MAX_CHUNKS`.
pub fn chunk_bits_for(size: u64) -> u8 {
    let mut bits = 0u8;
    while bits < 31 && size.div_ceil(BLKSZ << bits) > MAX_CHUNKS {
        bits += 1;
    }
    bits
}

/// A piece of file content: bytes, or a run of zeros known without reading them.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    /// Real bytes.
    Data(&'a [u8]),
    /// `n` zero bytes (a hole in a sparse tar entry).
    Zeros(u64),
}

impl Piece<'_> {
    fn len(&self) -> u64 {
        match self {
            Piece::Data(d) => d.len() as u64,
            Piece::Zeros(n) => *n,
        }
    }
}

/// Streams one file's data into a `DataOut`, deciding holes and tail packing.
#[derive(Debug)]
pub struct FileSpool {
    size: u64,
    chunk: u64,
    chunk_bits: u8,
    pos: u64,
    tail_start: u64,
    may_inline: bool,
    tail_decided: bool,
    capturing: bool,
    tail: Vec<u8>,
    chunk_has_data: bool,
    pending_zeros: u64,
    holes: bool,
    detect_holes: bool,
    runs: Vec<Run>,
}

impl FileSpool {
    /// Starts a file of `size` bytes. `may_inline` says the tail may be kept for
    /// packing after the inode (the caller checked it fits and the memory budget).
    pub fn new(size: u64, may_inline: bool, detect_holes: bool) -> FileSpool {
        let chunk_bits = chunk_bits_for(size);
        FileSpool {
            size,
            chunk: BLKSZ << chunk_bits,
            chunk_bits,
            pos: 0,
            tail_start: size - size % BLKSZ,
            may_inline,
            tail_decided: false,
            capturing: false,
            tail: Vec::new(),
            chunk_has_data: false,
            pending_zeros: 0,
            holes: false,
            detect_holes,
            runs: Vec::new(),
        }
    }

    fn start_chunk<W: Write + Seek>(&mut self, out: &mut DataOut<W>) -> Result<()> {
        if self.chunk_has_data {
            return Ok(());
        }
        let blk = out.block()?;
        let idx = self.pos / self.chunk;
        match self.runs.last_mut() {
            Some(r)
                if r.chunk + r.count == idx && u64::from(r.blk) + r.count * (self.chunk / BLKSZ) == u64::from(blk) =>
            {
                r.count += 1
            }
            _ => self.runs.push(Run {
                chunk: idx,
                blk,
                count: 1,
            }),
        }
        out.write_zeros(self.pending_zeros)?;
        self.pending_zeros = 0;
        self.chunk_has_data = true;
        Ok(())
    }

    /// Feeds the next piece of content; pieces must not go past the declared size.
    pub fn push<W: Write + Seek>(&mut self, out: &mut DataOut<W>, piece: Piece<'_>) -> Result<()> {
        let mut piece = piece;
        while piece.len() > 0 {
            if self.pos >= self.tail_start && !self.tail_decided {
                self.tail_decided = true;
                self.capturing = self.may_inline && !self.holes && self.tail_start < self.size;
                if self.capturing && self.pending_zeros > 0 {
                    self.start_chunk(out)?;
                }
            }
            // Split at the next chunk end and at the tail start, so each step lies in
            // one chunk and on one side of the tail.
            let chunk_end = (self.pos / self.chunk + 1).saturating_mul(self.chunk).min(self.size);
            let mut limit = chunk_end;
            if self.pos < self.tail_start {
                limit = limit.min(self.tail_start);
            }
            let n = piece.len().min(limit - self.pos);
            if n == 0 {
                return Err(Error::TooLarge("file data longer than its declared size".into()));
            }
            let (now, rest) = match piece {
                Piece::Data(d) => (Piece::Data(&d[..n as usize]), Piece::Data(&d[n as usize..])),
                Piece::Zeros(z) => (Piece::Zeros(n), Piece::Zeros(z - n)),
            };
            piece = rest;
            self.step(out, now)?;
            self.pos += n;
            if self.pos == chunk_end && !self.capturing {
                self.end_chunk(out)?;
            }
        }
        Ok(())
    }

    fn step<W: Write + Seek>(&mut self, out: &mut DataOut<W>, p: Piece<'_>) -> Result<()> {
        if self.capturing {
            match p {
                Piece::Data(d) => self.tail.extend_from_slice(d),
                Piece::Zeros(n) => self.tail.resize(self.tail.len() + n as usize, 0),
            }
            return Ok(());
        }
        match p {
            Piece::Data(d) => {
                if !self.chunk_has_data && self.detect_holes && is_zero(d) {
                    self.pending_zeros += d.len() as u64;
                } else {
                    self.start_chunk(out)?;
                    out.write(d)?;
                }
            }
            Piece::Zeros(n) => {
                if !self.chunk_has_data && self.detect_holes {
                    self.pending_zeros += n;
                } else {
                    self.start_chunk(out)?;
                    out.write_zeros(n)?;
                }
            }
        }
        Ok(())
    }

    fn end_chunk<W: Write + Seek>(&mut self, out: &mut DataOut<W>) -> Result<()> {
        if !self.chunk_has_data {
            if self.pending_zeros == self.chunk {
                // A whole chunk of zeros: leave it out and make it a hole.
                self.holes = true;
                self.pending_zeros = 0;
            } else {
                // A partial last chunk is always stored: chunk maps cannot say
                // "hole up to EOF" for less than a chunk in every reader.
                self.start_chunk(out)?;
            }
        }
        self.chunk_has_data = false;
        if self.pos == self.size {
            out.pad_block()?;
        }
        Ok(())
    }

    /// Completes the file; fails if fewer bytes arrived than declared.
    pub fn finish(self) -> Result<FileData, u64> {
        if self.pos != self.size {
            return Err(self.size - self.pos);
        }
        let first = self.runs.first().map(|r| r.blk);
        Ok(if self.holes {
            FileData::Chunked {
                size: self.size,
                chunk_bits: self.chunk_bits,
                runs: self.runs,
            }
        } else if self.capturing {
            FileData::Inline {
                size: self.size,
                blkaddr: first.unwrap_or(NULL_ADDR),
                tail: self.tail,
            }
        } else {
            FileData::Plain {
                size: self.size,
                blkaddr: first.unwrap_or(0),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn spool(pieces: &[Piece<'_>], size: u64, inline: bool) -> (FileData, Vec<u8>) {
        let mut out = DataOut::new(Cursor::new(Vec::new())).unwrap_or_else(|_| unreachable!());
        let mut s = FileSpool::new(size, inline, true);
        for p in pieces {
            assert!(s.push(&mut out, *p).is_ok());
        }
        let fd = s.finish().unwrap_or_else(|_| unreachable!());
        let v = out.finish().map(Cursor::into_inner).unwrap_or_default();
        (fd, v)
    }

    #[test]
    fn plain_inline_and_holes() {
        let data = vec![7u8; 5000];
        let (fd, img) = spool(&[Piece::Data(&data)], 5000, true);
        match fd {
            FileData::Inline {
                blkaddr: 1, ref tail, ..
            } => assert_eq!(tail.len(), 904),
            other => panic!("{other:?}"),
        }
        assert_eq!(img.len(), 8192);
        let (fd, _) = spool(&[Piece::Data(&data)], 5000, false);
        assert!(matches!(fd, FileData::Plain { blkaddr: 1, size: 5000 }));
        let (fd, img) = spool(
            &[Piece::Data(&data[..100]), Piece::Zeros(8192), Piece::Data(&data[..10])],
            8302,
            true,
        );
        match fd {
            FileData::Chunked {
                chunk_bits: 0,
                ref runs,
                ..
            } => {
                assert_eq!(
                    runs,
                    &[
                        Run {
                            chunk: 0,
                            blk: 1,
                            count: 1
                        },
                        Run {
                            chunk: 2,
                            blk: 2,
                            count: 1
                        }
                    ][..]
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(img.len(), 3 * 4096);
        let (fd, _) = spool(&[Piece::Zeros(4096), Piece::Data(&data[..10])], 4106, true);
        assert!(matches!(fd, FileData::Chunked { .. }));
        let (fd, _) = spool(&[], 0, true);
        assert!(matches!(fd, FileData::Plain { size: 0, blkaddr: 0 }));
    }

    #[test]
    fn chunk_bits() {
        assert_eq!(chunk_bits_for(0), 0);
        assert_eq!(chunk_bits_for(MAX_CHUNKS * 4096), 0);
        assert_eq!(chunk_bits_for(MAX_CHUNKS * 4096 + 1), 1);
        assert_eq!(chunk_bits_for(u64::MAX), 31);
    }
}
