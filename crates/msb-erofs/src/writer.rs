//! The metadata phase: once the tar is read and all file data is on disk, lay out
//! directory blocks and the inode area after the data, then write the superblock.
//!
//! Image layout: block 0 (superblock at 1024) | file data, in tar order |
//! directory and symlink blocks | inode area (`meta_blkaddr`), root first so its nid
//! (a 16-bit superblock field) is 0.

use std::collections::HashMap;
use std::io::{Seek, Write};

use crate::dir;
use crate::error::{Error, Result};
use crate::ingest::Ingest;
use crate::layout::*;
use crate::spool::{DataOut, FileData};
use crate::tree::{Ino, Kind, Node, Tree, ROOT};
use crate::{xattr, WriteOptions, WriteStats};

/// Everything decided about one reachable inode before anything is written.
#[derive(Debug, Default, Clone)]
struct Plan {
    ino: Ino,
    /// Order index of the parent directory (for `..`); the root is its own parent.
    parent: usize,
    nlink: u32,
    extended: bool,
    layout: u16,
    size: u64,
    /// Block address / rdev / chunk format, as stored in `i_u`.
    i_u: u32,
    xsize: u64,
    /// Bytes of data stored right after the inode (tail or chunk map).
    inline_len: u64,
    /// Full blocks allocated in the metadata phase (directories, long symlinks).
    extra_blocks: u64,
    meta_off: u64,
}

/// Xattrs an inode carries on disk: its own, plus the overlayfs opaque marker.
fn xattrs_of(node: &Node) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut x = node.meta.xattrs.clone();
    if let Kind::Dir { opaque: true, .. } = node.kind {
        x.retain(|(n, _)| n != b"trusted.overlay.opaque");
        x.push((b"trusted.overlay.opaque".to_vec(), b"y".to_vec()));
        x.sort();
    }
    x
}

