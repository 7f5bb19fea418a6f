//! File contents into data blocks. All-zero blocks become holes (unmapped, as `mke2fs -d`
//! does), every other block is allocated in order and mapped by extents. Host files are
//! streamed in chunks and must hold exactly the length the tree recorded.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::alloc::Allocator;
use crate::extent::ExtentList;
use crate::layout::{BLOCK, BLOCK_SIZE};
use crate::sink::{is_zero, Sink};

/// Bytes read from a host file at a time.
const CHUNK: usize = 1 << 20;

/// Why contents could not be placed.
#[derive(Debug)]
pub(crate) enum DataError {
    /// The image is full.
    NoSpace,
    /// Writing the image failed.
    Write(io::Error),
    /// Reading the host file failed.
    Read(io::Error),
    /// The host file does not have the recorded length; the length found.
    Changed(u64),
}

/// Places `chunk`, which starts at logical block `first`; returns the blocks allocated.
fn place_chunk(
    chunk: &[u8],
    first: u32,
    alloc: &mut Allocator<'_>,
    sink: &mut Sink<'_>,
    extents: &mut ExtentList,
) -> Result<u64, DataError> {
    let blocks = chunk.len().div_ceil(BLOCK_SIZE);
    let mut used = 0;
    let mut i = 0;
    while i < blocks {
        let block_at = |i: usize| &chunk[i * BLOCK_SIZE..((i + 1) * BLOCK_SIZE).min(chunk.len())];
        if is_zero(block_at(i)) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < blocks && !is_zero(block_at(j)) {
            j += 1;
        }
        // Blocks i..j carry data; map them, possibly across several allocator runs.
        while i < j {
            let (phys, n) = alloc.run((j - i) as u64).ok_or(DataError::NoSpace)?;
            let bytes = &chunk[i * BLOCK_SIZE..((i + n as usize) * BLOCK_SIZE).min(chunk.len())];
            sink.put(phys, bytes).map_err(DataError::Write)?;
            extents.push(first + i as u32, phys, n as u32);
            used += n;
            i += n as usize;
        }
    }
    Ok(used)
}

/// Places in-memory contents.
pub(crate) fn place_bytes(
    bytes: &[u8],
    alloc: &mut Allocator<'_>,
    sink: &mut Sink<'_>,
    extents: &mut ExtentList,
) -> Result<u64, DataError> {
    place_chunk(bytes, 0, alloc, sink, extents)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Streams the host file at `path`, which must hold exactly `len` bytes.
pub(crate) fn place_host(
    path: &Path,
    len: u64,
    alloc: &mut Allocator<'_>,
    sink: &mut Sink<'_>,
    extents: &mut ExtentList,
) -> Result<u64, DataError> {
    let mut file = File::open(path).map_err(DataError::Read)?;
    let actual = file.metadata().map_err(DataError::Read)?.len();
    if actual != len {
        return Err(DataError::Changed(actual));
    }
    let mut buf = vec![0u8; CHUNK.min(len.next_multiple_of(BLOCK) as usize).max(1)];
    let mut done = 0u64;
    let mut used = 0;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let got = fill(&mut file, &mut buf[..want]).map_err(DataError::Read)?;
        if got < want {
            return Err(DataError::Changed(done + got as u64));
        }
        used += place_chunk(&buf[..got], (done / BLOCK) as u32, alloc, sink, extents)?;
        done += got as u64;
    }
    if fill(&mut file, &mut buf[..1]).map_err(DataError::Read)? > 0 {
        let now = file.metadata().map_err(DataError::Read)?.len();
        return Err(DataError::Changed(now.max(len + 1)));
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extent::Extent;
    use crate::layout::Geometry;

    #[test]
    fn zero_blocks_become_holes() {
        let geo = Geometry::new(64 << 20, 16384).unwrap();
        let mut alloc = Allocator::new(&geo);
        let img = tempfile::tempfile().unwrap();
        let mut sink = Sink::new(&img);
        let mut data = vec![0u8; 5 * BLOCK_SIZE + 10];
        data[0] = 1;
        data[BLOCK_SIZE] = 1;
        data[4 * BLOCK_SIZE + 100] = 1;
        data[5 * BLOCK_SIZE + 9] = 1;
        let mut ext = ExtentList::default();
        let used = place_bytes(&data, &mut alloc, &mut sink, &mut ext).unwrap();
        assert_eq!(used, 4);
        let s = geo.data_start(0);
        assert_eq!(
            ext.extents,
            [
                Extent {
                    logical: 0,
                    start: s,
                    len: 2
                },
                Extent {
                    logical: 4,
                    start: s + 2,
                    len: 2
                }
            ]
        );
    }

    #[test]
    fn host_files_must_keep_their_length() {
        let geo = Geometry::new(64 << 20, 16384).unwrap();
        let mut alloc = Allocator::new(&geo);
        let img = tempfile::tempfile().unwrap();
        let mut sink = Sink::new(&img);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        let mut ext = ExtentList::default();
        assert!(matches!(
            place_host(&p, 4, &mut alloc, &mut sink, &mut ext),
            Err(DataError::Changed(5))
        ));
        assert_eq!(place_host(&p, 5, &mut alloc, &mut sink, &mut ext).unwrap(), 1);
        assert!(matches!(
            place_host(&dir.path().join("missing"), 5, &mut alloc, &mut sink, &mut ext),
            Err(DataError::Read(_))
        ));
    }
}
