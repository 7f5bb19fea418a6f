//! First pass: walk the tree, check everything that can be checked without writing,
//! number the inodes and gather each directory's entries. Inode numbers go to a
//! directory's entries together, directories in pre-order, so a directory's blocks and
//! its children's end up close together.

use std::collections::HashMap;

use crate::dir::{valid_name, FT_BLK, FT_CHR, FT_DIR, FT_FIFO, FT_REG, FT_SOCK, FT_SYMLINK};
use crate::inode::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK};
use crate::layout::{LOST_FOUND_INO, ROOT_INO};
use crate::xattr::{self, Encoded, XattrError};
use crate::{Data, Dir, Error, File, Metadata, Node, SpecialKind};

const LOST_FOUND: &[u8] = b"lost+found";
/// `EXT4_LINK_MAX`.
const LINK_MAX: u32 = 65000;
/// Largest file with 32-bit logical block numbers.
const FILE_MAX: u64 = (1 << 44) - 4096;

/// One entry of a directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirEntry<'a> {
    /// The name.
    pub name: &'a [u8],
    /// The inode it points at.
    pub ino: u32,
    /// `EXT4_FT_*` of that inode.
    pub ft: u8,
}

/// What an inode holds.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// A directory with its entries (besides `.` and `..`) and the blocks it has at least.
    Dir {
        /// Entries in order.
        entries: Vec<DirEntry<'a>>,
        /// Blocks to preallocate even if the entries need fewer.
        min_blocks: usize,
    },
    /// A regular file.
    File(&'a Data),
    /// A symbolic link.
    Symlink(&'a [u8]),
    /// A device, FIFO or socket.
    Special(SpecialKind),
}

/// One inode to write.
#[derive(Debug)]
pub(crate) struct Planned<'a> {
    /// Its number.
    pub ino: u32,
    /// The directory it was first met in (itself for the root).
    pub parent: u32,
    /// Its name there.
    pub name: &'a [u8],
    /// Full `i_mode`.
    pub mode: u16,
    /// Owner, time.
    pub meta: Metadata,
    /// Link count.
    pub links: u32,
    /// Its extended attributes, laid out.
    pub xattrs: Encoded,
    /// Its contents.
    pub body: Body<'a>,
}

/// All inodes of the tree: the root (2), `lost+found` (11), then 12, 13, ... in order.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// The inodes in number order.
    pub inodes: Vec<Planned<'a>>,
}

fn index(ino: u32) -> usize {
    if ino == ROOT_INO {
        0
    } else {
        (ino - 10) as usize
    }
}

/// A name for messages: UTF-8 kept, control characters and other bytes escaped.
pub(crate) fn display_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) => s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Err(_) => name.escape_ascii().to_string(),
    }
}

impl<'a> Plan<'a> {
    /// Largest inode number used.
    pub(crate) fn max_ino(&self) -> u32 {
        self.inodes.last().map_or(LOST_FOUND_INO, |p| p.ino.max(LOST_FOUND_INO))
    }

    fn get_mut(&mut self, ino: u32) -> &mut Planned<'a> {
        &mut self.inodes[index(ino)]
    }

    /// The path of inode `ino` in the tree, for messages.
    pub(crate) fn path(&self, ino: u32) -> String {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != ROOT_INO {
            let p = &self.inodes[index(at)];
            parts.push(display_name(p.name));
            at = p.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn child_path(&self, dir: u32, name: &[u8]) -> String {
        let base = self.path(dir);
        let sep = if base.ends_with('/') { "" } else { "/" };
        format!("{base}{sep}{}", display_name(name))
    }
}

fn check_meta(meta: &Metadata, path: impl Fn() -> String) -> Result<(), Error> {
    if meta.mode & !0o7777 != 0 {
        return Err(Error::Mode {
            path: path(),
            mode: meta.mode,
        });
    }
    if meta.mtime_nsec >= 1_000_000_000 {
        return Err(Error::Nanoseconds {
            path: path(),
            nsec: meta.mtime_nsec,
        });
    }
    Ok(())
}

fn encode_xattrs(xattrs: &[(Vec<u8>, Vec<u8>)], path: impl Fn() -> String) -> Result<Encoded, Error> {
    xattr::encode(xattrs).map_err(|(name, e)| {
        let name = display_name(&name);
        match e {
            XattrError::Name(reason) | XattrError::Value(reason) => Error::Xattr {
                path: path(),
                name,
                reason,
            },
            XattrError::Duplicate => Error::Xattr {
                path: path(),
                name,
                reason: "the same name is given twice",
            },
            XattrError::TooLarge(needed) => Error::XattrsTooLarge { path: path(), needed },
        }
    })
}

/// The inode for `node` (not a directory's entries, which come when it is visited).
fn planned<'a>(
    node: &'a Node,
    ino: u32,
    parent: u32,
    name: &'a [u8],
    path: impl Fn() -> String,
) -> Result<Planned<'a>, Error> {
    let meta = *node.meta();
    check_meta(&meta, &path)?;
    let (kind, body) = match node {
        Node::Dir(_) => (
            S_IFDIR,
            Body::Dir {
                entries: Vec::new(),
                min_blocks: 1,
            },
        ),
        Node::File(f) => {
            if f.data.len() > FILE_MAX {
                return Err(Error::FileTooLarge {
                    path: path(),
                    len: f.data.len(),
                });
            }
            (S_IFREG, Body::File(&f.data))
        }
        Node::Symlink { target, .. } => {
            if !(1..=4095).contains(&target.len()) || target.contains(&0) {
                return Err(Error::SymlinkTarget {
                    path: path(),
                    len: target.len(),
                });
            }
            (S_IFLNK, Body::Symlink(target))
        }
        Node::Special { kind, .. } => {
            let mode = match *kind {
                SpecialKind::Char { major, minor } | SpecialKind::Block { major, minor } => {
                    if major >= 1 << 12 || minor >= 1 << 20 {
                        return Err(Error::Device {
                            path: path(),
                            major,
                            minor,
                        });
                    }
                    if matches!(kind, SpecialKind::Char { .. }) {
                        S_IFCHR
                    } else {
                        S_IFBLK
                    }
                }
                SpecialKind::Fifo => S_IFIFO,
                SpecialKind::Socket => S_IFSOCK,
            };
            (mode, Body::Special(*kind))
        }
    };
    let xattrs = encode_xattrs(node.xattrs(), &path)?;
    Ok(Planned {
        ino,
        parent,
        name,
        mode: kind | meta.mode,
        meta,
        links: 1,
        xattrs,
        body,
    })
}

