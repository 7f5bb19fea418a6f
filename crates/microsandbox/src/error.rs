//! The SDK's one public error type.

use std::path::PathBuf;

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
pub enum MicrosandboxError {
    /// The request is invalid (bad name, resources, rootfs …).
    #[error("{0}")]
    InvalidConfig(String),
    /// The root filesystem directory is missing or not a directory.
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
    /// No such image in the local store.
    #[error("image {0} not found locally: pull it with `msb pull {0}`")]
    ImageNotFound(String),
    /// Registry access, verification or layer conversion failed.
    #[error(transparent)]
    Image(#[from] msb_oci::OciError),
    /// A patch conflicts with the rootfs or cannot be applied, or the root could not be
    /// assembled.
    #[error(transparent)]
    Patch(#[from] msb_rootfs::PatchError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] msb_store::StoreError),
    /// Host I/O failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
