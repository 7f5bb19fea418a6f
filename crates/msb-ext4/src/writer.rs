//! Second pass: allocate and write every inode's blocks in inode order (journal first),
//! fill the inode table in memory, then write the tables, bitmaps, group descriptors and
//! superblocks, whose counts follow from what was allocated.

use std::fs::File;

use crate::alloc::Allocator;
use crate::data::{self, DataError};
use crate::dir::DirBuilder;
use crate::extent::{self, ExtentList};
use crate::inode::{device_i_block, Inode, EXTENTS_FL, S_IFREG};
use crate::layout::{self, Geometry, SuperInfo, BLOCK, BLOCK_SIZE, INODE_SIZE, JOURNAL_INO};
use crate::plan::{self, Body, Plan, Planned};
use crate::sink::Sink;
use crate::{journal, Data, Dir, Error, Options, SpecialKind, Stats};

/// Largest directory: `i_size_high` is only used for directories with `large_dir`.
const DIR_MAX: u64 = (1 << 31) - BLOCK;

struct Writer<'a, 'f> {
    geo: &'a Geometry,
    opts: &'a Options,
    alloc: Allocator<'a>,
    sink: Sink<'f>,
    /// Inodes 1..=max_ino, 256 bytes each.
    table: Vec<u8>,
}

fn write_err(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Write { what, source }
}

impl Writer<'_, '_> {
    fn no_space(&self, path: String) -> Error {
        Error::NoSpace {
            path,
            size: self.opts.size,
        }
    }

    fn store_inode(&mut self, ino: u32, raw: &[u8; INODE_SIZE]) {
        let at = (ino as usize - 1) * INODE_SIZE;
        self.table[at..at + INODE_SIZE].copy_from_slice(raw);
    }

    /// Writes the extent tree for `extents` and puts its root in `inode`.
    fn finish_extents(
        &mut self,
        inode: &mut Inode,
        extents: &ExtentList,
        path: &dyn Fn() -> String,
    ) -> Result<(), Error> {
        let n = extent::tree_blocks(extents.extents.len()) as u64;
        let blocks = self.alloc.many(n).ok_or_else(|| self.no_space(path()))?;
        let (root, nodes) = extent::build(&extents.extents, &blocks);
        for (at, node) in nodes {
            self.sink.put(at, &node).map_err(write_err("extent tree"))?;
        }
        inode.i_block = root;
        inode.flags |= EXTENTS_FL;
        inode.blocks += n;
        Ok(())
    }

    /// Allocates and writes `bytes` as the whole contents (directories, slow symlinks).
    fn place_blocks(
        &mut self,
        bytes: &[u8],
        extents: &mut ExtentList,
        path: &dyn Fn() -> String,
    ) -> Result<u64, Error> {
        let total = bytes.len().div_ceil(BLOCK_SIZE) as u64;
        let mut done = 0u64;
        while done < total {
            let (phys, n) = self.alloc.run(total - done).ok_or_else(|| self.no_space(path()))?;
            let from = done as usize * BLOCK_SIZE;
            let to = ((done + n) as usize * BLOCK_SIZE).min(bytes.len());
            self.sink
                .put(phys, &bytes[from..to])
                .map_err(write_err("directory or symlink blocks"))?;
            extents.push(done as u32, phys, n as u32);
            done += n;
        }
        Ok(total)
    }

    fn journal(&mut self, blocks: u32) -> Result<[u32; 17], Error> {
        let path = || "journal".to_string();
        let mut extents = ExtentList::default();
        let mut done = 0u32;
        while done < blocks {
            let (phys, n) = self
                .alloc
                .run(u64::from(blocks - done))
                .ok_or_else(|| self.no_space(path()))?;
            extents.push(done, phys, n as u32);
            done += n as u32;
        }
        let first = extents.extents.first().map_or(0, |e| e.start);
        self.sink
            .put(first, &journal::superblock(blocks, &self.opts.uuid))
            .map_err(write_err("journal"))?;
        let size = u64::from(blocks) * BLOCK;
        let mut inode = Inode {
            mode: S_IFREG | 0o600,
            size,
            time: self.opts.now,
            links: 1,
            blocks: u64::from(blocks),
            ..Inode::default()
        };
        self.finish_extents(&mut inode, &extents, &path)?;
        self.store_inode(JOURNAL_INO, &inode.encode(None));
        let mut backup = [0u32; 17];
        for (i, w) in inode.i_block.chunks_exact(4).enumerate() {
            backup[i] = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        }
        backup[15] = (size >> 32) as u32;
        backup[16] = size as u32;
        Ok(backup)
    }

