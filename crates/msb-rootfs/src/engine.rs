//! The patch semantics: each patch changes an upper tree over a read-only lower rootfs, so
//! that the two seen through overlayfs give what applying the patch to the rootfs directly
//! would. Conflicts are errors, found before anything is written anywhere.
//!
//! This follows microsandbox 0.4.2's rules (defaults, `replace` guards, error cases and
//! their messages), and differs where those rules made the merged view disagree with the
//! same patches applied to a plain directory; `docs/architecture.md` lists the cases.

use crate::lower::{without_overlay_xattrs, Entry, Kind, Lower};
use crate::view::{kind_of, visible, Visible};
use crate::{display, PatchError};
use msb_ext4::{Data, Dir, File, Metadata, Node};
use msb_types::{guest_path_components, Patch};
use std::path::Path;

/// Applies `patches` in order over `lower` and returns the upper tree they make. Its root
/// carries the lower root's attributes (an overlayfs upper directory shows its own).
pub fn build_upper(patches: &[Patch], lower: &mut dyn Lower, now: i64) -> Result<Dir, PatchError> {
    let mut root = match lower.entry(&[])? {
        Some(e) if e.kind == Kind::Dir => Dir {
            meta: e.meta,
            xattrs: e.xattrs,
            entries: Default::default(),
        },
        _ => Dir::new(Metadata::root(0o755, now)),
    };
    let mut engine = Engine {
        upper: &mut root,
        lower,
        now,
    };
    for patch in patches {
        engine.apply(patch)?;
    }
    Ok(root)
}

/// What is visible at a path of the merged rootfs.
enum Seen {
    Upper(Kind),
    Lower(Entry),
}

impl Seen {
    fn kind(&self) -> Kind {
        match self {
            Seen::Upper(k) => *k,
            Seen::Lower(e) => e.kind,
        }
    }
}

struct Engine<'a> {
    upper: &'a mut Dir,
    lower: &'a mut dyn Lower,
    now: i64,
}

fn components(path: &str) -> Result<Vec<&[u8]>, PatchError> {
    let parts = guest_path_components(path).map_err(|e| PatchError::Invalid(e.to_string()))?;
    Ok(parts.into_iter().map(str::as_bytes).collect())
}

fn file(meta: Metadata, data: Data) -> Node {
    Node::File(File {
        meta,
        xattrs: Vec::new(),
        data,
        link: None,
    })
}

