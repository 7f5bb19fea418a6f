//! Layer stacks resolved by overlayfs' lookup rules, for any kind of layer.

use crate::lower::{without_overlay_xattrs, Entry, Kind, Lower};
use crate::PatchError;
use msb_ext4::{Metadata, Xattrs, OPAQUE_XATTR};

/// What one layer knows about one of its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry<H> {
    /// Handle to look up children or read data with.
    pub handle: H,
    /// Type.
    pub kind: Kind,
    /// Attributes.
    pub meta: Metadata,
    /// All xattrs, overlayfs' included.
    pub xattrs: Xattrs,
    /// Device number, for devices.
    pub rdev: (u32, u32),
}

impl<H> LayerEntry<H> {
    fn is_whiteout(&self) -> bool {
        self.kind == Kind::CharDevice && self.rdev == (0, 0)
    }

    fn is_opaque(&self) -> bool {
        self.kind == Kind::Dir && self.xattrs.iter().any(|(k, v)| k == OPAQUE_XATTR && v == b"y")
    }
}

/// One read-only layer, as stored (whiteouts and opaque markers are not interpreted).
pub trait Layer {
    /// Handle of an entry.
    type Handle: Clone;
    /// The layer's root directory.
    fn root(&mut self) -> Result<LayerEntry<Self::Handle>, PatchError>;
    /// The child `name` of directory `dir`.
    fn child(&mut self, dir: &Self::Handle, name: &[u8]) -> Result<Option<LayerEntry<Self::Handle>>, PatchError>;
    /// The contents of a regular file, or the target of a symlink.
    fn read(&mut self, file: &Self::Handle) -> Result<Vec<u8>, PatchError>;
}

/// An entry found in a stack, with the index of its layer.
type Found<H> = (usize, LayerEntry<H>);

/// Layers stacked bottom first, looked up the way overlayfs does.
#[derive(Debug)]
pub struct Stack<L> {
    layers: Vec<L>,
}

impl<L: Layer> Stack<L> {
    /// A stack of `layers`, bottom first.
    pub fn new(layers: Vec<L>) -> Self {
        Stack { layers }
    }

    /// The topmost visible entry at `path` and the layer it is in.
    fn resolve(&mut self, path: &[&[u8]]) -> Result<Option<Found<L::Handle>>, PatchError> {
        // Directories at the current prefix, topmost layer first: only they can hold the
        // next component.
        let mut dirs: Vec<Found<L::Handle>> = Vec::new();
        for i in (0..self.layers.len()).rev() {
            let root = self.layers[i].root()?;
            let opaque = root.is_opaque();
            dirs.push((i, root));
            if opaque {
                break;
            }
        }
        for (depth, name) in path.iter().enumerate() {
            let mut next = Vec::new();
            for (i, dir) in &dirs {
                let Some(found) = self.layers[*i].child(&dir.handle, name)? else {
                    continue;
                };
                if found.is_whiteout() {
                    break;
                }
                if found.kind != Kind::Dir {
                    // A non-directory is visible only if nothing above made this a
                    // directory; either way nothing below it shows through.
                    if next.is_empty() {
                        next.push((*i, found));
                    }
                    break;
                }
                let opaque = found.is_opaque();
                next.push((*i, found));
                if opaque {
                    break;
                }
            }
            let last = depth + 1 == path.len();
            match next.first() {
                None => return Ok(None),
                // Nothing can be below a non-directory.
                Some((_, e)) if e.kind != Kind::Dir && !last => return Ok(None),
                Some(_) => dirs = next,
            }
        }
        Ok(dirs.into_iter().next())
    }
}

impl<L: Layer> Stack<L> {
    /// What the entry of `kind` at `path` holds (contents, or a link's target).
    fn read_kind(&mut self, path: &[&[u8]], kind: Kind) -> Result<Vec<u8>, PatchError> {
        match self.resolve(path)? {
            Some((i, e)) if e.kind == kind => self.layers[i].read(&e.handle),
            _ => Err(PatchError::AppendMissing {
                path: crate::display(path),
            }),
        }
    }
}

impl<L: Layer> Lower for Stack<L> {
    fn entry(&mut self, path: &[&[u8]]) -> Result<Option<Entry>, PatchError> {
        Ok(self.resolve(path)?.map(|(_, e)| Entry {
            kind: e.kind,
            meta: e.meta,
            xattrs: without_overlay_xattrs(&e.xattrs),
        }))
    }

    fn read_file(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError> {
        self.read_kind(path, Kind::File)
    }

    fn read_link(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError> {
        self.read_kind(path, Kind::Symlink)
    }
}
