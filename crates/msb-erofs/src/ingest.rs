//! Reading the tar stream once: each entry's data is spooled to the image at once,
//! its metadata goes into the `Tree`.

use std::io::{self, BufReader, Read, Seek, Write};

use crate::error::{show, Error, Result};
use crate::layout::{encode_dev, BLKSZ, EXTENDED_SIZE};
use crate::path::normalize;
use crate::sparse::{self, MapSource, Sparse};
use crate::spool::{DataOut, FileData, FileSpool, Piece};
use crate::tarball::{kind, Head, TarReader};
use crate::tree::{Ino, Kind, Meta, Node, Tree, TreeError, ROOT};
use crate::{xattr, WriteOptions, WriteStats};

/// Largest apparent file size accepted (chunk maps stay within `MAX_CHUNKS` up to here).
const MAX_FILE_SIZE: u64 = 1 << 56;
/// Longest symlink target (Linux `PATH_MAX` less the NUL).
const MAX_LINK: usize = 4095;

/// State while the tar is being read.
#[derive(Debug)]
pub struct Ingest<W: Write + Seek> {
    /// The tree gathered so far.
    pub tree: Tree,
    /// The image, with file data written up to here.
    pub out: DataOut<W>,
    /// Counters for the caller.
    pub stats: WriteStats,
    implied: Meta,
    inline_left: usize,
    buf: Vec<u8>,
    opts: WriteOptions,
}

/// Reads the whole tar into an `Ingest` (data written, metadata in memory).
pub fn read_tar<R: Read, W: Write + Seek>(tar: R, out: W, opts: &WriteOptions) -> Result<Ingest<W>> {
    let implied = Meta {
        perm: 0o755,
        mtime: opts.implied_mtime,
        ..Meta::default()
    };
    let mut st = Ingest {
        tree: Tree::new(implied.clone()),
        out: DataOut::new(out)?,
        stats: WriteStats::default(),
        implied,
        inline_left: opts.inline_budget,
        buf: vec![0u8; 256 * 1024],
        opts: opts.clone(),
    };
    let mut tr = TarReader::new(BufReader::with_capacity(256 * 1024, tar));
    let mut last = String::new();
    loop {
        let head = match tr.next() {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(source) => return Err(Error::Tar { after: last, source }),
        };
        last = st.add(&mut tr, head)?;
    }
    // Drain what follows the end-of-archive marker so a caller hashing the stream
    // (for the layer's diff_id) sees every byte.
    tr.drain().map_err(|source| Error::Tar { after: last, source })?;
    st.stats.bytes_in = tr.count;
    Ok(st)
}

fn invalid(path: &str, what: impl Into<String>) -> Error {
    Error::InvalidEntry {
        path: path.to_owned(),
        what: what.into(),
    }
}

impl<W: Write + Seek> Ingest<W> {
    /// Takes one entry into the tree; returns its path for error context.
    fn add<R: Read>(&mut self, tr: &mut TarReader<R>, h: Head) -> Result<String> {
        self.stats.entries += 1;
        let shown = show(&h.path);
        let sparse = match &h.gnu_sparse {
            Some((real, map)) => Some(Sparse {
                real_size: *real,
                name: None,
                map: MapSource::Pax(map.clone()),
            }),
            None => sparse::from_pax(&h.pax).map_err(|e| invalid(&shown, e))?,
        };
        let raw_path = match sparse.as_ref().and_then(|s| s.name.clone()) {
            Some(n) => n,
            None => h.path.clone(),
        };
        let shown = show(&raw_path);
        let comps = normalize(&raw_path).map_err(|reason| Error::BadPath {
            path: shown.clone(),
            reason,
        })?;
        let meta = self.meta(&h, &shown)?;
        let is_dir = h.kind == kind::DIR || (matches!(h.kind, kind::REG | kind::AREG) && raw_path.ends_with(b"/"));

        let Some((name, dir_comps)) = comps.split_last() else {
            // The layer root itself ("./" in most layers).
            if is_dir {
                self.tree.set_meta(ROOT, meta);
                return Ok(shown);
            }
            return Err(Error::BadPath {
                path: shown,
                reason: "a non-directory entry names the layer root",
            });
        };
        let parent = self
            .tree
            .ensure_dir(dir_comps, &self.implied)
            .map_err(|TreeError::ParentNotDir(n)| Error::ParentNotDir {
                path: shown.clone(),
                parent: show(&dir_comps[..n].join(&b'/')),
            })?;

        if self.opts.oci_whiteouts {
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                self.whiteout(parent, hidden, meta, &shown)?;
                return Ok(shown);
            }
        }

