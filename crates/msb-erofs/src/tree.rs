//! The in-memory tree a layer is gathered into before its metadata is written.
//! It holds metadata and block addresses only; file contents are already on disk.

use std::collections::BTreeMap;

use crate::spool::FileData;

/// Index of a node in `Tree::nodes`.
pub type Ino = u32;

/// Index of the root directory.
pub const ROOT: Ino = 0;

/// Metadata shared by every kind of node.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Permission bits incl. setuid/setgid/sticky (no type bits).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Extended attributes, sorted by name, names already checked storable.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a node is.
#[derive(Debug)]
pub enum Kind {
    /// A directory: children by name, and whether it hides lower layers.
    Dir {
        /// Entries other than `.` and `..`.
        children: BTreeMap<Box<[u8]>, Ino>,
        /// Set by an OCI `.wh..wh..opq` marker.
        opaque: bool,
    },
    /// A regular file whose data has been spooled.
    File(FileData),
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A character device (Linux `new_encode_dev` form).
    Chr(u32),
    /// A block device (Linux `new_encode_dev` form).
    Blk(u32),
    /// A named pipe.
    Fifo,
}

/// One inode of the tree.
#[derive(Debug)]
pub struct Node {
    /// Owner, mode, times, xattrs.
    pub meta: Meta,
    /// Type and type-specific content.
    pub kind: Kind,
}

impl Node {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
}

/// Why an insertion failed; the caller turns it into an `Error` naming the entry.
#[derive(Debug, PartialEq, Eq)]
pub enum TreeError {
    /// The ancestor with this many leading components is not a directory.
    ParentNotDir(usize),
}

/// All nodes of the layer; `nodes[ROOT]` is the root directory.
#[derive(Debug)]
pub struct Tree {
    /// Every node ever created, reachable or not (replaced nodes stay, unreferenced).
    pub nodes: Vec<Node>,
}

impl Tree {
    /// A tree with only a root directory carrying `root_meta`.
    pub fn new(root_meta: Meta) -> Tree {
        Tree {
            nodes: vec![Node {
                meta: root_meta,
                kind: Kind::Dir {
                    children: BTreeMap::new(),
                    opaque: false,
                },
            }],
        }
    }

    fn children(&self, dir: Ino) -> Option<&BTreeMap<Box<[u8]>, Ino>> {
        match &self.nodes.get(dir as usize)?.kind {
            Kind::Dir { children, .. } => Some(children),
            _ => None,
        }
    }

    fn push(&mut self, node: Node) -> Ino {
        // More than 4 billion nodes cannot come from a tar that fits anywhere; saturating
        // keeps this total rather than panicking.
        let ino = Ino::try_from(self.nodes.len()).unwrap_or(Ino::MAX);
        self.nodes.push(node);
        ino
    }

    /// Finds the node at `comps` without creating anything.
    pub fn lookup(&self, comps: &[&[u8]]) -> Option<Ino> {
        let mut cur = ROOT;
        for c in comps {
            cur = *self.children(cur)?.get(*c)?;
        }
        Some(cur)
    }

    /// Walks to the directory at `comps`, creating missing directories with
    /// `implied` metadata (tar lets an entry appear before, or without, its parent).
    pub fn ensure_dir(&mut self, comps: &[&[u8]], implied: &Meta) -> Result<Ino, TreeError> {
        let mut cur = ROOT;
        for (i, c) in comps.iter().enumerate() {
            let next = match self.children(cur) {
                Some(ch) => ch.get(*c).copied(),
                None => return Err(TreeError::ParentNotDir(i)),
            };
            cur = match next {
                Some(n) if self.nodes.get(n as usize).is_some_and(Node::is_dir) => n,
                Some(_) => return Err(TreeError::ParentNotDir(i + 1)),
                None => {
                    let n = self.push(Node {
                        meta: implied.clone(),
                        kind: Kind::Dir {
                            children: BTreeMap::new(),
                            opaque: false,
                        },
                    });
                    self.set_child(cur, c, n);
                    n
                }
            };
        }
        Ok(cur)
    }

    fn set_child(&mut self, dir: Ino, name: &[u8], ino: Ino) -> Option<Ino> {
        match self.nodes.get_mut(dir as usize).map(|n| &mut n.kind) {
            Some(Kind::Dir { children, .. }) => children.insert(name.into(), ino),
            _ => None,
        }
    }

    /// Puts `node` at `name` in directory `dir`, with tar's "later entry wins" rule:
    /// a directory over a directory only refreshes metadata (children stay); anything
    /// else replaces what was there (a replaced subtree becomes unreachable).
    pub fn insert(&mut self, dir: Ino, name: &[u8], node: Node) -> Ino {
        let existing = self.children(dir).and_then(|c| c.get(name).copied());
        if let Some(old) = existing {
            if node.is_dir() {
                if let Some(o) = self.nodes.get_mut(old as usize) {
                    if o.is_dir() {
                        o.meta = node.meta;
                        return old;
                    }
                }
            }
        }
        let ino = self.push(node);
        self.set_child(dir, name, ino);
        ino
    }

    /// Adds another name for an existing inode (a hard link).
    pub fn link(&mut self, dir: Ino, name: &[u8], target: Ino) {
        self.set_child(dir, name, target);
    }

    /// Replaces the root's metadata (an explicit `./` entry in the tar).
    pub fn set_meta(&mut self, ino: Ino, meta: Meta) {
        if let Some(n) = self.nodes.get_mut(ino as usize) {
            n.meta = meta;
        }
    }

    /// Marks a directory opaque (OCI `.wh..wh..opq`).
    pub fn set_opaque(&mut self, dir: Ino) {
        if let Some(Kind::Dir { opaque, .. }) = self.nodes.get_mut(dir as usize).map(|n| &mut n.kind) {
            *opaque = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Node {
        Node {
            meta: Meta::default(),
            kind: Kind::Dir {
                children: BTreeMap::new(),
                opaque: false,
            },
        }
    }

    #[test]
    fn dir_over_dir_keeps_children() {
        let mut t = Tree::new(Meta::default());
        let m = Meta {
            perm: 0o755,
            ..Default::default()
        };
        let a = t.ensure_dir(&[b"a"], &m).unwrap_or(ROOT);
        t.insert(
            a,
            b"f",
            Node {
                meta: Meta::default(),
                kind: Kind::Fifo,
            },
        );
        let mut d = dir();
        d.meta.perm = 0o700;
        let a2 = t.insert(ROOT, b"a", d);
        assert_eq!(a, a2);
        assert!(t.lookup(&[b"a", b"f"]).is_some());
        assert_eq!(t.nodes[a as usize].meta.perm, 0o700);
        // A file replaces the whole directory.
        t.insert(
            ROOT,
            b"a",
            Node {
                meta: Meta::default(),
                kind: Kind::Fifo,
            },
        );
        assert!(t.lookup(&[b"a", b"f"]).is_none());
        assert_eq!(t.ensure_dir(&[b"a", b"x"], &m), Err(TreeError::ParentNotDir(1)));
    }
}
