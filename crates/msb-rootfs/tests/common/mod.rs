//! Test support: in-memory layers, overlay merging, materialising trees on disk and
//! reading them back, so the two kinds of root can be compared view for view.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use msb_ext4::{Data, Dir, File, Metadata, Node, SpecialKind};
use msb_rootfs::{Kind, Layer, LayerEntry, PatchError, Stack};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A layer held in memory, whiteouts and opaque dirs as stored.
#[derive(Debug, Clone)]
pub struct MemLayer(pub Dir);

fn kind_of(node: &Node) -> (Kind, (u32, u32)) {
    match node {
        Node::Dir(_) => (Kind::Dir, (0, 0)),
        Node::File(_) => (Kind::File, (0, 0)),
        Node::Symlink { .. } => (Kind::Symlink, (0, 0)),
        Node::Special { kind, .. } => match kind {
            SpecialKind::Char { major, minor } => (Kind::CharDevice, (*major, *minor)),
            SpecialKind::Block { major, minor } => (Kind::BlockDevice, (*major, *minor)),
            SpecialKind::Fifo => (Kind::Fifo, (0, 0)),
            SpecialKind::Socket => (Kind::Socket, (0, 0)),
        },
    }
}

fn layer_entry(path: Vec<Vec<u8>>, node: &Node) -> LayerEntry<Vec<Vec<u8>>> {
    let (kind, rdev) = kind_of(node);
    LayerEntry {
        handle: path,
        kind,
        meta: *node.meta(),
        xattrs: node.xattrs().clone(),
        rdev,
    }
}

fn parts(path: &[Vec<u8>]) -> Vec<&[u8]> {
    path.iter().map(Vec::as_slice).collect()
}

impl Layer for MemLayer {
    type Handle = Vec<Vec<u8>>;

    fn root(&mut self) -> Result<LayerEntry<Self::Handle>, PatchError> {
        Ok(layer_entry(Vec::new(), &Node::Dir(self.0.clone())))
    }

    fn child(&mut self, dir: &Self::Handle, name: &[u8]) -> Result<Option<LayerEntry<Self::Handle>>, PatchError> {
        let mut path = dir.clone();
        path.push(name.to_vec());
        Ok(self.0.get(&parts(&path)).map(|n| layer_entry(path.clone(), n)))
    }

    fn read(&mut self, file: &Self::Handle) -> Result<Vec<u8>, PatchError> {
        match self.0.get(&parts(file)) {
            Some(Node::File(File {
                data: Data::Bytes(b), ..
            })) => Ok(b.clone()),
            Some(Node::Symlink { target, .. }) => Ok(target.clone()),
            _ => panic!("not a file"),
        }
    }
}

/// A stack of in-memory layers, bottom first.
pub fn stack(layers: &[Dir]) -> Stack<MemLayer> {
    Stack::new(layers.iter().cloned().map(MemLayer).collect())
}

pub fn meta(mode: u16) -> Metadata {
    Metadata::root(mode, 1_000)
}

pub fn file(text: &str, mode: u16) -> Node {
    Node::File(File {
        meta: meta(mode),
        xattrs: Vec::new(),
        data: Data::Bytes(text.as_bytes().to_vec()),
        link: None,
    })
}

pub fn dir(entries: Vec<(&str, Node)>) -> Node {
    Node::Dir(dir_of(0o755, entries))
}

pub fn dir_of(mode: u16, entries: Vec<(&str, Node)>) -> Dir {
    let mut d = Dir::new(meta(mode));
    for (name, node) in entries {
        d.entries.insert(name.as_bytes().to_vec(), node);
    }
    d
}

pub fn opaque_dir(entries: Vec<(&str, Node)>) -> Node {
    let mut d = dir_of(0o755, entries);
    d.set_opaque(true);
    Node::Dir(d)
}

pub fn symlink(target: &str) -> Node {
    Node::Symlink {
        meta: meta(0o777),
        xattrs: Vec::new(),
        target: target.as_bytes().to_vec(),
    }
}

/// What overlayfs shows for `upper` over `lowers` (bottom first), as one plain tree.
pub fn merge(lowers: &[Dir], upper: &Dir) -> Dir {
    let mut all: Vec<&Dir> = lowers.iter().collect();
    all.push(upper);
    merge_dirs(&all.into_iter().rev().collect::<Vec<_>>())
}