    fn place(&mut self, p: &Planned<'_>, plan: &Plan<'_>) -> Result<(), Error> {
        let path = || plan.path(p.ino);
        let mut inode = Inode {
            mode: p.mode,
            uid: p.meta.uid,
            gid: p.meta.gid,
            time: p.meta.mtime,
            nsec: p.meta.mtime_nsec,
            links: p.links as u16,
            ..Inode::default()
        };
        let mut extents = ExtentList::default();
        match &p.body {
            Body::Dir { entries, min_blocks } => {
                let mut b = DirBuilder::new(p.ino, p.parent);
                for e in entries {
                    b.add(e.ino, e.name, e.ft);
                }
                let bytes = b.finish(*min_blocks);
                if bytes.len() as u64 > DIR_MAX {
                    return Err(Error::DirTooLarge {
                        path: path(),
                        bytes: bytes.len() as u64,
                    });
                }
                inode.blocks = self.place_blocks(&bytes, &mut extents, &path)?;
                inode.size = bytes.len() as u64;
                self.finish_extents(&mut inode, &extents, &path)?;
            }
            Body::File(data) => {
                inode.size = data.len();
                let placed = match data {
                    Data::Bytes(b) => data::place_bytes(b, &mut self.alloc, &mut self.sink, &mut extents),
                    Data::Host { path: host, len } => {
                        data::place_host(host, *len, &mut self.alloc, &mut self.sink, &mut extents)
                    }
                };
                inode.blocks = placed.map_err(|e| match (e, data) {
                    (DataError::NoSpace, _) => self.no_space(path()),
                    (DataError::Write(source), _) => Error::Write {
                        what: "file data",
                        source,
                    },
                    (DataError::Read(source), Data::Host { path: host, .. }) => Error::HostRead {
                        path: path(),
                        host: host.clone(),
                        source,
                    },
                    (DataError::Changed(actual), Data::Host { path: host, len }) => Error::HostChanged {
                        path: path(),
                        host: host.clone(),
                        expected: *len,
                        actual,
                    },
                    (DataError::Read(source), Data::Bytes(_)) => Error::Write {
                        what: "file data",
                        source,
                    },
                    (DataError::Changed(_), Data::Bytes(_)) => self.no_space(path()),
                })?;
                self.finish_extents(&mut inode, &extents, &path)?;
            }
            Body::Symlink(target) => {
                inode.size = target.len() as u64;
                if target.len() < 60 {
                    inode.i_block[..target.len()].copy_from_slice(target);
                } else {
                    inode.blocks = self.place_blocks(target, &mut extents, &path)?;
                    self.finish_extents(&mut inode, &extents, &path)?;
                }
            }
            Body::Special(kind) => {
                if let SpecialKind::Char { major, minor } | SpecialKind::Block { major, minor } = *kind {
                    inode.i_block = device_i_block(major, minor);
                }
            }
        }
        if let Some(block) = &p.xattrs.block {
            let at = self.alloc.one().ok_or_else(|| self.no_space(path()))?;
            self.sink.put(at, block).map_err(write_err("xattr block"))?;
            inode.xattr_block = at;
            inode.blocks += 1;
        }
        self.store_inode(p.ino, &inode.encode(p.xattrs.ibody.as_deref()));
        Ok(())
    }