fn file_type(node: &Node) -> u8 {
    match node {
        Node::Dir(_) => FT_DIR,
        Node::File(_) => FT_REG,
        Node::Symlink { .. } => FT_SYMLINK,
        Node::Special { kind, .. } => match kind {
            SpecialKind::Char { .. } => FT_CHR,
            SpecialKind::Block { .. } => FT_BLK,
            SpecialKind::Fifo => FT_FIFO,
            SpecialKind::Socket => FT_SOCK,
        },
    }
}

/// The first file of each hard-link group in a depth-first walk in name order: the one
/// whose attributes and data the group's inode gets.
fn link_representatives(root: &Dir) -> HashMap<u64, &Node> {
    let mut reps = HashMap::new();
    let mut stack: Vec<&Node> = root.entries.values().rev().collect();
    while let Some(node) = stack.pop() {
        match node {
            Node::File(File { link: Some(id), .. }) => {
                reps.entry(*id).or_insert(node);
            }
            Node::Dir(d) => stack.extend(d.entries.values().rev()),
            _ => {}
        }
    }
    reps
}

/// Walks `root` into a plan. `now` dates a `lost+found` the tree does not have.
pub(crate) fn plan(root: &Dir, now: i64) -> Result<Plan<'_>, Error> {
    check_meta(&root.meta, || "/".to_string())?;
    let root_xattrs = encode_xattrs(&root.xattrs, || "/".to_string())?;
    let root_body = Body::Dir {
        entries: Vec::new(),
        min_blocks: 1,
    };
    let root_planned = Planned {
        ino: ROOT_INO,
        parent: ROOT_INO,
        name: b"",
        mode: S_IFDIR | root.meta.mode,
        meta: root.meta,
        links: 2,
        xattrs: root_xattrs,
        body: root_body,
    };
    let mut plan = Plan {
        inodes: vec![root_planned],
    };
    let tree_lf = match root.entries.get(LOST_FOUND) {
        None => None,
        Some(Node::Dir(d)) => Some(d),
        Some(_) => return Err(Error::LostFound),
    };
    let lf_meta = tree_lf.map_or(
        Metadata {
            mode: 0o700,
            uid: 0,
            gid: 0,
            mtime: now,
            mtime_nsec: 0,
        },
        |d| d.meta,
    );
    let lf_path = || "/lost+found".to_string();
    check_meta(&lf_meta, lf_path)?;
    let lf_xattrs = match tree_lf {
        Some(d) => encode_xattrs(&d.xattrs, lf_path)?,
        None => Encoded::default(),
    };
    plan.inodes.push(Planned {
        ino: LOST_FOUND_INO,
        parent: ROOT_INO,
        name: LOST_FOUND,
        mode: S_IFDIR | lf_meta.mode,
        meta: lf_meta,
        links: 2,
        xattrs: lf_xattrs,
        body: Body::Dir {
            entries: Vec::new(),
            min_blocks: 4,
        },
    });

    let mut next_ino = LOST_FOUND_INO + 1;
    let mut links: HashMap<u64, u32> = HashMap::new();
    let reps = link_representatives(root);
    let mut stack: Vec<(&Dir, u32)> = Vec::new();
    if let Some(d) = tree_lf {
        stack.push((d, LOST_FOUND_INO));
    }
    stack.push((root, ROOT_INO));
    while let Some((dir, dino)) = stack.pop() {
        let mut entries = Vec::with_capacity(dir.entries.len() + 1);
        let mut subdirs = Vec::new();
        if dino == ROOT_INO {
            entries.push(DirEntry {
                name: LOST_FOUND,
                ino: LOST_FOUND_INO,
                ft: FT_DIR,
            });
        }
        for (name, node) in &dir.entries {
            if dino == ROOT_INO && name.as_slice() == LOST_FOUND {
                continue;
            }
            if !valid_name(name) {
                return Err(Error::Name {
                    path: plan.child_path(dino, name),
                });
            }
            let existing = match node {
                Node::File(f) => f.link.and_then(|id| links.get(&id).copied()),
                _ => None,
            };
            let ino = match existing {
                Some(ino) => {
                    plan.get_mut(ino).links += 1;
                    ino
                }
                None => {
                    let ino = next_ino;
                    next_ino = next_ino.checked_add(1).ok_or(Error::NoInodes {
                        needed: u64::from(u32::MAX) + 1,
                        available: u64::from(u32::MAX),
                        size: 0,
                    })?;
                    let source = match node {
                        Node::File(File { link: Some(id), .. }) => reps.get(id).copied().unwrap_or(node),
                        _ => node,
                    };
                    let p = planned(source, ino, dino, name, || plan.child_path(dino, name))?;
                    plan.inodes.push(p);
                    if let Node::File(f) = node {
                        if let Some(id) = f.link {
                            links.insert(id, ino);
                        }
                    }
                    if let Node::Dir(d) = node {
                        subdirs.push((d, ino));
                    }
                    ino
                }
            };
            entries.push(DirEntry {
                name,
                ino,
                ft: file_type(node),
            });
        }
        let nsub = subdirs.len() as u32 + u32::from(dino == ROOT_INO);
        let me = plan.get_mut(dino);
        me.links = if 2 + nsub > LINK_MAX { 1 } else { 2 + nsub };
        if let Body::Dir { entries: e, .. } = &mut me.body {
            *e = entries;
        }
        stack.extend(subdirs.into_iter().rev());
    }
    if let Some(p) = plan.inodes.iter().find(|p| p.links > LINK_MAX) {
        return Err(Error::TooManyLinks {
            path: plan.path(p.ino),
            count: u64::from(p.links),
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(link: Option<u64>) -> Node {
        Node::File(File {
            meta: Metadata::root(0o644, 0),
            xattrs: Vec::new(),
            data: Data::Bytes(b"x".to_vec()),
            link,
        })
    }

    #[test]
    fn numbering_links_and_paths() {
        let mut root = Dir::new(Metadata::default());
        root.insert(&[b"a"], Node::Dir(Dir::new(Metadata::default()))).unwrap();
        root.insert(&[b"a", b"f"], file(Some(7))).unwrap();
        root.insert(&[b"b"], file(Some(7))).unwrap();
        root.insert(&[b"c"], Node::Dir(Dir::new(Metadata::default()))).unwrap();
        let plan = plan(&root, 0).unwrap();
        let inos: Vec<u32> = plan.inodes.iter().map(|p| p.ino).collect();
        // root, lost+found, then a=12 b=13 c=14, then a/f is b's inode.
        assert_eq!(inos, [2, 11, 12, 13, 14]);
        assert_eq!(plan.inodes[0].links, 2 + 3, "root: a, c and lost+found");
        assert_eq!(plan.inodes[3].links, 2, "b has two names");
        assert_eq!(plan.path(13), "/b");
        assert_eq!(plan.child_path(12, b"x\ny"), "/a/x\\ny");
    }

    #[test]
    fn bad_input_is_named() {
        let mut root = Dir::new(Metadata::default());
        root.insert(&[b"d"], Node::Dir(Dir::new(Metadata::default()))).unwrap();
        root.dir_mut(&[b"d"])
            .unwrap()
            .entries
            .insert(b"a/b".to_vec(), file(None));
        let err = plan(&root, 0).unwrap_err();
        assert_eq!(err.to_string().split(':').next(), Some("/d/a/b"));
        let mut root = Dir::new(Metadata::default());
        root.insert(&[b"lost+found"], file(None)).unwrap();
        assert!(matches!(plan(&root, 0), Err(Error::LostFound)));
        let mut root = Dir::new(Metadata::default());
        root.insert(
            &[b"s"],
            Node::Symlink {
                meta: Metadata::default(),
                xattrs: Vec::new(),
                target: vec![],
            },
        )
        .unwrap();
        assert!(matches!(plan(&root, 0), Err(Error::SymlinkTarget { .. })));
    }
}