/// Merges directories given topmost first, all at the same path.
fn merge_dirs(dirs: &[&Dir]) -> Dir {
    let mut out = Dir::new(dirs[0].meta);
    out.xattrs = dirs[0]
        .xattrs
        .iter()
        .filter(|(k, _)| !k.starts_with(b"trusted.overlay."))
        .cloned()
        .collect();
    let mut stop = dirs.len();
    for (i, d) in dirs.iter().enumerate() {
        if d.is_opaque() {
            stop = i + 1;
            break;
        }
    }
    let dirs = &dirs[..stop];
    let mut names: Vec<&Vec<u8>> = dirs.iter().flat_map(|d| d.entries.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let mut same: Vec<&Dir> = Vec::new();
        let mut shown: Option<Node> = None;
        for d in dirs {
            match d.entries.get(name) {
                None => continue,
                Some(n) if n.is_whiteout() => break,
                Some(Node::Dir(sub)) => {
                    same.push(sub);
                    if sub.is_opaque() {
                        break;
                    }
                }
                Some(other) => {
                    if same.is_empty() {
                        shown = Some(other.clone());
                    }
                    break;
                }
            }
        }
        if !same.is_empty() {
            out.entries.insert(name.clone(), Node::Dir(merge_dirs(&same)));
        } else if let Some(n) = shown {
            out.entries.insert(name.clone(), n);
        }
    }
    out
}

/// Creates `tree` below the existing directory `at`.
pub fn materialise(at: &Path, tree: &Dir) {
    for (name, node) in &tree.entries {
        let p = at.join(std::ffi::OsStr::from_encoded_bytes_unchecked_safe(name));
        match node {
            Node::Dir(d) => {
                std::fs::create_dir(&p).unwrap();
                materialise(&p, d);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(u32::from(d.meta.mode))).unwrap();
            }
            Node::File(f) => {
                let Data::Bytes(b) = &f.data else {
                    panic!("host data in a test tree")
                };
                std::fs::write(&p, b).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(u32::from(f.meta.mode))).unwrap();
            }
            Node::Symlink { target, .. } => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_encoded_bytes_unchecked_safe(target), &p).unwrap()
            }
            Node::Special { .. } => panic!("no specials in test trees"),
        }
        if is_root() {
            let m = node.meta();
            std::os::unix::fs::lchown(&p, Some(m.uid), Some(m.gid)).unwrap();
            if let Node::Dir(d) = node {
                // chown clears nothing on dirs, but keep the order uniform with files.
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(u32::from(d.meta.mode))).unwrap();
            } else if let Node::File(f) = node {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(u32::from(f.meta.mode))).unwrap();
            }
        }
    }
}

trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

/// Reads the directory at `at` back as a tree (owners and modes as on disk, mtime 0).
pub fn read_back(at: &Path) -> Dir {
    let m = std::fs::symlink_metadata(at).unwrap();
    let mut d = Dir::new(attrs(&m));
    for entry in std::fs::read_dir(at).unwrap() {
        let entry = entry.unwrap();
        let p = entry.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let name = std::os::unix::ffi::OsStrExt::as_bytes(entry.file_name().as_os_str()).to_vec();
        let node = if m.is_dir() {
            Node::Dir(read_back(&p))
        } else if m.file_type().is_symlink() {
            let t = std::fs::read_link(&p).unwrap();
            Node::Symlink {
                meta: attrs(&m),
                xattrs: Vec::new(),
                target: std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str()).to_vec(),
            }
        } else {
            Node::File(File {
                meta: attrs(&m),
                xattrs: Vec::new(),
                data: Data::Bytes(std::fs::read(&p).unwrap()),
                link: None,
            })
        };
        d.entries.insert(name, node);
    }
    d
}

fn attrs(m: &std::fs::Metadata) -> Metadata {
    Metadata {
        mode: (m.mode() & 0o7777) as u16,
        uid: m.uid(),
        gid: m.gid(),
        mtime: 0,
        mtime_nsec: 0,
    }
}

/// Whether the tests run as root (owners can then be set and compared).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A comparable rendering of a tree: one line per entry with kind, mode, owner and content.
/// Times are left out (a bind root keeps the host's clock); symlink modes too.
pub fn render(d: &Dir) -> Vec<String> {
    let mut out = Vec::new();
    render_into(d, "", &mut out);
    out
}

fn render_into(d: &Dir, at: &str, out: &mut Vec<String>) {
    for (name, node) in &d.entries {
        let p = format!("{at}/{}", String::from_utf8_lossy(name));
        let m = node.meta();
        let owner = if is_root() {
            format!("{}:{}", m.uid, m.gid)
        } else {
            "-".into()
        };
        match node {
            Node::Dir(sub) => {
                out.push(format!("{p} dir {:o} {owner}", m.mode));
                render_into(sub, &p, out);
            }
            Node::File(f) => {
                let b = match &f.data {
                    Data::Bytes(b) => b.clone(),
                    Data::Host { path, .. } => std::fs::read(path).unwrap(),
                };
                out.push(format!(
                    "{p} file {:o} {owner} {:?}",
                    m.mode,
                    String::from_utf8_lossy(&b)
                ));
            }
            Node::Symlink { target, .. } => out.push(format!("{p} -> {}", String::from_utf8_lossy(target))),
            Node::Special { .. } => out.push(format!("{p} special")),
        }
    }
}
