//! Reading EROFS images: superblock, inodes, xattrs, directories, file data.
//!
//! Everything read from the image is checked before use: offsets against the image
//! length, sizes against what the layout can hold, walks against cycles. A corrupt
//! image yields `Error::Corrupt`, never a panic, a runaway allocation or a loop.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::dir::{self, RawDirent};
use crate::error::{corrupt, Error, Result};
use crate::layout::*;
use crate::xattr;

/// Largest file `read_file` returns in one piece; use `open_file` for bigger ones.
pub const MAX_READ_FILE: u64 = 1 << 30;
/// Deepest directory nesting `walk` follows.
pub const MAX_WALK_DEPTH: usize = 4096;
/// Incompat feature bits this reader knows (data of compressed inodes excepted).
const KNOWN_INCOMPAT: u32 = 0x7f;

/// The type of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

impl FileKind {
    fn from_mode(m: u16) -> Option<FileKind> {
        Some(match m & mode::S_IFMT {
            mode::S_IFREG => FileKind::File,
            mode::S_IFDIR => FileKind::Dir,
            mode::S_IFLNK => FileKind::Symlink,
            mode::S_IFCHR => FileKind::CharDevice,
            mode::S_IFBLK => FileKind::BlockDevice,
            mode::S_IFIFO => FileKind::Fifo,
            mode::S_IFSOCK => FileKind::Socket,
            _ => return None,
        })
    }

    fn from_ft(t: u8) -> Option<FileKind> {
        Some(match t {
            ft::REG => FileKind::File,
            ft::DIR => FileKind::Dir,
            ft::SYMLINK => FileKind::Symlink,
            ft::CHR => FileKind::CharDevice,
            ft::BLK => FileKind::BlockDevice,
            ft::FIFO => FileKind::Fifo,
            ft::SOCK => FileKind::Socket,
            _ => return None,
        })
    }
}

/// An inode as stat would show it, plus what is needed to read its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// Inode number (32-byte slot index from the metadata start).
    pub nid: u64,
    /// File type.
    pub kind: FileKind,
    /// Full mode: type bits and permission bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Link count.
    pub nlink: u32,
    /// Device number (major, minor) for device inodes, else (0, 0).
    pub rdev: (u32, u32),
    /// Extended attributes: full names (`user.foo`) and values.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    layout: u16,
    i_u: u32,
    /// Byte offset just past the inode and its inline xattrs.
    data_off: u64,
}

impl Inode {
    /// Permission bits (incl. setuid, setgid, sticky).
    pub fn perm(&self) -> u16 {
        self.mode & 0o7777
    }

    /// The value of one xattr, if present.
    pub fn xattr(&self, name: &[u8]) -> Option<&[u8]> {
        self.xattrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// One entry of a directory (`.` and `..` are not reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Name within the directory.
    pub name: Vec<u8>,
    /// Inode number of the target.
    pub nid: u64,
    /// Type as recorded in the directory entry.
    pub kind: Option<FileKind>,
}

/// An open EROFS image.
#[derive(Debug)]
pub struct Reader<R> {
    src: R,
    len: u64,
    sb: Superblock,
    blksz: u64,
}

impl Reader<File> {
    /// Opens the image file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Reader::new(File::open(path).map_err(Error::Read)?)
    }
}

impl<R: Read + Seek> Reader<R> {
    /// Reads and checks the superblock of the image in `src`.
    pub fn new(mut src: R) -> Result<Self> {
        let len = src.seek(SeekFrom::End(0)).map_err(Error::Read)?;
        if len < SUPER_OFFSET + 128 {
            return Err(corrupt("image is shorter than a superblock"));
        }
        let mut b = [0u8; 128];
        src.seek(SeekFrom::Start(SUPER_OFFSET)).map_err(Error::Read)?;
        src.read_exact(&mut b).map_err(Error::Read)?;
        let sb = Superblock::decode(&b).ok_or_else(|| corrupt("bad superblock magic (not an EROFS image)"))?;
        if !(9..=16).contains(&sb.blkszbits) {
            return Err(Error::Unsupported(format!("block size 2^{}", sb.blkszbits)));
        }
        if sb.feature_incompat & !KNOWN_INCOMPAT != 0 {
            return Err(Error::Unsupported(format!(
                "incompat features {:#x}",
                sb.feature_incompat
            )));
        }
        if sb.extra_devices != 0 {
            return Err(Error::Unsupported("multi-device images".into()));
        }
        let blksz = 1u64 << sb.blkszbits;
        let mut r = Reader { src, len, sb, blksz };
        let root = r.root()?;
        if root.kind != FileKind::Dir {
            return Err(corrupt("root inode is not a directory"));
        }
        Ok(r)
    }

