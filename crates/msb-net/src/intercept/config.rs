//! What interception is configured with, as the supervisor builds it, and why a
//! configuration can be refused. Types holding secret values print their names only.

use std::fmt;
use zeroize::Zeroizing;

/// Shortest placeholder accepted: shorter ones could occur by chance in traffic.
pub(crate) const MIN_PLACEHOLDER: usize = 16;

/// One secret: its value, what the guest sees instead, and where it may go.
pub struct SecretRule {
    /// The guest environment variable's name; used in logs, never the value.
    pub name: String,
    /// The real value.
    pub value: Zeroizing<String>,
    /// What the guest sees (random, at least 32 characters, e.g. `msb_sec_<hex>`).
    pub placeholder: String,
    /// Hosts the value may be sent to: `api.x.com` exactly; `*.x.com` any subdomain and
    /// the apex; `*` any host.
    pub hosts: Vec<String>,
    /// Where in a request the placeholder is replaced.
    pub inject: Injection,
}

impl fmt::Debug for SecretRule {
    /// The name only: neither the value nor the placeholder.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRule")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Which parts of a request a placeholder is replaced in, and what a violation does: the
/// sandbox spec's own types, so the two can never drift apart.
pub use msb_types::{SecretInjection as Injection, ViolationAction};

/// Which CA signs the certificates the guest is shown.
pub enum CaSource {
    /// A fresh CA, key in memory only.
    Generate,
    /// The user's CA (PEM certificate and PKCS#8 PEM key).
    Given {
        /// The CA certificate.
        cert_pem: String,
        /// Its private key.
        key_pem: Zeroizing<String>,
    },
}

impl fmt::Debug for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaSource::Generate => f.write_str("Generate"),
            CaSource::Given { .. } => f.write_str("Given"),
        }
    }
}

/// Everything interception is configured with.
#[derive(Debug)]
pub struct InterceptConfig {
    /// The secrets.
    pub secrets: Vec<SecretRule>,
    /// What a violation does.
    pub on_violation: ViolationAction,
    /// More hosts to intercept (same patterns), with no secret.
    pub intercept_hosts: Vec<String>,
    /// Hosts never intercepted; a secret host also bypassed is an error.
    pub bypass: Vec<String>,
    /// TCP ports where TLS is intercepted.
    pub ports: Vec<u16>,
    /// Extra PEM roots trusted for upstream servers.
    pub upstream_cas: Vec<String>,
    /// Also trust the host's native roots.
    pub host_roots: bool,
    /// The CA.
    pub ca: CaSource,
    /// Replace real values by placeholders in responses.
    pub scrub_responses: bool,
    /// Textual response bodies up to this size are scrubbed.
    pub scrub_limit: usize,
    /// Drop QUIC to intercepted hosts.
    pub block_quic: bool,
}

impl Default for InterceptConfig {
    fn default() -> Self {
        InterceptConfig {
            secrets: Vec::new(),
            on_violation: ViolationAction::default(),
            intercept_hosts: Vec::new(),
            bypass: Vec::new(),
            ports: vec![443],
            upstream_cas: Vec::new(),
            host_roots: true,
            ca: CaSource::Generate,
            scrub_responses: true,
            scrub_limit: 1024 * 1024,
            block_quic: true,
        }
    }
}

/// Why an interception configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    /// A host pattern is malformed.
    #[error("bad host pattern {0:?}: expected a name, `*.name` or `*`")]
    BadHost(String),
    /// A secret's host is also in `bypass`.
    #[error("secret {secret}: host {host:?} is also bypassed")]
    BypassedSecretHost {
        /// The secret's name.
        secret: String,
        /// The host pattern.
        host: String,
    },
    /// A placeholder is too short to be recognised reliably.
    #[error("secret {0}: its placeholder must be at least {MIN_PLACEHOLDER} characters")]
    ShortPlaceholder(String),
    /// Two secrets share a placeholder.
    #[error("secret {0}: its placeholder is used by another secret")]
    DuplicatePlaceholder(String),
    /// A secret's value is empty.
    #[error("secret {0}: empty value")]
    EmptyValue(String),
    /// A secret without any host could never be sent.
    #[error("secret {0}: no allowed host")]
    NoHosts(String),
    /// A PEM certificate or key could not be read.
    #[error("bad PEM: {0}")]
    BadPem(String),
    /// The CA could not be made or a certificate signed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}
