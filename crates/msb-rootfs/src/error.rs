//! Why a patch or the upper image could not be made.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong applying patches or assembling a rootfs. Patch conflicts
/// are found before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// A patch is malformed (relative path, `..`, bad mode, empty symlink target).
    #[error("{0}")]
    Invalid(String),
    /// A patch fails the checks that need no filesystem.
    #[error(transparent)]
    Spec(#[from] msb_types::SpecError),
    /// `replace` is off and the path was already made by an earlier patch or the host dir.
    #[error("path already exists in rootfs: '{path}' (set replace to allow)")]
    Exists {
        /// Guest path.
        path: String,
    },
    /// `replace` is off and the path is in the image.
    #[error("path exists in image layer: '{path}' (set replace to allow)")]
    ExistsInImage {
        /// Guest path.
        path: String,
    },
    /// A parent of the patch's path is something other than a directory.
    #[error("patch path parent is not a directory: '{path}' ({kind})")]
    ParentNotDir {
        /// The offending parent.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// `Mkdir` over something that is not a directory.
    #[error("cannot create directory at '{path}': path exists and is not a directory ({kind})")]
    NotDir {
        /// Guest path.
        path: String,
        /// What is there.
        kind: &'static str,
    },
    /// `Append` to a path where nothing is.
    #[error("cannot append to '{path}': file not found in rootfs")]
    AppendMissing {
        /// Guest path.
        path: String,
    },
    /// `Append` to something other than a regular file.
    #[error("cannot append to '{path}': target {place}is not a regular file ({kind})")]
    AppendNotFile {
        /// Guest path.
        path: String,
        /// "in lower layer " when the target is in the image, else "".
        place: &'static str,
        /// What is there.
        kind: &'static str,
    },
    /// A host source of `CopyFile`/`CopyDir` cannot be used.
    #[error("patch source {path}: {problem}")]
    Source {
        /// Host path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// An image layer could not be read.
    #[error("reading image layer {path}: {source}")]
    Layer {
        /// The layer file.
        path: PathBuf,
        /// What the reader reported.
        #[source]
        source: msb_erofs::Error,
    },
    /// The upper image could not be written.
    #[error("writing the upper image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What the writer reported.
        #[source]
        source: msb_ext4::Error,
    },
    /// A host filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl PatchError {
    /// An `Io` error maker for `map_err`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> PatchError {
        let context = context.into();
        move |source| PatchError::Io { context, source }
    }
}
