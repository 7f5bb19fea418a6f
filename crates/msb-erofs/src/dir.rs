//! Directory blocks: `erofs_dirent` arrays followed by their names, one self-contained
//! block at a time, entries sorted by name so the kernel can binary-search.

use crate::error::{corrupt, Result};
use crate::layout::{le16, le64, BLKSZ, DIRENT_SIZE, NAME_MAX};

/// One entry to encode: name, nid, file type.
pub type OutEntry<'a> = (&'a [u8], u64, u8);

/// Splits sorted entries into blocks: returns the index where each block starts.
fn block_starts(name_lens: impl Iterator<Item = usize>) -> (Vec<usize>, u64) {
    let mut starts = vec![0];
    let mut used = 0u64;
    let mut full = 0u64;
    for (i, len) in name_lens.enumerate() {
        let need = DIRENT_SIZE + len as u64;
        if used + need > BLKSZ {
            starts.push(i);
            full += 1;
            used = 0;
        }
        used += need;
    }
    (starts, full * BLKSZ + used)
}

/// Byte size of a directory holding entries with these name lengths (incl. `.`, `..`),
/// in sorted order: full blocks plus the used part of the last one.
pub fn dir_size(name_lens: impl Iterator<Item = usize>) -> u64 {
    block_starts(name_lens).1
}

/// Encodes sorted entries into directory content of exactly `dir_size` bytes.
pub fn encode(entries: &[OutEntry<'_>]) -> Vec<u8> {
    let (starts, size) = block_starts(entries.iter().map(|e| e.0.len()));
    let mut out = Vec::with_capacity(size as usize);
    for (bi, &start) in starts.iter().enumerate() {
        let end = starts.get(bi + 1).copied().unwrap_or(entries.len());
        let block = &entries[start..end];
        let base = out.len();
        let mut nameoff = block.len() as u64 * DIRENT_SIZE;
        for (name, nid, ft) in block {
            out.extend_from_slice(&nid.to_le_bytes());
            out.extend_from_slice(&(nameoff as u16).to_le_bytes());
            out.push(*ft);
            out.push(0);
            nameoff += name.len() as u64;
        }
        for (name, _, _) in block {
            out.extend_from_slice(name);
        }
        if end != entries.len() {
            out.resize(base + BLKSZ as usize, 0);
        }
    }
    out
}

/// A decoded directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDirent {
    /// Entry name (never empty, at most 255 bytes).
    pub name: Vec<u8>,
    /// Inode number.
    pub nid: u64,
    /// `FT_*` type.
    pub file_type: u8,
}

/// Parses one directory block (`b` is the valid part: a full block, or the tail).
pub fn parse_block(b: &[u8], out: &mut Vec<RawDirent>) -> Result<()> {
    if b.len() < DIRENT_SIZE as usize {
        return Err(corrupt("directory block shorter than one entry"));
    }
    let first_off = usize::from(le16(b, 8));
    if first_off < DIRENT_SIZE as usize || first_off % DIRENT_SIZE as usize != 0 || first_off > b.len() {
        return Err(corrupt(format!(
            "directory block has bad first name offset {first_off}"
        )));
    }
    let n = first_off / DIRENT_SIZE as usize;
    let mut prev: Option<Vec<u8>> = None;
    for i in 0..n {
        let d = &b[i * 12..i * 12 + 12];
        let start = usize::from(le16(d, 8));
        let end = if i + 1 < n {
            usize::from(le16(b, (i + 1) * 12 + 8))
        } else {
            // The last name runs to the end of the block, or to NUL padding.
            let rest = b.get(start..).unwrap_or(&[]);
            start + rest.iter().position(|&c| c == 0).unwrap_or(rest.len())
        };
        if start < first_off || end <= start || end > b.len() || end - start > NAME_MAX {
            return Err(corrupt(format!(
                "directory entry {i} has bad name bounds {start}..{end}"
            )));
        }
        let name = b[start..end].to_vec();
        if name.contains(&b'/') || name.contains(&0) {
            return Err(corrupt("directory entry name contains '/' or NUL"));
        }
        if prev.as_ref().is_some_and(|p| *p >= name) {
            return Err(corrupt("directory entries are not sorted"));
        }
        prev = Some(name.clone());
        out.push(RawDirent {
            name,
            nid: le64(d, 0),
            file_type: d[10],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_across_blocks() {
        let names: Vec<Vec<u8>> = (0..600).map(|i| format!("name-{i:05}").into_bytes()).collect();
        let entries: Vec<OutEntry<'_>> = names.iter().enumerate().map(|(i, n)| (&n[..], i as u64, 1)).collect();
        let enc = encode(&entries);
        assert_eq!(enc.len() as u64, dir_size(names.iter().map(Vec::len)));
        let mut got = Vec::new();
        for block in enc.chunks(BLKSZ as usize) {
            assert!(parse_block(block, &mut got).is_ok());
        }
        assert_eq!(got.len(), 600);
        assert_eq!(got[599].name, names[599]);
        assert_eq!(got[300].nid, 300);
    }
}
