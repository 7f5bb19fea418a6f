//! The SDK's one public error type.

use std::path::PathBuf;

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
pub enum MicrosandboxError {
    /// The request is invalid (bad name, resources, paths, options …).
    #[error("{0}")]
    InvalidConfig(String),
    /// No sandbox by that name.
    #[error("sandbox '{0}' not found (see `msb ls -a`)")]
    SandboxNotFound(String),
    /// A sandbox by that name exists already.
    #[error("sandbox '{0}' already exists: remove it (`msb rm {0}`), start it (`msb start {0}`), or replace it")]
    SandboxExists(String),
    /// The sandbox is running, and the operation needs it stopped.
    #[error("sandbox '{0}' is running: stop it first (`msb stop {0}`) or force it")]
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
    /// The root filesystem path is missing or of the wrong kind.
    #[error("rootfs {path} {problem}")]
    Rootfs {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A patch conflicts with the rootfs or cannot be applied, or the root could not be
    /// assembled.
    #[error(transparent)]
    Patch(#[from] msb_rootfs::PatchError),
    /// The VMM could not start or run the VM.
    #[error(transparent)]
    Vmm(#[from] msb_vmm::VmmError),
    /// Talking to the sandbox failed.
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
    /// A process did not finish within its timeout (it was killed).
    #[error("the command did not finish within {0:?} and was killed")]
    ExecTimeout(std::time::Duration),
    /// No such image in the local store.
    #[error("image {0} not found locally: pull it with `msb pull {0}`")]
    ImageNotFound(String),
    /// The image is used by sandboxes.
    #[error("image {reference} is used by sandbox(es) {}: remove them first, or force", sandboxes.join(", "))]
    ImageInUse {
        /// The image.
        reference: String,
        /// The sandboxes created from it.
        sandboxes: Vec<String>,
    },
    /// Registry access, verification or layer conversion failed.
    #[error(transparent)]
    Image(#[from] msb_oci::OciError),
    /// The state database failed.
    #[error(transparent)]
    Store(msb_store::StoreError),
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
            S::InvalidName(e) => MicrosandboxError::InvalidConfig(e.to_string()),
            other => MicrosandboxError::Store(other),
        }
    }
}

impl From<msb_supervisor::Error> for MicrosandboxError {
    fn from(e: msb_supervisor::Error) -> Self {
        use msb_supervisor::Error as E;
        match e {
            E::InvalidConfig(m) => MicrosandboxError::InvalidConfig(m),
            E::Rootfs { path, problem } => MicrosandboxError::Rootfs { path, problem },
            E::Vmm(e) => MicrosandboxError::Vmm(e),
            E::Agent(e) => MicrosandboxError::Agent(e),
            E::BootTimeout { secs, log } => MicrosandboxError::BootTimeout { secs, log },
            E::ImageNotFound(r) => MicrosandboxError::ImageNotFound(r),
            E::Image(e) => MicrosandboxError::Image(e),
            E::Store(e) => e.into(),
            E::Patch(e) => MicrosandboxError::Patch(e),
            E::AlreadyRunning(name) => MicrosandboxError::SandboxStillRunning(name),
            E::NotFound(name) => MicrosandboxError::SandboxNotFound(name),
            E::Io { context, source } => MicrosandboxError::Io { context, source },
        }
    }
}
