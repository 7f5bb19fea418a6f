//! What can go wrong preparing, booting or supervising a sandbox.

use std::path::PathBuf;

/// Errors of the supervisor and of the root and VM set-up it does.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid (bad name, resources, workdir …).
    #[error("{0}")]
    InvalidConfig(String),
    /// The root filesystem path is missing or of the wrong kind.
    #[error("rootfs {path} {problem}")]
    Rootfs {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The VMM could not start or run the VM.
    #[error(transparent)]
    Vmm(#[from] msb_vmm::VmmError),
    /// Talking to the guest agent failed.
    #[error(transparent)]
    Agent(#[from] msb_protocol::client::ClientError),
    /// The guest did not become ready in time.
    #[error("the guest agent did not answer within {secs} s (console log: {log})")]
    BootTimeout {
        /// Seconds waited.
        secs: u64,
        /// Where the console log is.
        log: PathBuf,
    },
    /// The image is not in the local store.
    #[error("image {0} not found locally: pull it with `msb pull {0}`")]
    ImageNotFound(String),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] msb_oci::OciError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] msb_store::StoreError),
    /// A patch conflicts with the rootfs, or the root could not be assembled.
    #[error(transparent)]
    Patch(#[from] msb_rootfs::PatchError),
    /// The sandbox is already running (another supervisor holds it).
    #[error("sandbox '{0}' is already running")]
    AlreadyRunning(String),
    /// No sandbox by that name.
    #[error("sandbox '{0}' not found")]
    NotFound(String),
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

impl Error {
    /// An `Io` error maker for `map_err`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