/// A directory's entries including `.` and `..`, sorted; `None` marks `.`/`..`.
fn dir_entries(tree: &Tree, ino: Ino) -> Vec<(&[u8], Option<Ino>)> {
    let mut v: Vec<(&[u8], Option<Ino>)> = vec![(b".", None), (b"..", None)];
    if let Some(Node {
        kind: Kind::Dir { children, .. },
        ..
    }) = tree.nodes.get(ino as usize)
    {
        v.extend(children.iter().map(|(n, i)| (&n[..], Some(*i))));
    }
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn file_type(node: &Node) -> u8 {
    match node.kind {
        Kind::Dir { .. } => ft::DIR,
        Kind::File(_) => ft::REG,
        Kind::Symlink(_) => ft::SYMLINK,
        Kind::Chr(_) => ft::CHR,
        Kind::Blk(_) => ft::BLK,
        Kind::Fifo => ft::FIFO,
    }
}

fn type_bits(node: &Node) -> u16 {
    match node.kind {
        Kind::Dir { .. } => mode::S_IFDIR,
        Kind::File(_) => mode::S_IFREG,
        Kind::Symlink(_) => mode::S_IFLNK,
        Kind::Chr(_) => mode::S_IFCHR,
        Kind::Blk(_) => mode::S_IFBLK,
        Kind::Fifo => mode::S_IFIFO,
    }
}

/// Breadth-first order of reachable inodes (hard links appear once), with link counts.
fn order(tree: &Tree) -> (Vec<Plan>, Vec<u32>) {
    let mut idx_of = vec![u32::MAX; tree.nodes.len()];
    let mut plans = vec![Plan {
        ino: ROOT,
        parent: 0,
        nlink: 2,
        ..Plan::default()
    }];
    idx_of[ROOT as usize] = 0;
    let mut i = 0;
    while i < plans.len() {
        let ino = plans[i].ino;
        if let Some(Node {
            kind: Kind::Dir { children, .. },
            ..
        }) = tree.nodes.get(ino as usize)
        {
            for &child in children.values() {
                let Some(cnode) = tree.nodes.get(child as usize) else {
                    continue;
                };
                let seen = idx_of[child as usize];
                if cnode.is_dir() {
                    if seen != u32::MAX {
                        continue; // cannot happen with how the tree is built; never loop
                    }
                    plans[i].nlink += 1;
                    idx_of[child as usize] = plans.len() as u32;
                    plans.push(Plan {
                        ino: child,
                        parent: i,
                        nlink: 2,
                        ..Plan::default()
                    });
                } else if seen == u32::MAX {
                    idx_of[child as usize] = plans.len() as u32;
                    plans.push(Plan {
                        ino: child,
                        parent: i,
                        nlink: 1,
                        ..Plan::default()
                    });
                } else {
                    plans[seen as usize].nlink += 1;
                }
            }
        }
        i += 1;
    }
    (plans, idx_of)
}

/// The most common (mtime, nsec): compact inodes carry no time of their own and take
/// the superblock's, so choosing the most frequent one lets most inodes stay compact
/// (32 bytes) while every inode keeps its exact mtime.
fn build_time(tree: &Tree, plans: &[Plan]) -> (i64, u32) {
    let mut counts: HashMap<(i64, u32), u64> = HashMap::new();
    for p in plans {
        let m = &tree.nodes[p.ino as usize].meta;
        *counts.entry((m.mtime, m.mtime_nsec)).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or((0, 0), |(t, _)| t)
}

/// Chooses layout for data kept in the metadata phase (directories, symlinks):
/// tail-packed when the tail fits beside the inode, else whole blocks.
fn small_layout(p: &mut Plan, len: u64) {
    p.size = len;
    let tail = len % BLKSZ;
    let fixed = if p.extended { EXTENDED_SIZE } else { COMPACT_SIZE } + p.xsize;
    if tail > 0 && fixed + tail <= BLKSZ {
        p.layout = LAYOUT_FLAT_INLINE;
        p.inline_len = tail;
        p.extra_blocks = len / BLKSZ;
    } else {
        p.layout = LAYOUT_FLAT_PLAIN;
        p.extra_blocks = len.div_ceil(BLKSZ);
    }
}

/// Finishes the image: plans and writes directories, inodes and the superblock.
pub fn finish<W: Write + Seek>(ing: Ingest<W>, opts: &WriteOptions) -> Result<(W, WriteStats)> {
    let Ingest {
        tree,
        mut out,
        mut stats,
        ..
    } = ing;
    let (mut plans, idx_of) = order(&tree);
    let (bt, bt_ns) = build_time(&tree, &plans);
    let mut incompat = 0u32;

    for p in plans.iter_mut() {
        let node = &tree.nodes[p.ino as usize];
        let m = &node.meta;
        p.xsize = xattr::ibody_size(&xattrs_of(node)) as u64;
        let size_hint = match &node.kind {
            Kind::File(d) => d.size(),
            _ => 0,
        };
        p.extended = size_hint > u64::from(u32::MAX)
            || m.uid > u32::from(u16::MAX)
            || m.gid > u32::from(u16::MAX)
            || p.nlink > u32::from(u16::MAX)
            || (m.mtime, m.mtime_nsec) != (bt, bt_ns);
        match &node.kind {
            Kind::Dir { .. } => {
                let names = dir_entries(&tree, p.ino);
                small_layout(p, dir::dir_size(names.iter().map(|e| e.0.len())));
            }
            Kind::Symlink(t) => small_layout(p, t.len() as u64),
            Kind::File(FileData::Plain { size, blkaddr }) => {
                p.size = *size;
                p.i_u = *blkaddr;
            }
            Kind::File(FileData::Inline { size, blkaddr, tail }) => {
                p.size = *size;
                p.i_u = *blkaddr;
                p.layout = LAYOUT_FLAT_INLINE;
                p.inline_len = tail.len() as u64;
            }
            Kind::File(FileData::Chunked { size, chunk_bits, .. }) => {
                p.size = *size;
                p.layout = LAYOUT_CHUNK_BASED;
                p.i_u = u32::from(*chunk_bits);
                p.inline_len = 4 * size.div_ceil(BLKSZ << chunk_bits);
                incompat |= FEATURE_INCOMPAT_CHUNKED_FILE;
            }
            Kind::Chr(dev) | Kind::Blk(dev) => p.i_u = *dev,
            Kind::Fifo => {}
        }
    }

    // Blocks for directories and long symlinks go right after the file data.
    let mut next_blk = u64::from(out.block()?);
    for p in plans.iter_mut().filter(|p| p.extra_blocks > 0) {
        p.i_u = u32::try_from(next_blk).map_err(|_| Error::TooLarge("directory blocks past 2^32".into()))?;
        next_blk += p.extra_blocks;
    }
    for p in plans
        .iter_mut()
        .filter(|p| p.layout == LAYOUT_FLAT_INLINE && p.extra_blocks == 0)
    {
        if matches!(tree.nodes[p.ino as usize].kind, Kind::Dir { .. } | Kind::Symlink(_)) {
            p.i_u = NULL_ADDR;
        }
    }
    let meta_blkaddr = next_blk;

    // Inode slots: 32-byte aligned; an inode with its xattrs and tail never straddles
    // a block when it can fit in one (the kernel requires it for tails).
    let mut cursor = 0u64;
    for p in plans.iter_mut() {
        let isize = if p.extended { EXTENDED_SIZE } else { COMPACT_SIZE };
        let together = if p.layout == LAYOUT_CHUNK_BASED {
            isize + p.xsize
        } else {
            isize + p.xsize + p.inline_len
        };
        let room = BLKSZ - cursor % BLKSZ;
        if together <= BLKSZ && together > room || isize > room {
            cursor = align_up(cursor, BLKSZ);
        }
        p.meta_off = cursor;
        cursor = align_up(cursor + isize + p.xsize + p.inline_len, ISLOT);
    }
    let total_blocks = meta_blkaddr + cursor.div_ceil(BLKSZ);
    let blocks = u32::try_from(total_blocks).map_err(|_| Error::TooLarge(format!("{total_blocks} blocks")))?;

    let nid = |idx: usize| plans[idx].meta_off / ISLOT;
    let nid_of = |ino: Ino| nid(idx_of[ino as usize] as usize);

    // Directory and symlink blocks.
    for (i, p) in plans.iter().enumerate().filter(|(_, p)| p.extra_blocks > 0) {
        let content = small_content(&tree, p, i, &plans, &nid_of);
        out.seek_to(u64::from(p.i_u) * BLKSZ)?;
        let full = (p.extra_blocks * BLKSZ).min(content.len() as u64) as usize;
        out.write(&content[..full])?;
        out.pad_block()?;
    }

    // The inode area.
    out.seek_to(meta_blkaddr * BLKSZ)?;
    let mut buf = Vec::with_capacity(8192);
    for (i, p) in plans.iter().enumerate() {
        let node = &tree.nodes[p.ino as usize];
        buf.clear();
        let raw = RawInode {
            extended: p.extended,
            layout: p.layout,
            xattr_icount: xattr::icount_for(p.xsize as usize).unwrap_or(0),
            mode: type_bits(node) | node.meta.perm,
            nlink: p.nlink,
            size: p.size,
            i_u: p.i_u,
            ino: u32::try_from(i + 1).unwrap_or(u32::MAX),
            uid: node.meta.uid,
            gid: node.meta.gid,
            mtime: node.meta.mtime as u64,
            mtime_nsec: node.meta.mtime_nsec,
        };
        buf.resize(raw.isize() as usize, 0);
        raw.encode(&mut buf);
        xattr::encode_ibody(&xattrs_of(node), &mut buf);
        match &node.kind {
            Kind::File(FileData::Inline { tail, .. }) => buf.extend_from_slice(tail),
            Kind::File(FileData::Chunked { size, chunk_bits, runs }) => {
                let n = size.div_ceil(BLKSZ << chunk_bits);
                let per = 1u64 << chunk_bits;
                let mut r = runs.iter().peekable();
                for c in 0..n {
                    while r.peek().is_some_and(|run| run.chunk + run.count <= c) {
                        r.next();
                    }
                    let addr = match r.peek() {
                        Some(run) if run.chunk <= c => u64::from(run.blk) + (c - run.chunk) * per,
                        _ => u64::from(NULL_ADDR),
                    };
                    buf.extend_from_slice(&(addr as u32).to_le_bytes());
                }
            }
            Kind::Dir { .. } | Kind::Symlink(_) if p.layout == LAYOUT_FLAT_INLINE => {
                let content = small_content(&tree, p, i, &plans, &nid_of);
                let from = (p.extra_blocks * BLKSZ) as usize;
                buf.extend_from_slice(content.get(from..).unwrap_or(&[]));
            }
            _ => {}
        }
        let here = meta_blkaddr * BLKSZ + p.meta_off;
        let gap = here - out.pos();
        out.write_zeros(gap)?;
        out.write(&buf)?;
    }
    out.pad_block()?;

    let sb = Superblock {
        blkszbits: BLKSZ_BITS,
        root_nid: 0,
        inos: plans.len() as u64,
        build_time: bt as u64,
        build_time_nsec: bt_ns,
        blocks,
        meta_blkaddr: meta_blkaddr as u32,
        uuid: opts.uuid,
        volume_name: opts.volume_name,
        feature_incompat: incompat,
        ..Superblock::default()
    };
    write_block0(&mut out, &sb)?;
    stats.inodes = plans.len() as u64;
    stats.bytes_out = total_blocks * BLKSZ;
    Ok((out.finish()?, stats))
}

fn write_block0<W: Write + Seek>(out: &mut DataOut<W>, sb: &Superblock) -> Result<()> {
    let mut block = vec![0u8; BLKSZ as usize];
    block[SUPER_OFFSET as usize..SUPER_OFFSET as usize + 128].copy_from_slice(&sb.encode());
    out.seek_to(0)?;
    out.write(&block)
}

/// Full content of a directory (encoded entries) or symlink (its target).
fn small_content(tree: &Tree, p: &Plan, idx: usize, plans: &[Plan], nid_of: &dyn Fn(Ino) -> u64) -> Vec<u8> {
    let node = &tree.nodes[p.ino as usize];
    match &node.kind {
        Kind::Symlink(t) => t.clone(),
        Kind::Dir { .. } => {
            let me = plans[idx].meta_off / ISLOT;
            let parent = plans[p.parent].meta_off / ISLOT;
            let entries: Vec<dir::OutEntry<'_>> = dir_entries(tree, p.ino)
                .into_iter()
                .map(|(name, child)| match child {
                    Some(c) => (
                        name,
                        nid_of(c),
                        tree.nodes.get(c as usize).map_or(ft::UNKNOWN, file_type),
                    ),
                    None if name == b"." => (name, me, ft::DIR),
                    None => (name, parent, ft::DIR),
                })
                .collect();
            dir::encode(&entries)
        }
        _ => Vec::new(),
    }
}