    /// The decoded superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Reads exactly `buf.len()` bytes at `off`, which must lie inside the image.
    fn pread(&mut self, off: u64, buf: &mut [u8]) -> Result<()> {
        let end = off.checked_add(buf.len() as u64).filter(|e| *e <= self.len);
        if end.is_none() {
            return Err(corrupt(format!(
                "read of {} bytes at {off} is past the image end {}",
                buf.len(),
                self.len
            )));
        }
        self.src.seek(SeekFrom::Start(off)).map_err(Error::Read)?;
        self.src.read_exact(buf).map_err(Error::Read)
    }

    /// The root directory.
    pub fn root(&mut self) -> Result<Inode> {
        self.inode(u64::from(self.sb.root_nid))
    }

    /// Byte offset of inode `nid`.
    fn iloc(&self, nid: u64) -> Result<u64> {
        u64::from(self.sb.meta_blkaddr)
            .checked_mul(self.blksz)
            .and_then(|m| nid.checked_mul(ISLOT).and_then(|n| m.checked_add(n)))
            .filter(|o| *o < self.len)
            .ok_or_else(|| corrupt(format!("nid {nid} is outside the image")))
    }

    /// Reads inode `nid` with its xattrs.
    pub fn inode(&mut self, nid: u64) -> Result<Inode> {
        let off = self.iloc(nid)?;
        let mut b = [0u8; 64];
        self.pread(off, &mut b[..32])?;
        let (extended, layout) =
            RawInode::decode_format(&b).ok_or_else(|| corrupt(format!("nid {nid}: reserved format bits set")))?;
        if layout > LAYOUT_CHUNK_BASED {
            return Err(corrupt(format!("nid {nid}: unknown data layout {layout}")));
        }
        if extended {
            self.pread(off, &mut b)?;
        }
        let raw = RawInode::decode(&b, extended, layout, &self.sb);
        let kind =
            FileKind::from_mode(raw.mode).ok_or_else(|| corrupt(format!("nid {nid}: bad mode {:o}", raw.mode)))?;
        let xoff = off + raw.isize();
        let xsize = xattr_ibody_size(raw.xattr_icount);
        let xattrs = if xsize > 0 {
            self.read_xattrs(nid, xoff, xsize)?
        } else {
            Vec::new()
        };
        let rdev = match kind {
            FileKind::CharDevice | FileKind::BlockDevice => decode_dev(raw.i_u),
            _ => (0, 0),
        };
        let ino = Inode {
            nid,
            kind,
            mode: raw.mode,
            uid: raw.uid,
            gid: raw.gid,
            size: raw.size,
            mtime: raw.mtime as i64,
            mtime_nsec: raw.mtime_nsec,
            nlink: raw.nlink,
            rdev,
            xattrs,
            layout,
            i_u: raw.i_u,
            data_off: xoff + xsize,
        };
        if layout == LAYOUT_CHUNK_BASED {
            let fmt = raw.i_u as u16;
            if u32::from(fmt) != raw.i_u || fmt & !(CHUNK_FORMAT_BLKBITS_MASK | CHUNK_FORMAT_INDEXES) != 0 {
                return Err(corrupt(format!("nid {nid}: bad chunk format {:#x}", raw.i_u)));
            }
        }
        // Directories and symlinks are read whole, so their size must be believable.
        let limit = match kind {
            FileKind::Dir => self.len,
            FileKind::Symlink => 4096,
            _ => u64::MAX,
        };
        if ino.size > limit || (kind == FileKind::Dir && ino.size == 0) {
            return Err(corrupt(format!(
                "nid {nid}: implausible size {} for a {kind:?}",
                ino.size
            )));
        }
        Ok(ino)
    }

    fn read_xattrs(&mut self, nid: u64, off: u64, size: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut body = vec![0u8; size as usize];
        self.pread(off, &mut body)?;
        let shared = usize::from(body[4]);
        let mut pos = 12 + 4 * shared;
        if pos > body.len() {
            return Err(corrupt(format!("nid {nid}: shared xattr ids overflow the xattr body")));
        }
        let mut out = Vec::new();
        for i in 0..shared {
            let id = u64::from(le32(&body, 12 + 4 * i));
            let at = u64::from(self.sb.xattr_blkaddr) * self.blksz + id * 4;
            let mut head = [0u8; 4];
            self.pread(at, &mut head)?;
            let need = 4 + usize::from(head[0]) + usize::from(le16(&head, 2));
            let mut e = vec![0u8; need];
            self.pread(at, &mut e)?;
            out.push(self.xattr_pair(nid, &e)?);
        }
        while pos < body.len() {
            out.push(self.xattr_pair(nid, &body[pos..])?);
            let (_, _, _, sz) = xattr::decode_entry(&body[pos..]).ok_or_else(|| corrupt("xattr entry"))?;
            pos += sz;
        }
        Ok(out)
    }

