//! Image layers as EROFS files, read with `msb-erofs`.

use crate::lower::Kind;
use crate::stack::{Layer, LayerEntry, Stack};
use crate::PatchError;
use msb_erofs::{FileKind, Inode, Reader};
use msb_ext4::Metadata;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One EROFS layer file, with the directories already listed kept in memory (patches
/// tend to land in the same few directories).
#[derive(Debug)]
pub struct ErofsLayer {
    path: PathBuf,
    reader: Reader<File>,
    listings: HashMap<u64, HashMap<Vec<u8>, u64>>,
}

impl ErofsLayer {
    /// Opens and checks the layer at `path`.
    pub fn open(path: &Path) -> Result<Self, PatchError> {
        let reader = Reader::open(path).map_err(|source| PatchError::Layer {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ErofsLayer {
            path: path.to_path_buf(),
            reader,
            listings: HashMap::new(),
        })
    }

    fn fail(&self) -> impl Fn(msb_erofs::Error) -> PatchError + '_ {
        |source| PatchError::Layer {
            path: self.path.clone(),
            source,
        }
    }
}

/// The layers at `paths` (bottom first) as one stack.
pub fn open_stack(paths: &[PathBuf]) -> Result<Stack<ErofsLayer>, PatchError> {
    Ok(Stack::new(
        paths.iter().map(|p| ErofsLayer::open(p)).collect::<Result<_, _>>()?,
    ))
}

fn entry(ino: Inode) -> LayerEntry<Inode> {
    let kind = match ino.kind {
        FileKind::File => Kind::File,
        FileKind::Dir => Kind::Dir,
        FileKind::Symlink => Kind::Symlink,
        FileKind::CharDevice => Kind::CharDevice,
        FileKind::BlockDevice => Kind::BlockDevice,
        FileKind::Fifo => Kind::Fifo,
        FileKind::Socket => Kind::Socket,
    };
    LayerEntry {
        kind,
        meta: Metadata {
            mode: ino.perm(),
            uid: ino.uid,
            gid: ino.gid,
            mtime: ino.mtime,
            mtime_nsec: ino.mtime_nsec,
        },
        xattrs: ino.xattrs.clone(),
        rdev: ino.rdev,
        handle: ino,
    }
}

impl Layer for ErofsLayer {
    type Handle = Inode;

    fn root(&mut self) -> Result<LayerEntry<Inode>, PatchError> {
        let root = self.reader.root().map_err(self.fail())?;
        Ok(entry(root))
    }

    fn child(&mut self, dir: &Inode, name: &[u8]) -> Result<Option<LayerEntry<Inode>>, PatchError> {
        if !self.listings.contains_key(&dir.nid) {
            let listing = self.reader.read_dir(dir).map_err(self.fail())?;
            let names = listing.into_iter().map(|e| (e.name, e.nid)).collect();
            self.listings.insert(dir.nid, names);
        }
        let Some(&nid) = self.listings.get(&dir.nid).and_then(|l| l.get(name)) else {
            return Ok(None);
        };
        let ino = self.reader.inode(nid).map_err(self.fail())?;
        Ok(Some(entry(ino)))
    }

    fn read(&mut self, file: &Inode) -> Result<Vec<u8>, PatchError> {
        if file.kind == FileKind::Symlink {
            return self.reader.read_link(file).map_err(self.fail());
        }
        self.reader.read_file(file).map_err(self.fail())
    }
}
