//! What kind of failure an error is, for front doors that must answer with a status (HTTP,
//! MCP, the Python SDK's exception classes) without matching every variant themselves.

use crate::MicrosandboxError;
use msb_protocol::client::ClientError;
use msb_protocol::FsErrorKind;

/// The class of a [`MicrosandboxError`]: what a caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such sandbox, image, volume or guest path.
    NotFound,
    /// A name is taken, or something is in the wrong state (running, in use, not empty).
    Conflict,
    /// A spec, path or argument that cannot be used.
    Invalid,
    /// A guest file operation was not permitted (permissions, read-only filesystem).
    Forbidden,
    /// A process did not finish within its timeout.
    Timeout,
    /// A disk or quota is full.
    NoSpace,
    /// A registry failed or could not be reached.
    Upstream,
    /// Anything else: a bug, the host, a sandbox that broke.
    Internal,
}

impl ErrorKind {
    /// Its snake_case name (`not_found` …), as front doors report it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Timeout => "timeout",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Internal => "internal",
        }
    }
}

impl MicrosandboxError {
    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        use MicrosandboxError as E;
        match self {
            E::InvalidSpec(_) | E::InvalidArgument(_) => ErrorKind::Invalid,
            E::SandboxNotFound(_) | E::ImageNotFound(_) | E::VolumeNotFound(_) | E::SnapshotNotFound(_) => {
                ErrorKind::NotFound
            }
            E::SandboxExists(_)
            | E::SnapshotExists(_)
            | E::SandboxStillRunning(_)
            | E::SandboxNotRunning { .. }
            | E::VolumeInUse { .. }
            | E::ImageInUse { .. } => ErrorKind::Conflict,
            E::Fs(failure) | E::Agent(ClientError::Fs(failure)) => fs_kind(failure.kind),
            E::ExecTimeout(_) => ErrorKind::Timeout,
            E::Image(e) => match **e {
                msb_oci::OciError::InvalidReference { .. } | msb_oci::OciError::NoMatchingPlatform { .. } => {
                    ErrorKind::Invalid
                }
                msb_oci::OciError::NotFound { .. } => ErrorKind::NotFound,
                _ if no_space(&**e) => ErrorKind::NoSpace,
                _ => ErrorKind::Upstream,
            },
            E::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => ErrorKind::NoSpace,
            E::Boot(e) if no_space(&**e) => ErrorKind::NoSpace,
            E::Boot(e) => match **e {
                // What the caller asked for cannot be booted: their fix, not ours.
                msb_boot::BootError::Spec(_)
                | msb_boot::BootError::Rootfs { .. }
                | msb_boot::BootError::NotADiskImage { .. } => ErrorKind::Invalid,
                msb_boot::BootError::ImageNotFound(_) => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            },
            // Volume names are checked and claimed in the store: a caller can fix these.
            E::Store(e) if matches!(**e, msb_store::StoreError::VolumeExists { .. }) => ErrorKind::Conflict,
            E::Store(e) if matches!(**e, msb_store::StoreError::InvalidName(_)) => ErrorKind::Invalid,
            E::Config(_) | E::StartFailed { .. } | E::Supervisor(_) | E::Agent(_) | E::Store(_) | E::Io { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

fn fs_kind(kind: FsErrorKind) -> ErrorKind {
    match kind {
        FsErrorKind::NotFound => ErrorKind::NotFound,
        FsErrorKind::AlreadyExists | FsErrorKind::NotEmpty | FsErrorKind::IsADirectory | FsErrorKind::NotADirectory => {
            ErrorKind::Conflict
        }
        FsErrorKind::PermissionDenied | FsErrorKind::ReadOnly => ErrorKind::Forbidden,
        FsErrorKind::NoSpace => ErrorKind::NoSpace,
        FsErrorKind::InvalidPath => ErrorKind::Invalid,
        FsErrorKind::Other => ErrorKind::Internal,
    }
}

/// Whether an `ENOSPC` is somewhere in the chain of `e`'s sources.
fn no_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
        {
            return true;
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_what_the_caller_can_do() {
        assert_eq!(
            MicrosandboxError::SandboxNotFound("a".into()).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(MicrosandboxError::SandboxExists("a".into()).kind(), ErrorKind::Conflict);
        let spec = msb_types::SpecError::new(msb_types::Field::Root, "no");
        assert_eq!(MicrosandboxError::InvalidSpec(spec).kind(), ErrorKind::Invalid);
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let io = MicrosandboxError::Io {
            context: "writing".into(),
            source: full,
        };
        assert_eq!(io.kind(), ErrorKind::NoSpace);
        assert_eq!(ErrorKind::NoSpace.as_str(), "no_space");
        let taken = msb_store::StoreError::VolumeExists { name: "v".into() };
        assert_eq!(MicrosandboxError::from(taken).kind(), ErrorKind::Conflict);
        let bad = msb_store::StoreError::InvalidName(msb_types::validate_name("../x").unwrap_err());
        assert_eq!(MicrosandboxError::from(bad).kind(), ErrorKind::Invalid);
    }
}