    fn xattr_pair(&self, nid: u64, b: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let (idx, suffix, value, _) =
            xattr::decode_entry(b).ok_or_else(|| corrupt(format!("nid {nid}: xattr entry overruns its body")))?;
        if idx & 0x80 != 0 {
            return Err(Error::Unsupported("long xattr name prefixes".into()));
        }
        let prefix = xattr::prefix_of(idx).ok_or_else(|| corrupt(format!("nid {nid}: unknown xattr index {idx}")))?;
        let mut name = prefix.to_vec();
        name.extend_from_slice(suffix);
        Ok((name, value.to_vec()))
    }

    /// Reads up to `buf.len()` bytes of file data at `off`; returns 0 at end of file.
    /// Works for files, directories and symlinks.
    pub fn read_at(&mut self, ino: &Inode, off: u64, buf: &mut [u8]) -> Result<usize> {
        if off >= ino.size || buf.is_empty() {
            return Ok(0);
        }
        let want = (ino.size - off).min(buf.len() as u64);
        let bs = self.blksz;
        let (phys, extent) = match ino.layout {
            LAYOUT_FLAT_PLAIN => (self.blk_off(ino, ino.i_u, off)?, ino.size - off),
            LAYOUT_FLAT_INLINE => {
                let tail_start = (ino.size - 1) / bs * bs;
                if off < tail_start {
                    (self.blk_off(ino, ino.i_u, off)?, tail_start - off)
                } else {
                    let tail_len = ino.size - tail_start;
                    if ino.data_off % bs + tail_len > bs {
                        return Err(corrupt(format!(
                            "nid {}: inline data crosses a block boundary",
                            ino.nid
                        )));
                    }
                    (ino.data_off + (off - tail_start), ino.size - off)
                }
            }
            LAYOUT_CHUNK_BASED => {
                let fmt = ino.i_u as u16;
                let bits = u32::from(self.sb.blkszbits) + u32::from(fmt & CHUNK_FORMAT_BLKBITS_MASK);
                let chunk = 1u64.checked_shl(bits).filter(|c| *c != 0).unwrap_or(u64::MAX);
                let idx = off / chunk;
                let within = off % chunk;
                let extent = (chunk - within).min(ino.size - off);
                let unit = if fmt & CHUNK_FORMAT_INDEXES != 0 { 8 } else { 4 };
                let at = align_up(ino.data_off, unit)
                    .checked_add(idx.saturating_mul(unit))
                    .ok_or_else(|| corrupt("chunk index offset overflows"))?;
                let mut e = [0u8; 8];
                self.pread(at, &mut e[..unit as usize])?;
                let blk = if unit == 8 {
                    if le16(&e, 2) != 0 {
                        return Err(Error::Unsupported("chunks on extra devices".into()));
                    }
                    le32(&e, 4)
                } else {
                    le32(&e, 0)
                };
                if blk == NULL_ADDR {
                    let n = want.min(extent) as usize;
                    buf[..n].fill(0);
                    return Ok(n);
                }
                let base = u64::from(blk).checked_mul(bs).and_then(|b| b.checked_add(within));
                (base.ok_or_else(|| corrupt("chunk address overflows"))?, extent)
            }
            _ => return Err(Error::Unsupported(format!("compressed data (nid {})", ino.nid))),
        };
        let n = want.min(extent) as usize;
        self.pread(phys, &mut buf[..n])?;
        Ok(n)
    }

    fn blk_off(&self, ino: &Inode, blk: u32, off: u64) -> Result<u64> {
        if blk == NULL_ADDR {
            return Err(corrupt(format!(
                "nid {}: data blocks expected but address is null",
                ino.nid
            )));
        }
        u64::from(blk)
            .checked_mul(self.blksz)
            .and_then(|b| b.checked_add(off))
            .ok_or_else(|| corrupt("overflow"))
    }