        let node_kind = match h.kind {
            _ if is_dir => {
                self.stats.dirs += 1;
                Kind::Dir {
                    children: Default::default(),
                    opaque: false,
                }
            }
            kind::REG | kind::AREG | kind::CONT | kind::GNU_SPARSE => {
                let data = self.spool(tr, h.size, sparse, &meta, &shown)?;
                self.stats.files += 1;
                self.stats.file_bytes += data.size();
                Kind::File(data)
            }
            kind::LINK => {
                let tshown = show(&h.link);
                let tcomps = normalize(&h.link).map_err(|reason| Error::BadPath {
                    path: shown.clone(),
                    reason,
                })?;
                let ino = self.tree.lookup(&tcomps).ok_or_else(|| Error::LinkTargetMissing {
                    path: shown.clone(),
                    target: tshown.clone(),
                })?;
                if self.tree.nodes.get(ino as usize).is_none_or(Node::is_dir) {
                    return Err(Error::LinkTargetIsDir {
                        path: shown,
                        target: tshown,
                    });
                }
                self.tree.link(parent, name, ino);
                self.stats.hardlinks += 1;
                return Ok(shown);
            }
            kind::SYMLINK => {
                if h.link.is_empty() || h.link.len() > MAX_LINK || h.link.contains(&0) {
                    return Err(invalid(
                        &shown,
                        "symlink target is empty, longer than 4095 bytes, or has a NUL",
                    ));
                }
                self.stats.symlinks += 1;
                Kind::Symlink(h.link)
            }
            kind::CHR | kind::BLK => {
                let (major, minor) = (h.dev_major, h.dev_minor);
                if major >= 1 << 12 || minor >= 1 << 20 {
                    return Err(invalid(&shown, format!("device number {major}:{minor} out of range")));
                }
                self.stats.devices += 1;
                let dev = encode_dev(major as u32, minor as u32);
                if h.kind == kind::CHR {
                    Kind::Chr(dev)
                } else {
                    Kind::Blk(dev)
                }
            }
            kind::FIFO => Kind::Fifo,
            other => {
                return Err(Error::UnsupportedEntry {
                    path: shown,
                    kind: char::from(other),
                })
            }
        };
        self.tree.insert(parent, name, Node { meta, kind: node_kind });
        Ok(shown)
    }

    fn whiteout(&mut self, parent: Ino, hidden: &[u8], meta: Meta, shown: &str) -> Result<()> {
        if hidden == b".wh..opq" {
            self.tree.set_opaque(parent);
            self.stats.opaque_dirs += 1;
            return Ok(());
        }
        if hidden.starts_with(b".wh.") {
            // Other `.wh..wh.*` names are aufs bookkeeping, not content.
            self.stats.skipped += 1;
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(Error::BadPath {
                path: shown.to_owned(),
                reason: "whiteout names no file",
            });
        }
        // overlayfs whiteouts are 0:0 character devices; permission bits are irrelevant.
        let meta = Meta {
            perm: 0,
            xattrs: Vec::new(),
            ..meta
        };
        self.tree.insert(
            parent,
            hidden,
            Node {
                meta,
                kind: Kind::Chr(0),
            },
        );
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Owner, mode, times and xattrs of an entry.
    fn meta(&mut self, h: &Head, shown: &str) -> Result<Meta> {
        if h.bad_pax_mtime {
            return Err(invalid(shown, "bad PAX mtime"));
        }
        let uid = u32::try_from(h.uid).map_err(|_| invalid(shown, format!("uid {} does not fit 32 bits", h.uid)))?;
        let gid = u32::try_from(h.gid).map_err(|_| invalid(shown, format!("gid {} does not fit 32 bits", h.gid)))?;
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (k, v) in &h.pax {
            let Some(name) = k.strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            if name.starts_with(b"trusted.overlay.") && !self.opts.keep_overlay_xattrs {
                // overlayfs metadata from the build host would be obeyed by the
                // guest's overlayfs; OCI expresses those semantics with .wh. files.
                self.stats.dropped_xattrs += 1;
                continue;
            }
            if xattr::split_name(name).is_none() {
                self.stats.dropped_xattrs += 1;
                continue;
            }
            if v.len() > xattr::MAX_VALUE {
                return Err(invalid(
                    shown,
                    format!("xattr {} value is over 65535 bytes", show(name)),
                ));
            }
            xattrs.retain(|(n, _)| n != name);
            xattrs.push((name.to_vec(), v.clone()));
        }
        xattrs.sort();
        // Leave room for trusted.overlay.opaque, which may be added later.
        if xattr::icount_for(xattr::ibody_size(&xattrs) + 32).is_none() {
            return Err(invalid(shown, "xattrs too large for one inode"));
        }
        Ok(Meta {
            perm: (h.mode & 0o7777) as u16,
            uid,
            gid,
            mtime: h.mtime,
            mtime_nsec: h.mtime_nsec,
            xattrs,
        })
    }

    /// Copies a regular file's content into the image.
    fn spool<R: Read>(
        &mut self,
        entry: &mut TarReader<R>,
        stored: u64,
        sparse: Option<Sparse>,
        meta: &Meta,
        shown: &str,
    ) -> Result<FileData> {
        let size = sparse.as_ref().map_or(stored, |s| s.real_size);
        if size > MAX_FILE_SIZE {
            return Err(invalid(shown, format!("size {size} is beyond what this writer stores")));
        }
        let tail = (size % BLKSZ) as usize;
        let fixed = EXTENDED_SIZE as usize + xattr::ibody_size(&meta.xattrs) + 32;
        let may_inline = tail > 0 && fixed + tail <= BLKSZ as usize && self.inline_left >= tail;
        let mut spool = FileSpool::new(size, may_inline, self.opts.detect_holes);
        let data_err = |source: io::Error| Error::EntryData {
            path: shown.to_owned(),
            source,
        };
        match sparse.map(|s| s.map) {
            None => self.copy(entry, &mut spool, stored, shown)?,
            Some(map) => {
                let (map, used) = match map {
                    MapSource::Pax(m) => (m, 0),
                    MapSource::InData => sparse::read_data_map(entry, stored).map_err(data_err)?,
                };
                sparse::validate(&map, size, stored - used).map_err(|e| invalid(shown, e))?;
                let mut cur = 0;
                for (off, len) in map {
                    spool.push(&mut self.out, Piece::Zeros(off - cur))?;
                    self.copy(entry, &mut spool, len, shown)?;
                    cur = off + len;
                }
                spool.push(&mut self.out, Piece::Zeros(size - cur))?;
            }
        }
        let data = spool.finish().map_err(|missing| {
            data_err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{missing} bytes missing"),
            ))
        })?;
        if let FileData::Inline { tail, .. } = &data {
            self.inline_left -= tail.len();
        }
        Ok(data)
    }

    /// Moves `len` bytes from the entry into the spool; short input is an error.
    fn copy<R: Read>(&mut self, r: &mut R, spool: &mut FileSpool, mut len: u64, shown: &str) -> Result<()> {
        let data_err = |source: io::Error| Error::EntryData {
            path: shown.to_owned(),
            source,
        };
        while len > 0 {
            let want = len.min(self.buf.len() as u64) as usize;
            let n = match r.read(&mut self.buf[..want]) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "tar stream ends inside the file data");
                    return Err(data_err(e));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(data_err(e)),
            };
            spool.push(&mut self.out, Piece::Data(&self.buf[..n]))?;
            len -= n as u64;
        }
        Ok(())
    }
}
