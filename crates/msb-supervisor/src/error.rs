//! What can go wrong supervising a sandbox.

/// Errors of the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Booting the VM failed.
    #[error(transparent)]
    Boot(#[from] msb_boot::BootError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] msb_store::StoreError),
    /// The sandbox is already running (another supervisor holds it).
    #[error("sandbox '{0}' is already running")]
    AlreadyRunning(String),
    /// No sandbox by that name.
    #[error("sandbox '{0}' not found")]
    NotFound(String),
    /// The sandbox's network could not be set up (a published port is taken, say).
    #[error("{0}")]
    Network(String),
    /// What the starter sent on stdin is not a supervisor input.
    #[error("the supervisor's input is not valid: {0}")]
    BadInput(#[source] serde_json::Error),
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