    /// Inode tables, bitmaps, group descriptors and superblocks.
    fn finish(&mut self, plan: &Plan<'_>, max_ino: u32, journal_backup: Option<[u32; 17]>) -> Result<(), Error> {
        let geo = self.geo;
        let ipg = geo.inodes_per_group;
        let mut usage = self.alloc.usage();
        for (g, u) in usage.iter_mut().enumerate() {
            let first = g as u64 * u64::from(ipg);
            u.used_inodes = u64::from(max_ino).saturating_sub(first).min(u64::from(ipg)) as u32;
        }
        for p in &plan.inodes {
            if matches!(p.body, Body::Dir { .. }) {
                usage[((p.ino - 1) / ipg) as usize].dirs += 1;
            }
        }
        for (g, u) in usage.iter().enumerate() {
            if u.used_inodes == 0 {
                break;
            }
            let from = g * ipg as usize * INODE_SIZE;
            let to = from + u.used_inodes as usize * INODE_SIZE;
            self.sink
                .put(geo.inode_table(g as u32), &self.table[from..to])
                .map_err(write_err("inode table"))?;
        }
        for (g, u) in (0..geo.groups).zip(&usage) {
            let bb = layout::block_bitmap(geo, g, u.used_blocks);
            let ib = layout::inode_bitmap(geo, u.used_inodes);
            self.sink
                .put(geo.block_bitmap(g), &bb)
                .map_err(write_err("block bitmap"))?;
            self.sink
                .put(geo.inode_bitmap(g), &ib)
                .map_err(write_err("inode bitmap"))?;
        }
        let info = SuperInfo {
            free_blocks: (0..geo.groups)
                .zip(&usage)
                .map(|(g, u)| geo.group_len(g) - u.used_blocks)
                .sum(),
            free_inodes: geo.inodes() - u64::from(max_ino),
            now: self.opts.now,
            uuid: self.opts.uuid,
            label: self.opts.label,
            hash_seed: self.opts.hash_seed,
            journal_backup,
        };
        let gdt = layout::group_descriptors(geo, &usage);
        for g in (0..geo.groups).filter(|&g| geo.has_super(g)) {
            let sb = layout::superblock(geo, &info, g);
            let start = geo.group_start(g);
            if g == 0 {
                self.sink.put_at(start, 1024, &sb).map_err(write_err("superblock"))?;
            } else {
                self.sink.put(start, &sb).map_err(write_err("superblock backup"))?;
            }
            self.sink.put(start + 1, &gdt).map_err(write_err("group descriptors"))?;
        }
        self.sink.flush().map_err(write_err("flush"))
    }
}

/// Writes the image; see [`crate::write()`].
pub(crate) fn write(root: &Dir, out: &File, opts: &Options) -> Result<Stats, Error> {
    let jb = opts.journal_blocks;
    if jb != 0 && !(journal::MIN_BLOCKS..=journal::MAX_BLOCKS).contains(&jb) {
        return Err(Error::JournalSize { blocks: jb });
    }
    if opts.hash_seed == [0; 16] {
        return Err(Error::HashSeed);
    }
    let geo = Geometry::new(opts.size, opts.bytes_per_inode)?;
    let plan = plan::plan(root, opts.now)?;
    let max_ino = plan.max_ino();
    if u64::from(max_ino) > geo.inodes() {
        return Err(Error::NoInodes {
            needed: u64::from(max_ino),
            available: geo.inodes(),
            size: opts.size,
        });
    }
    // Start from an all-hole file so everything not written reads as zeros.
    out.set_len(0).map_err(write_err("truncate"))?;
    out.set_len(opts.size).map_err(write_err("set length"))?;
    let mut w = Writer {
        geo: &geo,
        opts,
        alloc: Allocator::new(&geo),
        sink: Sink::new(out),
        table: vec![0u8; max_ino as usize * INODE_SIZE],
    };
    let journal_backup = if jb > 0 { Some(w.journal(jb)?) } else { None };
    for p in &plan.inodes {
        w.place(p, &plan)?;
    }
    w.finish(&plan, max_ino, journal_backup)?;
    Ok(Stats {
        inodes: u64::from(max_ino),
        data_blocks: w.alloc.allocated(),
        total_blocks: geo.blocks,
        bytes_written: w.sink.written(),
    })
}