    /// Reads a whole file (up to `MAX_READ_FILE` bytes).
    pub fn read_file(&mut self, ino: &Inode) -> Result<Vec<u8>> {
        if ino.size > MAX_READ_FILE {
            return Err(Error::Unsupported(format!(
                "read_file of {} bytes; use open_file",
                ino.size
            )));
        }
        let mut out = vec![0u8; ino.size as usize];
        let mut pos = 0;
        while pos < out.len() {
            let n = self.read_at(ino, pos as u64, &mut out[pos..])?;
            if n == 0 {
                break;
            }
            pos += n;
        }
        Ok(out)
    }

    /// A `Read` over a file's contents.
    pub fn open_file(&mut self, ino: &Inode) -> FileReader<'_, R> {
        FileReader {
            img: self,
            ino: ino.clone(),
            pos: 0,
        }
    }

    /// The target of a symlink.
    pub fn read_link(&mut self, ino: &Inode) -> Result<Vec<u8>> {
        if ino.kind != FileKind::Symlink {
            return Err(corrupt(format!("nid {} is not a symlink", ino.nid)));
        }
        self.read_file(ino)
    }

    /// The entries of a directory, in on-disk (sorted) order, without `.` and `..`.
    pub fn read_dir(&mut self, ino: &Inode) -> Result<Vec<DirEntry>> {
        if ino.kind != FileKind::Dir {
            return Err(corrupt(format!("nid {} is not a directory", ino.nid)));
        }
        let mut raw: Vec<RawDirent> = Vec::new();
        let mut block = vec![0u8; self.blksz as usize];
        let mut off = 0;
        while off < ino.size {
            let len = (ino.size - off).min(self.blksz) as usize;
            let mut got = 0;
            while got < len {
                let n = self.read_at(ino, off + got as u64, &mut block[got..len])?;
                if n == 0 {
                    return Err(corrupt("directory data ends early"));
                }
                got += n;
            }
            dir::parse_block(&block[..len], &mut raw)?;
            off += len as u64;
        }
        Ok(raw
            .into_iter()
            .filter(|d| d.name != b"." && d.name != b"..")
            .map(|d| DirEntry {
                name: d.name,
                nid: d.nid,
                kind: FileKind::from_ft(d.file_type),
            })
            .collect())
    }

    /// Finds the inode at `path` (relative to the root; symlinks are not followed).
    pub fn lookup(&mut self, path: impl AsRef<[u8]>) -> Result<Option<Inode>> {
        let mut stack: Vec<Inode> = vec![self.root()?];
        for comp in path.as_ref().split(|&b| b == b'/') {
            match comp {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let Some(cur) = stack.last() else {
                return Ok(None);
            };
            if cur.kind != FileKind::Dir {
                return Ok(None);
            }
            let cur = cur.clone();
            let Some(e) = self.read_dir(&cur)?.into_iter().find(|e| e.name == comp) else {
                return Ok(None);
            };
            stack.push(self.inode(e.nid)?);
        }
        Ok(stack.pop())
    }

    /// Visits every inode below the root, parents before children, with its path
    /// (no leading `/`; the root is ""). Fails on directory cycles or absurd depth.
    pub fn walk(&mut self, mut f: impl FnMut(&[u8], &Inode) -> Result<()>) -> Result<()> {
        let root = self.root()?;
        f(b"", &root)?;
        let mut seen: HashSet<u64> = HashSet::from([root.nid]);
        let mut stack: Vec<(Vec<u8>, Inode, usize)> = vec![(Vec::new(), root, 0)];
        while let Some((path, dir, depth)) = stack.pop() {
            if depth >= MAX_WALK_DEPTH {
                return Err(corrupt("directories nested too deeply"));
            }
            for e in self.read_dir(&dir)? {
                let ino = self.inode(e.nid)?;
                if e.kind.is_some_and(|k| k != ino.kind) {
                    return Err(corrupt(format!(
                        "nid {}: directory entry type disagrees with inode",
                        e.nid
                    )));
                }
                let mut p = path.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(&e.name);
                f(&p, &ino)?;
                if ino.kind == FileKind::Dir {
                    if !seen.insert(ino.nid) {
                        return Err(corrupt(format!("nid {}: directory reachable twice (cycle)", ino.nid)));
                    }
                    stack.push((p, ino, depth + 1));
                }
            }
        }
        Ok(())
    }
}

/// `Read` over one file of an image; see `Reader::open_file`.
#[derive(Debug)]
pub struct FileReader<'a, R> {
    img: &'a mut Reader<R>,
    ino: Inode,
    pos: u64,
}

impl<R: Read + Seek> Read for FileReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.img.read_at(&self.ino, self.pos, buf).map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}
