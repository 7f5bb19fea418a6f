//! The root filesystem as the guest will see it, read before boot: an upper tree over a
//! lower (overlayfs' rules), and path resolution that follows symlinks, so settings that
//! name paths (the working directory, `/etc/passwd` for the user) are checked at create.

use crate::lower::{Entry, Kind, Lower};
use crate::{display, PatchError};
use msb_ext4::{Data, Dir, Node};

/// Most symlinks followed while resolving one path (the kernel's limit).
const MAX_LINKS: usize = 40;

/// What an upper tree shows at a path.
pub(crate) enum Visible<'d> {
    /// The upper's own node.
    Upper(&'d Node),
    /// The upper's root directory itself.
    Root,
    /// Nothing: a whiteout, or a non-directory on the way.
    Hidden,
    /// Whatever the lower has there.
    Lower,
}

/// What `upper` shows at `path`, by overlayfs' rules: whiteouts hide, opaque directories
/// stop the search, a non-directory ends it.
pub(crate) fn visible<'d>(upper: &'d Dir, path: &[&[u8]]) -> Visible<'d> {
    let mut dir = upper;
    let mut lower_visible = !dir.is_opaque();
    for (depth, name) in path.iter().enumerate() {
        let last = depth + 1 == path.len();
        match dir.entries.get(*name) {
            Some(node) if node.is_whiteout() => return Visible::Hidden,
            Some(Node::Dir(d)) if !last => {
                lower_visible &= !d.is_opaque();
                dir = d;
            }
            Some(node) if last => return Visible::Upper(node),
            Some(_) => return Visible::Hidden,
            None if lower_visible => return Visible::Lower,
            None => return Visible::Hidden,
        }
    }
    Visible::Root
}

/// The kind of an upper node.
pub(crate) fn kind_of(node: &Node) -> Kind {
    use msb_ext4::SpecialKind;
    match node {
        Node::Dir(_) => Kind::Dir,
        Node::File(_) => Kind::File,
        Node::Symlink { .. } => Kind::Symlink,
        Node::Special { kind, .. } => match kind {
            SpecialKind::Char { .. } => Kind::CharDevice,
            SpecialKind::Block { .. } => Kind::BlockDevice,
            SpecialKind::Fifo => Kind::Fifo,
            SpecialKind::Socket => Kind::Socket,
        },
    }
}

/// An upper tree over a lower, merged as overlayfs merges them.
#[allow(missing_debug_implementations)] // holds a `dyn Lower`, which need not be Debug
pub struct Merged<'a> {
    /// The upper tree (the patches).
    pub upper: &'a Dir,
    /// What lies below.
    pub lower: &'a mut dyn Lower,
}

impl Lower for Merged<'_> {
    fn entry(&mut self, path: &[&[u8]]) -> Result<Option<Entry>, PatchError> {
        let node = match visible(self.upper, path) {
            Visible::Hidden => return Ok(None),
            Visible::Lower => return self.lower.entry(path),
            Visible::Root => {
                return Ok(Some(Entry {
                    kind: Kind::Dir,
                    meta: self.upper.meta,
                    xattrs: self.upper.xattrs.clone(),
                }))
            }
            Visible::Upper(node) => node,
        };
        Ok(Some(Entry {
            kind: kind_of(node),
            meta: *node.meta(),
            xattrs: node.xattrs().clone(),
        }))
    }

    fn read_file(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError> {
        match visible(self.upper, path) {
            Visible::Lower => self.lower.read_file(path),
            Visible::Upper(Node::File(file)) => match &file.data {
                Data::Bytes(bytes) => Ok(bytes.clone()),
                Data::Host { path: host, .. } => {
                    std::fs::read(host).map_err(PatchError::io(format!("reading {}", host.display())))
                }
            },
            _ => Err(PatchError::AppendMissing { path: display(path) }),
        }
    }

    fn read_link(&mut self, path: &[&[u8]]) -> Result<Vec<u8>, PatchError> {
        match visible(self.upper, path) {
            Visible::Lower => self.lower.read_link(path),
            Visible::Upper(Node::Symlink { target, .. }) => Ok(target.clone()),
            _ => Err(PatchError::AppendMissing { path: display(path) }),
        }
    }
}

/// A resolved path: its components and the kind of entry there.
pub type Resolved = (Vec<Vec<u8>>, Kind);

/// Where `path` leads after following every symlink on the way (absolute targets from the
/// root, relative ones from their directory, `..` never above the root), and what is there;
/// `None` when nothing is (or the links loop).
pub fn resolve(root: &mut dyn Lower, path: &str) -> Result<Option<Resolved>, PatchError> {
    let mut todo: Vec<Vec<u8>> = split(path.as_bytes());
    todo.reverse();
    let mut at: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == b".." {
            at.pop();
            continue;
        }
        at.push(name);
        let parts: Vec<&[u8]> = at.iter().map(Vec::as_slice).collect();
        let Some(entry) = root.entry(&parts)? else {
            return Ok(None);
        };
        match entry.kind {
            Kind::Symlink => {
                links += 1;
                if links > MAX_LINKS {
                    return Ok(None);
                }
                let target = root.read_link(&parts)?;
                at.pop();
                if target.starts_with(b"/") {
                    at.clear();
                }
                todo.extend(split(&target).into_iter().rev());
            }
            Kind::Dir => {}
            other if todo.is_empty() => return Ok(Some((at, other))),
            _ => return Ok(None),
        }
    }
    Ok(Some((at, Kind::Dir)))
}

/// The components of a path, without empty ones and `.`.
fn split(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}
