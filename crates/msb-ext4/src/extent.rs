//! Extent trees: up to four extents live in the inode's `i_block`; more go into full
//! leaf blocks (340 entries each) under index entries, as many levels as needed, so the
//! tree is as shallow and narrow as e2fsck wants it.

use crate::layout::{put16, put32, BLOCK_SIZE};

const MAGIC: u16 = 0xF30A;
const HEADER: usize = 12;
const ENTRY: usize = 12;
const ROOT_MAX: usize = 4;
const NODE_MAX: usize = (BLOCK_SIZE - HEADER) / ENTRY;
/// Longest initialized extent.
pub(crate) const MAX_LEN: u32 = 32768;

/// A run of logical blocks mapped to contiguous physical blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    /// First logical block.
    pub logical: u32,
    /// First physical block.
    pub start: u64,
    /// Length in blocks, 1..=32768.
    pub len: u32,
}

/// Collects extents from blocks mapped one run at a time, merging neighbours.
#[derive(Debug, Default)]
pub(crate) struct ExtentList {
    /// The extents so far.
    pub extents: Vec<Extent>,
}

impl ExtentList {
    /// Maps `len` logical blocks from `logical` to physical blocks from `start`.
    pub(crate) fn push(&mut self, mut logical: u32, mut start: u64, mut len: u32) {
        while len > 0 {
            if let Some(last) = self.extents.last_mut() {
                if last.logical + last.len == logical && last.start + u64::from(last.len) == start && last.len < MAX_LEN
                {
                    let n = len.min(MAX_LEN - last.len);
                    last.len += n;
                    (logical, start, len) = (logical + n, start + u64::from(n), len - n);
                    continue;
                }
            }
            let n = len.min(MAX_LEN);
            self.extents.push(Extent { logical, start, len: n });
            (logical, start, len) = (logical + n, start + u64::from(n), len - n);
        }
    }
}

/// Index or tree blocks `build` needs for `n` extents.
pub(crate) fn tree_blocks(n: usize) -> usize {
    let mut total = 0;
    let mut level = n;
    while level > ROOT_MAX {
        level = level.div_ceil(NODE_MAX);
        total += level;
    }
    total
}

fn header(buf: &mut [u8], entries: usize, max: usize, depth: u16) {
    put16(buf, 0, MAGIC);
    put16(buf, 2, entries as u16);
    put16(buf, 4, max as u16);
    put16(buf, 6, depth);
}

fn leaf(buf: &mut [u8], e: &Extent) {
    put32(buf, 0, e.logical);
    put16(buf, 4, e.len as u16);
    put16(buf, 6, (e.start >> 32) as u16);
    put32(buf, 8, e.start as u32);
}

fn index(buf: &mut [u8], logical: u32, child: u64) {
    put32(buf, 0, logical);
    put32(buf, 4, child as u32);
    put16(buf, 8, (child >> 32) as u16);
}

/// The tree for `extents`: the 60-byte root for `i_block` and the tree blocks, placed at
/// `blocks` (exactly `tree_blocks(extents.len())` of them, leaves first).
pub(crate) fn build(extents: &[Extent], blocks: &[u64]) -> ([u8; 60], Vec<(u64, Vec<u8>)>) {
    let mut root = [0u8; 60];
    if extents.len() <= ROOT_MAX {
        header(&mut root, extents.len(), ROOT_MAX, 0);
        for (i, e) in extents.iter().enumerate() {
            leaf(&mut root[HEADER + i * ENTRY..], e);
        }
        return (root, Vec::new());
    }
    let mut out = Vec::new();
    let mut next_block = blocks.iter();
    // (first logical block, physical block) of each node of the level being built.
    let mut level: Vec<(u32, u64)> = Vec::new();
    for chunk in extents.chunks(NODE_MAX) {
        let at = next_block.next().copied().unwrap_or_default();
        let mut node = vec![0u8; BLOCK_SIZE];
        header(&mut node, chunk.len(), NODE_MAX, 0);
        for (i, e) in chunk.iter().enumerate() {
            leaf(&mut node[HEADER + i * ENTRY..], e);
        }
        level.push((chunk[0].logical, at));
        out.push((at, node));
    }
    let mut depth = 1u16;
    while level.len() > ROOT_MAX {
        let mut upper = Vec::new();
        for chunk in level.chunks(NODE_MAX) {
            let at = next_block.next().copied().unwrap_or_default();
            let mut node = vec![0u8; BLOCK_SIZE];
            header(&mut node, chunk.len(), NODE_MAX, depth);
            for (i, (logical, child)) in chunk.iter().enumerate() {
                index(&mut node[HEADER + i * ENTRY..], *logical, *child);
            }
            upper.push((chunk[0].0, at));
            out.push((at, node));
        }
        level = upper;
        depth += 1;
    }
    header(&mut root, level.len(), ROOT_MAX, depth);
    for (i, (logical, child)) in level.iter().enumerate() {
        index(&mut root[HEADER + i * ENTRY..], *logical, *child);
    }
    (root, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }

    #[test]
    fn neighbours_merge_up_to_the_maximum_length() {
        let mut l = ExtentList::default();
        l.push(0, 100, 10);
        l.push(10, 110, 5);
        l.push(20, 200, 1);
        l.push(21, 201, 40000);
        assert_eq!(
            l.extents,
            [
                Extent {
                    logical: 0,
                    start: 100,
                    len: 15
                },
                Extent {
                    logical: 20,
                    start: 200,
                    len: 32768
                },
                Extent {
                    logical: 20 + 32768,
                    start: 200 + 32768,
                    len: 40001 - 32768
                },
            ]
        );
    }

    #[test]
    fn trees_grow_only_as_deep_as_needed() {
        assert_eq!(tree_blocks(4), 0);
        assert_eq!(tree_blocks(5), 1);
        assert_eq!(tree_blocks(340 * 4), 4);
        assert_eq!(tree_blocks(340 * 4 + 1), 5 + 1);
        let extents: Vec<Extent> = (0..2000u32)
            .map(|i| Extent {
                logical: i * 2,
                start: 1000 + u64::from(i) * 2,
                len: 1,
            })
            .collect();
        let blocks: Vec<u64> = (0..tree_blocks(extents.len()) as u64).map(|i| 50 + i).collect();
        let (root, nodes) = build(&extents, &blocks);
        assert_eq!(u16_at(&root, 0), MAGIC);
        assert_eq!(u16_at(&root, 6), 2, "depth");
        assert_eq!(u16_at(&root, 2), 1, "one index block at the top");
        assert_eq!(nodes.len(), blocks.len());
        let leaves: usize = nodes
            .iter()
            .filter(|(_, n)| u16_at(n, 6) == 0)
            .map(|(_, n)| usize::from(u16_at(n, 2)))
            .sum();
        assert_eq!(leaves, 2000);
    }
}
