//! The crate's error type.

use std::io;

/// Everything that can go wrong writing or reading an EROFS image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tar stream could not be read or parsed (truncated, not a tar, bad header).
    #[error("cannot read the tar stream (after entry {after:?}): {source}")]
    Tar {
        /// Path of the last entry read successfully ("" before the first).
        after: String,
        /// What the tar reader reported.
        #[source]
        source: io::Error,
    },
    /// Reading the data of one tar entry failed (usually a truncated stream).
    #[error("tar entry {path:?}: cannot read its data: {source}")]
    EntryData {
        /// The entry's path.
        path: String,
        /// What the reader reported.
        #[source]
        source: io::Error,
    },
    /// A path in the tar is unusable (escapes the root, too long, NUL byte, ...).
    #[error("tar entry {path:?}: {reason}")]
    BadPath {
        /// The entry's path as written in the tar.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A hard link points at something that does not exist earlier in the layer.
    #[error("tar entry {path:?}: hard link target {target:?} does not exist earlier in the layer")]
    LinkTargetMissing {
        /// The link's path.
        path: String,
        /// The target it names.
        target: String,
    },
    /// A hard link points at a directory.
    #[error("tar entry {path:?}: hard link target {target:?} is a directory")]
    LinkTargetIsDir {
        /// The link's path.
        path: String,
        /// The target it names.
        target: String,
    },
    /// An entry sits below something that is not a directory.
    #[error("tar entry {path:?}: parent {parent:?} is not a directory in this layer")]
    ParentNotDir {
        /// The entry's path.
        path: String,
        /// The offending ancestor.
        parent: String,
    },
    /// A tar entry type this writer does not carry.
    #[error("tar entry {path:?}: unsupported entry type {kind:?}")]
    UnsupportedEntry {
        /// The entry's path.
        path: String,
        /// The type byte from the header.
        kind: char,
    },
    /// Some field of an entry is out of range or malformed.
    #[error("tar entry {path:?}: {what}")]
    InvalidEntry {
        /// The entry's path.
        path: String,
        /// What is wrong with it.
        what: String,
    },
    /// The image would exceed what EROFS can address (16 TiB at 4 KiB blocks).
    #[error("the EROFS image would be too large: {0}")]
    TooLarge(String),
    /// Writing the image failed.
    #[error("cannot write the EROFS image: {0}")]
    Write(#[source] io::Error),
    /// Reading the image failed at the I/O level.
    #[error("cannot read the EROFS image: {0}")]
    Read(#[source] io::Error),
    /// The image is malformed.
    #[error("corrupt EROFS image: {0}")]
    Corrupt(String),
    /// The image uses a feature this reader does not implement.
    #[error("unsupported EROFS feature: {0}")]
    Unsupported(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds a `Corrupt` error from anything printable.
pub(crate) fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corrupt(msg.into())
}

/// Renders a byte path for error messages.
pub(crate) fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}
