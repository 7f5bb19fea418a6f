//! The SDK's one public error type.

/// Everything that can go wrong in the SDK. Failures of the layers below (planning and
/// booting, registries, the store, the agent channel) are wrapped whole, with their source.
#[derive(Debug, thiserror::Error)]
pub enum MicrosandboxError {
    /// A spec field has a value that cannot be used (names the field).
    #[error(transparent)]
    InvalidSpec(#[from] msb_types::SpecError),
    /// An argument of a call that cannot be used (says which and why).
    #[error("{0}")]
    InvalidArgument(String),
    /// The settings (`MSB_*` variables, `$MSB_HOME/config.json`) are invalid.
    #[error("{0}")]
    Config(String),
    /// No sandbox by that name.
    #[error("sandbox '{0}' not found (see `msb ls -a`)")]
    SandboxNotFound(String),
    /// A sandbox by that name exists already.
    #[error("sandbox '{0}' already exists: remove it (`msb rm {0}`), start it (`msb start {0}`), or create it with --replace")]
    SandboxExists(String),
    /// No snapshot of that name.
    #[error("snapshot '{0}' not found (see `msb snapshot ls`)")]
    SnapshotNotFound(String),
    /// A snapshot of that name exists.
    #[error("snapshot '{0}' already exists: remove it first (`msb snapshot rm {0}`)")]
    SnapshotExists(String),
    /// The sandbox is running, and the operation needs it stopped.
    #[error("sandbox '{0}' is running: stop it first (`msb stop {0}`), or use -f")]
    SandboxStillRunning(String),
    /// The sandbox is not running, and the operation needs it running.
    #[error("sandbox '{name}' is {state}: start it first (`msb start {name}`)")]
    SandboxNotRunning {
        /// The sandbox.
        name: String,
        /// What it is instead (`stopped`, `crashed`, `created`).
        state: String,
    },
    /// The sandbox's supervisor could not start it.
    #[error("sandbox '{name}' did not start: {message}")]
    StartFailed {
        /// The sandbox.
        name: String,
        /// What the supervisor reported.
        message: String,
    },
    /// The sandbox's supervisor could not be run or reached.
    #[error("{0}")]
    Supervisor(String),
    /// Planning, preparing or booting the sandbox failed.
    #[error(transparent)]
    Boot(Box<msb_boot::BootError>),
    /// Talking to the sandbox failed.
    #[error(transparent)]
    Agent(#[from] msb_protocol::client::ClientError),
    /// A file operation failed in the guest; its kind says how.
    #[error(transparent)]
    Fs(msb_protocol::FsFailure),
    /// A process did not finish within its timeout (it was killed).
    #[error("the command did not finish within {0:?} and was killed")]
    ExecTimeout(std::time::Duration),
    /// No such image in the local store.
    #[error("image {0} not found locally: pull it with `msb pull {0}`")]
    ImageNotFound(String),
    /// No volume by that name.
    #[error("volume '{0}' not found (see `msb volume ls`)")]
    VolumeNotFound(String),
    /// The volume is mounted by sandboxes.
    #[error("volume '{name}' is mounted by sandbox(es) {}: remove them first, or use --force", sandboxes.join(", "))]
    VolumeInUse {
        /// The volume.
        name: String,
        /// The sandboxes that mount it.
        sandboxes: Vec<String>,
    },
    /// The image is used by sandboxes.
    #[error("image {reference} is used by sandbox(es) {}: remove them first, or use --force", sandboxes.join(", "))]
    ImageInUse {
        /// The image.
        reference: String,
        /// The sandboxes created from it.
        sandboxes: Vec<String>,
    },
    /// Registry access, verification or layer conversion failed.
    #[error(transparent)]
    Image(Box<msb_oci::OciError>),
    /// The state database failed.
    #[error(transparent)]
    Store(Box<msb_store::StoreError>),
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

impl MicrosandboxError {
    /// An `Io` error maker for `map_err`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> MicrosandboxError {
        let context = context.into();
        move |source| MicrosandboxError::Io { context, source }
    }
}

impl From<msb_store::StoreError> for MicrosandboxError {
    fn from(e: msb_store::StoreError) -> Self {
        use msb_store::StoreError as S;
        match e {
            S::SandboxNotFound { name } => MicrosandboxError::SandboxNotFound(name),
            S::AlreadyExists { name } => MicrosandboxError::SandboxExists(name),
            S::SandboxRunning { name } => MicrosandboxError::SandboxStillRunning(name),
            S::ImageInUse { reference, sandboxes } => MicrosandboxError::ImageInUse { reference, sandboxes },
            other => MicrosandboxError::Store(Box::new(other)),
        }
    }
}

impl From<msb_boot::BootError> for MicrosandboxError {
    fn from(e: msb_boot::BootError) -> Self {
        MicrosandboxError::Boot(Box::new(e))
    }
}

impl From<msb_oci::OciError> for MicrosandboxError {
    fn from(e: msb_oci::OciError) -> Self {
        MicrosandboxError::Image(Box::new(e))
    }
}
