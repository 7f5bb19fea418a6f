//! The in-memory tree an image is written from: directories, files, symlinks, devices,
//! with owners, modes, times and xattrs. Overlayfs whiteouts are character devices 0:0;
//! opaque directories carry `trusted.overlay.opaque=y`.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Name of the xattr that makes an overlayfs upper directory hide the lower ones.
pub const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// Owner, permission bits and modification time of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky (`0o7777` at most).
    pub mode: u16,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time, seconds since the epoch (also used for ctime and atime).
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
}

impl Metadata {
    /// Root-owned metadata with `mode` and the given time.
    pub fn root(mode: u16, mtime: i64) -> Metadata {
        Metadata {
            mode,
            uid: 0,
            gid: 0,
            mtime,
            mtime_nsec: 0,
        }
    }
}

/// Extended attributes as (full name, value), e.g. `(b"user.k", b"v")`.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Held in memory.
    Bytes(Vec<u8>),
    /// Read from a host file when the image is written; it must still hold `len` bytes.
    Host {
        /// The host file.
        path: PathBuf,
        /// Its size when the tree was built.
        len: u64,
    },
}

impl Data {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Data::Bytes(b) => b.len() as u64,
            Data::Host { len, .. } => *len,
        }
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A directory: its own attributes and its entries by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dir {
    /// Attributes of the directory itself.
    pub meta: Metadata,
    /// Extended attributes of the directory.
    pub xattrs: Xattrs,
    /// Entries by name (no `.` or `..`; names are 1-255 bytes without `/` or NUL).
    pub entries: BTreeMap<Vec<u8>, Node>,
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata::root(0o755, 0)
    }
}

/// A regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Attributes.
    pub meta: Metadata,
    /// Extended attributes.
    pub xattrs: Xattrs,
    /// Contents.
    pub data: Data,
    /// Hard-link group: every file of the tree with the same `Some(id)` is one inode
    /// (attributes and data are taken from the first one met). `None`: its own inode.
    pub link: Option<u64>,
}

