//! Flat archives: a few plain files as one tar (a saved sandbox's files: microsandbox's
//! snapshot archives put it in zstd), read as hostile input.
//!
//! The first entry is the description, under a name and size limit the caller gives; once
//! it is written, the caller reads it and says which other files may follow and how large
//! each may be. Only those are taken: plain files (or GNU sparse ones, whose holes tar
//! reads as zeros) under their own names, each once, written into one directory made for
//! them, never past their limit. Whole blocks of zeros are written back as holes, so a
//! sparse disk image stays sparse.

use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The unit in which zeros become holes.
const BLOCK: usize = 64 << 10;
/// A block of zeros to compare with (a slice comparison is one `memcmp`).
static ZEROS: [u8; BLOCK] = [0; BLOCK];

/// Why a flat archive was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlatError(pub String);

/// A file an archive may hold, and its largest size in bytes.
pub type Member = (String, u64);

/// Unpacks the flat archive `tar` into the empty directory `dir` (files owner-only).
/// `first` is the description that must come first; `rest` reads it from `dir` once it is
/// there and names the files that may follow.
pub fn unpack_flat<E: From<FlatError>>(
    tar: impl Read,
    dir: &Path,
    first: Member,
    rest: impl FnOnce(&Path) -> Result<Vec<Member>, E>,
) -> Result<(), E> {
    let refused = |why: String| E::from(FlatError(why));
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|e| refused(e.to_string()))?;
    let mut rest = Some(rest);
    let mut members = vec![first];
    let mut described = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| refused(e.to_string()))?;
        let path = entry.path().map_err(|e| refused(e.to_string()))?.into_owned();
        let name = path.to_str().unwrap_or_default().to_string();
        let kind = entry.header().entry_type();
        let plain = kind.is_file() || kind == tar::EntryType::GNUSparse;
        let limit = members.iter().find(|(m, _)| *m == name).map(|(_, limit)| *limit);
        let (Some(limit), true) = (limit, plain) else {
            if !described {
                return Err(refused("its description does not come first".into()));
            }
            return Err(refused(format!("it holds {} ({kind:?})", path.display())));
        };
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(&name))
            .map_err(|_| refused(format!("it holds {name} twice")))?;
        write_sparse(&mut entry, &out, limit).map_err(|e| refused(format!("reading {name}: {e}")))?;
        if let Some(rest) = rest.take() {
            members = rest(dir)?;
            described = true;
        }
    }
    Ok(())
}

/// Copies `from` into `out`, leaving holes where whole blocks are zero; fails past `limit`
/// bytes.
fn write_sparse(from: &mut impl Read, out: &std::fs::File, limit: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; BLOCK];
    let mut at = 0u64;
    loop {
        let n = read_full(from, &mut buf)?;
        if n == 0 {
            break;
        }
        if at + n as u64 > limit {
            return Err(std::io::Error::other(format!(
                "longer than the {limit} bytes it may have"
            )));
        }
        if buf[..n] != ZEROS[..n] {
            out.write_all_at(&buf[..n], at)?;
        }
        at += n as u64;
    }
    out.set_len(at)?;
    (&*out).flush()
}

/// Reads until `buf` is full or the input ends; how much was read.
fn read_full(from: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match from.read(&mut buf[n..])? {
            0 => break,
            got => n += got,
        }
    }
    Ok(n)
}