impl Engine<'_> {
    fn apply(&mut self, patch: &Patch) -> Result<(), PatchError> {
        patch.validate()?;
        let now = self.now;
        match patch {
            Patch::Text {
                path,
                content,
                mode,
                replace,
            } => self.put_bytes(path, content.as_bytes().to_vec(), *mode, *replace),
            Patch::File {
                path,
                content,
                mode,
                replace,
            } => self.put_bytes(path, content.clone(), *mode, *replace),
            Patch::CopyFile {
                src,
                dst,
                mode,
                replace,
            } => {
                let (meta, len) = host_file(src)?;
                let meta = Metadata {
                    mode: mode.map_or(meta.mode, |m| m as u16),
                    ..meta
                };
                let data = Data::Host { path: src.clone(), len };
                self.put(dst, *replace, file(meta, data))
            }
            Patch::Symlink { target, link, replace } => {
                let node = Node::Symlink {
                    meta: Metadata::root(0o777, now),
                    xattrs: Vec::new(),
                    target: target.as_bytes().to_vec(),
                };
                self.put(link, *replace, node)
            }
            Patch::CopyDir { src, dst, replace } => {
                let path = components(dst)?;
                self.check_replace(&path, *replace)?;
                self.copy_dir(src, &path)
            }
            Patch::Mkdir { path, mode } => self.mkdir(&components(path)?, mode_or(*mode, 0o755)),
            Patch::Remove { path } => self.remove(&components(path)?),
            Patch::Append { path, content } => self.append(&components(path)?, content.as_bytes()),
        }
    }

    /// Writes a regular file (root-owned, 0644 unless `mode`) holding `bytes` at `path`.
    fn put_bytes(&mut self, path: &str, bytes: Vec<u8>, mode: Option<u32>, replace: bool) -> Result<(), PatchError> {
        let meta = Metadata::root(mode_or(mode, 0o644), self.now);
        self.put(path, replace, file(meta, Data::Bytes(bytes)))
    }

    /// Writes a non-directory at `path`, replacing whatever the upper had there.
    fn put(&mut self, path: &str, replace: bool, node: Node) -> Result<(), PatchError> {
        let path = components(path)?;
        self.check_replace(&path, replace)?;
        self.ensure_parents(&path)?;
        self.insert(&path, node);
        Ok(())
    }

    fn insert(&mut self, path: &[&[u8]], node: Node) {
        // ensure_parents made every parent a directory of the upper.
        let _ = self.upper.insert(path, node);
    }

    /// What the merged rootfs shows at `path`: the upper where it has something, the lower
    /// where the upper leaves it visible.
    fn seen(&mut self, path: &[&[u8]]) -> Result<Option<Seen>, PatchError> {
        Ok(match visible(self.upper, path) {
            Visible::Hidden => None,
            Visible::Root => Some(Seen::Upper(Kind::Dir)),
            Visible::Upper(node) => Some(Seen::Upper(kind_of(node))),
            Visible::Lower => self.lower.entry(path)?.map(Seen::Lower),
        })
    }

    /// The `replace` guard: without it, any visible path is a conflict.
    fn check_replace(&mut self, path: &[&[u8]], replace: bool) -> Result<(), PatchError> {
        if replace {
            return Ok(());
        }
        match self.seen(path)? {
            None => Ok(()),
            Some(Seen::Upper(_)) => Err(PatchError::Exists { path: display(path) }),
            Some(Seen::Lower(_)) if self.lower.is_image() => Err(PatchError::ExistsInImage { path: display(path) }),
            Some(Seen::Lower(_)) => Err(PatchError::Exists { path: display(path) }),
        }
    }

    /// Makes every parent of `path` a directory of the upper: directories of the lower are
    /// copied up with their attributes, missing ones are created 0755, and one the patches
    /// removed earlier is created afresh and opaque, so the removed contents stay removed.
    fn ensure_parents(&mut self, path: &[&[u8]]) -> Result<(), PatchError> {
        for depth in 1..path.len() {
            let prefix = &path[..depth];
            let fresh = Dir::new(Metadata::root(0o755, self.now));
            let dir = match self.upper.get(prefix) {
                Some(Node::Dir(_)) => continue,
                Some(node) if node.is_whiteout() => opaque(fresh),
                Some(node) => {
                    return Err(PatchError::ParentNotDir {
                        path: display(prefix),
                        kind: kind_of(node).describe(),
                    })
                }
                None => match self.seen(prefix)? {
                    Some(Seen::Lower(e)) if e.kind == Kind::Dir => Dir {
                        meta: e.meta,
                        xattrs: e.xattrs,
                        entries: Default::default(),
                    },
                    Some(seen) => {
                        return Err(PatchError::ParentNotDir {
                            path: display(prefix),
                            kind: seen.kind().describe(),
                        })
                    }
                    None => fresh,
                },
            };
            self.insert(prefix, Node::Dir(dir));
        }
        Ok(())
    }

    /// Puts a directory at `path` for `Mkdir` and `CopyDir`: an existing one in the upper is
    /// kept (with its entries) and takes `meta`; over a removed path it is opaque.
    fn make_dir(&mut self, path: &[&[u8]], meta: Metadata) {
        match self.upper.get_mut(path) {
            Some(Node::Dir(d)) => d.meta = meta,
            Some(node) if node.is_whiteout() => *node = Node::Dir(opaque(Dir::new(meta))),
            _ => self.insert(path, Node::Dir(Dir::new(meta))),
        }
    }

    fn mkdir(&mut self, path: &[&[u8]], mode: u16) -> Result<(), PatchError> {
        self.ensure_parents(path)?;
        let not_dir = |kind: Kind| PatchError::NotDir {
            path: display(path),
            kind: kind.describe(),
        };
        match self.upper.get(path) {
            // An existing directory stays as it is, wherever it is.
            Some(Node::Dir(_)) => return Ok(()),
            Some(node) if !node.is_whiteout() => return Err(not_dir(kind_of(node))),
            Some(_) => {}
            None => match self.seen(path)? {
                Some(seen) if seen.kind() == Kind::Dir => return Ok(()),
                Some(seen) => return Err(not_dir(seen.kind())),
                None => {}
            },
        }
        self.make_dir(path, Metadata::root(mode, self.now));
        Ok(())
    }

    fn remove(&mut self, path: &[&[u8]]) -> Result<(), PatchError> {
        // Like every other patch, a path under something that is not a directory (a
        // symlink, say) is refused, not silently ignored.
        for depth in 1..path.len() {
            match self.seen(&path[..depth])? {
                Some(seen) if seen.kind() != Kind::Dir => {
                    return Err(PatchError::ParentNotDir {
                        path: display(&path[..depth]),
                        kind: seen.kind().describe(),
                    })
                }
                Some(_) => {}
                None => break,
            }
        }
        self.upper.remove(path);
        if matches!(self.seen(path)?, Some(Seen::Lower(_))) {
            self.ensure_parents(path)?;
            self.insert(path, Node::whiteout());
        }
        Ok(())
    }

    fn append(&mut self, path: &[&[u8]], content: &[u8]) -> Result<(), PatchError> {
        let not_file = |place, kind: Kind| PatchError::AppendNotFile {
            path: display(path),
            place,
            kind: kind.describe(),
        };
        match self.upper.get_mut(path) {
            Some(Node::File(f)) => {
                if let Data::Host { path: src, .. } = &f.data {
                    f.data = Data::Bytes(read_host(src)?);
                }
                if let Data::Bytes(bytes) = &mut f.data {
                    bytes.extend_from_slice(content);
                }
                return Ok(());
            }
            Some(node) if !node.is_whiteout() => return Err(not_file("", kind_of(node))),
            _ => {}
        }
        match self.seen(path)? {
            Some(Seen::Lower(e)) if e.kind == Kind::File => {
                // Copy-up, as overlayfs does it: the lower file's attributes come along.
                let mut bytes = self.lower.read_file(path)?;
                bytes.extend_from_slice(content);
                self.ensure_parents(path)?;
                let node = Node::File(File {
                    meta: e.meta,
                    xattrs: without_overlay_xattrs(&e.xattrs),
                    data: Data::Bytes(bytes),
                    link: None,
                });
                self.insert(path, node);
                Ok(())
            }
            Some(Seen::Lower(e)) if self.lower.is_image() => Err(not_file("in lower layer ", e.kind)),
            Some(Seen::Lower(e)) => Err(not_file("", e.kind)),
            Some(Seen::Upper(kind)) => Err(not_file("", kind)),
            None => Err(PatchError::AppendMissing { path: display(path) }),
        }
    }

    /// Copies the host directory `src` to `path`, merging into what is there.
    fn copy_dir(&mut self, src: &Path, path: &[&[u8]]) -> Result<(), PatchError> {
        self.ensure_parents(path)?;
        let meta = host_dir(src)?;
        self.make_dir(path, meta);
        let mut children: Vec<_> = std::fs::read_dir(src)
            .map_err(source_error(src))?
            .collect::<Result<_, _>>()
            .map_err(source_error(src))?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let host = child.path();
            let name = child.file_name();
            let name = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).to_vec();
            let mut sub: Vec<&[u8]> = path.to_vec();
            sub.push(&name);
            if name.len() > 255 {
                return Err(PatchError::Source {
                    path: host,
                    problem: "has a name longer than 255 bytes".into(),
                });
            }
            let kind = child.file_type().map_err(source_error(&host))?;
            let node = if kind.is_dir() {
                self.copy_dir(&host, &sub)?;
                continue;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&host).map_err(source_error(&host))?;
                let m = std::fs::symlink_metadata(&host).map_err(source_error(&host))?;
                Node::Symlink {
                    meta: Metadata {
                        mode: 0o777,
                        ..copied_attrs(&m, 0o777)
                    },
                    xattrs: Vec::new(),
                    target: std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()).to_vec(),
                }
            } else if kind.is_file() {
                let (meta, len) = host_file(&host)?;
                file(meta, Data::Host { path: host, len })
            } else {
                return Err(PatchError::Source {
                    path: host,
                    problem: "is a device, FIFO or socket; CopyDir copies files, directories and symlinks".into(),
                });
            };
            self.insert(&sub, node);
        }
        Ok(())
    }
}

