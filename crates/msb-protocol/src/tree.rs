//! Files and trees on the wire: `FsOp::ReadTree` and `FsOp::WriteTree` carry a tar stream
//! (GNU headers, long names as GNU extensions), packed here by whichever side sends it.
//! Symlinks are packed as symlinks, never followed; modes, owners and mtimes are kept;
//! files with more than one link are packed once and then as hard links when asked.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// How a tree is packed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackOptions {
    /// Pack a file met again under another name as a hard link to its first name.
    pub hard_links: bool,
}

/// What was packed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Entries packed.
    pub entries: u64,
    /// Bytes of file contents packed.
    pub bytes: u64,
    /// Sockets met (a tar cannot hold them): their paths, left out.
    pub skipped: Vec<String>,
}

/// Packs the file, symlink or tree at `src` into `out` as a tar whose first entry is named
/// `root` (`.` for a stream whose entries are relative to `src` itself).
pub fn pack(src: &Path, root: &str, opts: PackOptions, out: impl Write) -> io::Result<PackStats> {
    let mut packer = Packer {
        tar: tar::Builder::new(out),
        opts,
        seen: HashMap::new(),
        stats: PackStats::default(),
    };
    packer.tar.mode(tar::HeaderMode::Complete);
    packer.tar.follow_symlinks(false);
    packer.entry(src, root)?;
    packer.tar.into_inner()?.flush()?;
    Ok(packer.stats)
}

struct Packer<W: Write> {
    tar: tar::Builder<W>,
    opts: PackOptions,
    /// Files with more than one link already packed, by (device, inode), and their names.
    seen: HashMap<(u64, u64), String>,
    stats: PackStats,
}

impl<W: Write> Packer<W> {
    fn entry(&mut self, path: &Path, name: &str) -> io::Result<()> {
        let meta = fs::symlink_metadata(path).map_err(|e| at(path, e))?;
        let kind = meta.file_type();
        if kind.is_socket() {
            self.stats.skipped.push(path.to_string_lossy().into_owned());
            return Ok(());
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        self.stats.entries += 1;
        if kind.is_dir() {
            header.set_size(0);
            self.tar
                .append_data(&mut header, name, io::empty())
                .map_err(|e| at(path, e))?;
            let mut children: Vec<_> = fs::read_dir(path)
                .map_err(|e| at(path, e))?
                .map(|item| item.map(|i| i.file_name()))
                .collect::<io::Result<_>>()
                .map_err(|e| at(path, e))?;
            children.sort();
            for child in children {
                let child_name = format!("{name}/{}", child.to_string_lossy());
                self.entry(&path.join(&child), &child_name)?;
            }
        } else if kind.is_symlink() {
            let target = fs::read_link(path).map_err(|e| at(path, e))?;
            header.set_size(0);
            self.tar
                .append_link(&mut header, name, &target)
                .map_err(|e| at(path, e))?;
        } else if kind.is_file() {
            let key = (meta.dev(), meta.ino());
            if self.opts.hard_links && meta.nlink() > 1 {
                if let Some(first) = self.seen.get(&key) {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    let first = first.clone();
                    return self.tar.append_link(&mut header, name, first).map_err(|e| at(path, e));
                }
                self.seen.insert(key, name.to_string());
            }
            let file = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW) // replaced by a symlink since the look: not followed
                .open(path)
                .map_err(|e| at(path, e))?;
            let len = meta.len();
            self.stats.bytes += len;
            // The file may change while it is read: exactly `len` bytes go in, as the header says.
            self.tar
                .append_data(
                    &mut header,
                    name,
                    ExactLen {
                        inner: file.take(len),
                        left: len,
                    },
                )
                .map_err(|e| at(path, e))?;
        } else {
            // Devices and FIFOs: their header says it all.
            header.set_size(0);
            self.tar
                .append_data(&mut header, name, io::empty())
                .map_err(|e| at(path, e))?;
        }
        Ok(())
    }
}

/// Reads exactly `left` bytes: what the inner reader has, then zeros if it ends early.
struct ExactLen<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn names(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn a_tree_packs_in_order_with_symlinks_unfollowed_and_hard_links_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        fs::create_dir_all(t.join("empty")).unwrap();
        fs::write(t.join("a"), b"aaa").unwrap();
        fs::set_permissions(t.join("a"), fs::Permissions::from_mode(0o751)).unwrap();
        fs::hard_link(t.join("a"), t.join("b")).unwrap();
        symlink("/etc/passwd", t.join("out")).unwrap();
        let mut plain = Vec::new();
        pack(&t, "t", PackOptions::default(), &mut plain).unwrap();
        let listed = names(&plain);
        let expected = [
            ("t", tar::EntryType::Directory),
            ("t/a", tar::EntryType::Regular),
            ("t/b", tar::EntryType::Regular),
            ("t/empty", tar::EntryType::Directory),
            ("t/out", tar::EntryType::Symlink),
        ];
        let expected: Vec<_> = expected.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        assert_eq!(listed, expected);
        let mut linked = Vec::new();
        let stats = pack(&t, ".", PackOptions { hard_links: true }, &mut linked).unwrap();
        assert_eq!(stats.bytes, 3);
        let listed = names(&linked);
        // The tar crate drops a leading `./` from names.
        assert_eq!(listed[2], ("b".to_string(), tar::EntryType::Link));
        let mut archive = tar::Archive::new(&linked[..]);
        let a = archive.entries().unwrap().nth(1).unwrap().unwrap();
        assert_eq!(a.header().mode().unwrap() & 0o7777, 0o751);
    }

    #[test]
    fn a_file_shrinking_while_packed_still_makes_a_well_formed_archive() {
        let data = b"abc";
        let mut r = ExactLen {
            inner: &data[..],
            left: 5,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0");
    }

    #[test]
    fn long_names_and_targets_survive() {
        let dir = tempfile::tempdir().unwrap();
        let long = "n".repeat(200);
        fs::create_dir(dir.path().join(&long)).unwrap();
        symlink("x".repeat(300), dir.path().join(&long).join(&long)).unwrap();
        let mut out = Vec::new();
        pack(&dir.path().join(&long), "r", PackOptions::default(), &mut out).unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let link = archive.entries().unwrap().nth(1).unwrap().unwrap();
        assert_eq!(link.path().unwrap().to_string_lossy(), format!("r/{long}"));
        assert_eq!(link.link_name().unwrap().unwrap().to_string_lossy(), "x".repeat(300));
    }
}
