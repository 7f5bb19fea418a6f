//! Errors of registry access, verification and conversion.

use oci_client::errors::OciDistributionError as DistributionError;

/// Everything a pull can fail with; messages name the image, layer or path involved.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference is not a valid image reference.
    #[error("invalid image reference '{reference}': {reason}")]
    InvalidReference {
        /// What the user typed.
        reference: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The registry does not have this repository or tag.
    #[error("image {reference} not found: the registry has no such repository, tag or digest")]
    NotFound {
        /// The image.
        reference: String,
    },
    /// The registry wants (other) credentials.
    #[error(
        "access to {reference} denied: the registry requires credentials this request did not have (or refused the \
         ones it had); log in with `msb registry login {registry}`"
    )]
    Unauthorized {
        /// The image.
        reference: String,
        /// The image's registry host.
        registry: String,
    },
    /// Stored registry credentials could not be read.
    #[error(transparent)]
    Auth(#[from] crate::AuthError),
    /// The registry could not be reached.
    #[error("cannot reach the registry of {reference} ({reason}); is it up, and is the address right?")]
    Unreachable {
        /// The image.
        reference: String,
        /// The innermost cause (connection refused, DNS …).
        reason: String,
    },
    /// The registry answered with another error.
    #[error("registry error for {reference}")]
    Registry {
        /// The image.
        reference: String,
        /// The client's error.
        #[source]
        source: DistributionError,
    },
    /// The image exists but not for the wanted platform.
    #[error("{reference} has no image for {wanted} (available: {available})")]
    NoMatchingPlatform {
        /// The image.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// Platforms the index lists.
        available: String,
    },
    /// A manifest, config or layer has a media type we do not handle.
    #[error("{reference}: unsupported media type {media_type}")]
    UnsupportedMediaType {
        /// The image.
        reference: String,
        /// The media type.
        media_type: String,
    },
    /// Downloaded bytes do not hash to the digest they were asked for.
    #[error("{what} of {reference}: digest mismatch (expected {expected}, got {actual}); the download was discarded")]
    DigestMismatch {
        /// The image.
        reference: String,
        /// Which blob.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The image config is not valid JSON of the expected shape.
    #[error("{reference}: malformed image config: {reason}")]
    BadConfig {
        /// The image.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer could not be decompressed or converted.
    #[error("layer {digest} of {reference}: {reason}")]
    BadLayer {
        /// The image.
        reference: String,
        /// The layer's blob digest.
        digest: String,
        /// What went wrong (corrupt gzip, not a tar …).
        reason: String,
    },
    /// Local file system trouble.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl OciError {
    /// Classifies a registry client error into what a user can act on.
    pub(crate) fn registry(reference: &str, source: DistributionError) -> OciError {
        use oci_client::errors::OciErrorCode as Code;
        let reference = reference.to_string();
        let codes: Vec<&Code> = match &source {
            DistributionError::RegistryError { envelope, .. } => envelope.errors.iter().map(|e| &e.code).collect(),
            _ => Vec::new(),
        };
        let not_found = matches!(source, DistributionError::ImageManifestNotFoundError(_))
            || codes
                .iter()
                .any(|c| matches!(c, Code::ManifestUnknown | Code::NameUnknown | Code::NotFound));
        let denied = matches!(
            source,
            DistributionError::UnauthorizedError { .. } | DistributionError::AuthenticationFailure(_)
        ) || matches!(source, DistributionError::ServerError { code: 401 | 403, .. })
            || codes.iter().any(|c| matches!(c, Code::Unauthorized | Code::Denied));
        if not_found {
            return OciError::NotFound { reference };
        }
        if denied {
            let registry = reference
                .split_once('/')
                .map_or("REGISTRY", |(host, _)| host)
                .to_string();
            return OciError::Unauthorized { reference, registry };
        }
        if let DistributionError::RequestError(e) = &source {
            if e.is_connect() || e.is_timeout() {
                let mut reason = e.to_string();
                let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
                while let Some(c) = cause {
                    reason = c.to_string();
                    cause = c.source();
                }
                return OciError::Unreachable { reference, reason };
            }
        }
        OciError::Registry { reference, source }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> OciError {
        let context = context.into();
        move |source| OciError::Io { context, source }
    }
}