/// What kind of special file a [`Node::Special`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKind {
    /// Character device (`0:0` is an overlayfs whiteout).
    Char {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// Block device.
    Block {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir(Dir),
    /// A regular file.
    File(File),
    /// A symbolic link to `target` (1 to 4095 bytes, stored verbatim).
    Symlink {
        /// Attributes (the mode of a symlink is conventionally 0777).
        meta: Metadata,
        /// Extended attributes.
        xattrs: Xattrs,
        /// The link's target.
        target: Vec<u8>,
    },
    /// A device, FIFO or socket.
    Special {
        /// Attributes.
        meta: Metadata,
        /// Extended attributes.
        xattrs: Xattrs,
        /// Which kind.
        kind: SpecialKind,
    },
}

impl Node {
    /// An overlayfs whiteout: a character device 0:0, hiding the same name in lower layers.
    pub fn whiteout() -> Node {
        Node::Special {
            meta: Metadata::root(0, 0),
            xattrs: Vec::new(),
            kind: SpecialKind::Char { major: 0, minor: 0 },
        }
    }

    /// Whether this node is an overlayfs whiteout.
    pub fn is_whiteout(&self) -> bool {
        matches!(
            self,
            Node::Special {
                kind: SpecialKind::Char { major: 0, minor: 0 },
                ..
            }
        )
    }

    /// The node's attributes.
    pub fn meta(&self) -> &Metadata {
        match self {
            Node::Dir(d) => &d.meta,
            Node::File(f) => &f.meta,
            Node::Symlink { meta, .. } | Node::Special { meta, .. } => meta,
        }
    }

    /// The node's extended attributes.
    pub fn xattrs(&self) -> &Xattrs {
        match self {
            Node::Dir(d) => &d.xattrs,
            Node::File(f) => &f.xattrs,
            Node::Symlink { xattrs, .. } | Node::Special { xattrs, .. } => xattrs,
        }
    }
}

impl Dir {
    /// An empty directory with these attributes.
    pub fn new(meta: Metadata) -> Dir {
        Dir {
            meta,
            xattrs: Vec::new(),
            entries: BTreeMap::new(),
        }
    }

    /// Whether overlayfs treats this directory as opaque.
    pub fn is_opaque(&self) -> bool {
        self.xattrs.iter().any(|(k, v)| k == OPAQUE_XATTR && v == b"y")
    }

    /// Marks the directory opaque (or not) for overlayfs.
    pub fn set_opaque(&mut self, opaque: bool) {
        self.xattrs.retain(|(k, _)| k != OPAQUE_XATTR);
        if opaque {
            self.xattrs.push((OPAQUE_XATTR.to_vec(), b"y".to_vec()));
        }
    }

    /// The node at `path` (components below this directory), if any.
    pub fn get(&self, path: &[&[u8]]) -> Option<&Node> {
        let (last, parents) = path.split_last()?;
        let mut dir = self;
        for comp in parents {
            match dir.entries.get(*comp)? {
                Node::Dir(d) => dir = d,
                _ => return None,
            }
        }
        dir.entries.get(*last)
    }

    /// The node at `path`, mutably.
    pub fn get_mut(&mut self, path: &[&[u8]]) -> Option<&mut Node> {
        let (last, parents) = path.split_last()?;
        let mut dir = self;
        for comp in parents {
            match dir.entries.get_mut(*comp)? {
                Node::Dir(d) => dir = d,
                _ => return None,
            }
        }
        dir.entries.get_mut(*last)
    }

    /// The directory at `path` (this one for an empty path), mutably.
    pub fn dir_mut(&mut self, path: &[&[u8]]) -> Option<&mut Dir> {
        let mut dir = self;
        for comp in path {
            match dir.entries.get_mut(*comp)? {
                Node::Dir(d) => dir = d,
                _ => return None,
            }
        }
        Some(dir)
    }

    /// Puts `node` at `path`, replacing whatever was there; the parents must exist as
    /// directories. Returns the node replaced, or `Err(node)` when a parent is missing.
    pub fn insert(&mut self, path: &[&[u8]], node: Node) -> Result<Option<Node>, Node> {
        let Some((last, parents)) = path.split_last() else {
            return Err(node);
        };
        match self.dir_mut(parents) {
            Some(dir) => Ok(dir.entries.insert(last.to_vec(), node)),
            None => Err(node),
        }
    }

    /// Takes the node at `path` (with everything below it) out of the tree.
    pub fn remove(&mut self, path: &[&[u8]]) -> Option<Node> {
        let (last, parents) = path.split_last()?;
        self.dir_mut(parents)?.entries.remove(*last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Node {
        Node::File(File {
            meta: Metadata::root(0o644, 0),
            xattrs: Vec::new(),
            data: Data::Bytes(text.as_bytes().to_vec()),
            link: None,
        })
    }

    #[test]
    fn insert_get_remove_follow_directories_only() {
        let mut root = Dir::new(Metadata::default());
        assert!(root.insert(&[b"etc", b"x"], file("x")).is_err(), "parent missing");
        root.insert(&[b"etc"], Node::Dir(Dir::new(Metadata::default())))
            .unwrap();
        root.insert(&[b"etc", b"x"], file("x")).unwrap();
        assert!(matches!(root.get(&[b"etc", b"x"]), Some(Node::File(_))));
        assert!(root.get(&[b"etc", b"x", b"y"]).is_none(), "a file has no children");
        assert!(root.insert(&[b"etc", b"x", b"y"], file("y")).is_err());
        assert!(root.remove(&[b"etc"]).is_some());
        assert!(root.get(&[b"etc", b"x"]).is_none());
    }

    #[test]
    fn whiteouts_and_opaque_dirs_are_recognised() {
        assert!(Node::whiteout().is_whiteout());
        assert!(!file("x").is_whiteout());
        let mut d = Dir::new(Metadata::default());
        assert!(!d.is_opaque());
        d.set_opaque(true);
        d.set_opaque(true);
        assert!(d.is_opaque());
        assert_eq!(d.xattrs.len(), 1);
        d.set_opaque(false);
        assert!(!d.is_opaque());
    }
}