fn opaque(mut dir: Dir) -> Dir {
    dir.set_opaque(true);
    dir
}

fn mode_or(mode: Option<u32>, default: u16) -> u16 {
    // validate() checked that the mode fits in 0o7777.
    mode.map_or(default, |m| m as u16)
}

fn source_error(path: &Path) -> impl FnOnce(std::io::Error) -> PatchError + '_ {
    move |e| PatchError::Source {
        path: path.to_path_buf(),
        problem: e.to_string(),
    }
}

/// Root-owned attributes for a copy of a host entry: its permission bits (`default` when it
/// has none) and its mtime.
fn copied_attrs(m: &std::fs::Metadata, default: u16) -> Metadata {
    use std::os::unix::fs::MetadataExt;
    let mode = match (m.mode() & 0o7777) as u16 {
        0 => default,
        mode => mode,
    };
    Metadata {
        mode,
        uid: 0,
        gid: 0,
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
    }
}

/// Attributes of the host directory at `path` (symlinks followed).
fn host_dir(path: &Path) -> Result<Metadata, PatchError> {
    let m = std::fs::metadata(path).map_err(source_error(path))?;
    if !m.is_dir() {
        return Err(PatchError::Source {
            path: path.to_path_buf(),
            problem: "is not a directory".into(),
        });
    }
    Ok(copied_attrs(&m, 0o755))
}

/// Attributes and size of the regular host file at `path` (symlinks followed).
fn host_file(path: &Path) -> Result<(Metadata, u64), PatchError> {
    let m = std::fs::metadata(path).map_err(source_error(path))?;
    if !m.is_file() {
        return Err(PatchError::Source {
            path: path.to_path_buf(),
            problem: "is not a regular file".into(),
        });
    }
    Ok((copied_attrs(&m, 0o644), m.len()))
}

fn read_host(path: &Path) -> Result<Vec<u8>, PatchError> {
    std::fs::read(path).map_err(source_error(path))
}
