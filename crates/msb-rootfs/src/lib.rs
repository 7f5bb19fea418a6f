//! `msb-rootfs`: what a sandbox's root filesystem is made of before it boots.
//!
//! * Patches ([`msb_types::Patch`]) with microsandbox 0.4.2's semantics, computed by one
//!   engine as an upper tree over a read-only [`Lower`]: the image's EROFS layers for OCI
//!   roots (the tree is then written into the sandbox's `upper.ext4`), or the host
//!   directory itself for bind roots (the tree is then written into it, contained).
//! * The upper image ([`write_upper_image`]): the sandbox's ext4 with the patches in it.
//! * Flat archives ([`unpack_flat`]): a saved sandbox's files as one tar, read as hostile
//!   input.

mod engine;
mod erofs;
mod error;
mod flat;
mod host;
mod lower;
mod remove;
mod stack;
mod unpack;
mod upper;
mod view;

pub use engine::build_upper;
pub use erofs::{open_stack, ErofsLayer};
pub use error::PatchError;
pub use flat::{unpack_flat, FlatError, Member};
pub use host::HostRoot;
pub use lower::{Empty, Entry, Kind, Lower};
pub use stack::{Layer, LayerEntry, Stack};
pub use unpack::{unpack_contained, UnpackOptions, UnpackStats};
pub use upper::{write_upper_image, write_upper_tree};
pub use view::{resolve, Merged};

use msb_types::Patch;
use std::path::Path;

/// Removes directory `name` of `dir` and everything below it, following nothing: a
/// symlink there is `ENOTDIR`, as for `rmdir`.
pub fn remove_tree(dir: std::os::fd::BorrowedFd<'_>, name: &[u8]) -> Result<(), rustix::io::Errno> {
    match host::stat_at(dir, name)? {
        None => Err(rustix::io::Errno::NOENT),
        Some(stat) if host::kind(&stat) != Kind::Dir => Err(rustix::io::Errno::NOTDIR),
        Some(_) => remove::remove_all(dir, name, true),
    }
}

/// Applies `patches` to the host directory `root`, never touching anything outside it.
/// Every patch is checked against the directory first; on a conflict nothing is written.
pub fn apply_to_host_dir(root: &Path, patches: &[Patch], now: i64) -> Result<(), PatchError> {
    if patches.is_empty() {
        return Ok(());
    }
    let mut host = HostRoot::open(root)?;
    let upper = build_upper(patches, &mut host, now)?;
    host.apply(&upper)
}

/// A guest path for messages: `/a/b`.
pub(crate) fn display(path: &[&[u8]]) -> String {
    let mut out = String::new();
    for part in path {
        out.push('/');
        out.push_str(&String::from_utf8_lossy(part));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}
