//! What can go wrong planning, preparing or booting a sandbox.

use std::path::PathBuf;

/// Errors of planning, preparing and booting.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A spec field has a value that cannot be used.
    #[error(transparent)]
    Spec(#[from] msb_types::SpecError),
    /// The root filesystem path is missing or of the wrong kind.
    #[error("rootfs {path} {problem}")]
    Rootfs {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A file given as a disk-image root is not one.
    #[error("rootfs {} {problem}", path.display())]
    NotADiskImage {
        /// The file.
        path: PathBuf,
        /// What it is not.
        problem: String,
    },
    /// The sandbox's saved guest (from a snapshot) could not be resumed.
    #[error("the saved guest {} (from a snapshot) could not be resumed: {cause}", file.display())]
    Unresumable {
        /// The saved guest.
        file: PathBuf,
        /// Why.
        cause: Box<BootError>,
    },
    /// The sandbox's directory lacks what its creation makes.
    #[error(
        "sandbox directory {dir} has no {file}: the sandbox was not created completely; remove it and create it again"
    )]
    Incomplete {
        /// The sandbox's directory.
        dir: PathBuf,
        /// The missing file.
        file: &'static str,
    },
    /// A layer of the sandbox's image is not in the layer store.
    #[error("layer {diff_id} of {reference} is missing from {}: pull the image again", path.display())]
    LayerMissing {
        /// The image.
        reference: String,
        /// The layer's uncompressed digest.
        diff_id: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// The image is not in the local store.
    #[error("image {0} not found locally: pull it with `msb pull {0}`")]
    ImageNotFound(String),
    /// The VMM could not start or run the VM.
    #[error(transparent)]
    Vmm(#[from] msb_vmm::VmmError),
    /// Talking to the guest agent failed.
    #[error(transparent)]
    Agent(#[from] msb_protocol::client::ClientError),
    /// The guest did not become ready in time.
    #[error("the guest agent did not answer within {secs} s (console log: {})", log.display())]
    BootTimeout {
        /// Seconds waited.
        secs: u64,
        /// Where the console log is.
        log: PathBuf,
    },
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] msb_oci::OciError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] msb_store::StoreError),
    /// A patch conflicts with the rootfs, or the root could not be assembled.
    #[error(transparent)]
    Patch(#[from] msb_rootfs::PatchError),
    /// Host I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl BootError {
    /// An `Io` error maker for `map_err`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BootError {
        let context = context.into();
        move |source| BootError::Io { context, source }
    }
}

/// Result with [`BootError`].
pub type BootResult<T> = std::result::Result<T, BootError>;
