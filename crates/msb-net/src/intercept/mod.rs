//! Secret substitution with narrow TLS interception.
//!
//! The guest's environment holds a random placeholder for each secret; this module replaces
//! the placeholder with the real value only in requests to hosts the user allowed for that
//! secret, so code in the guest never sees the value.
//!
//! * **Narrow**: only TCP flows to one of [`InterceptConfig::ports`] whose TLS ClientHello
//!   names (SNI) a host allowed for some secret, or listed in `intercept_hosts`, and not in
//!   `bypass`, are terminated here (`flow`). Every other flow passes byte for byte, so
//!   certificate pinning and client certificates elsewhere keep working.
//! * **CA**: by default a fresh ECDSA P-256 CA per [`Interception`] (per sandbox start), its
//!   key only in memory: it never touches disk, and a stopped sandbox holds no signing key.
//!   The guest must be given [`Interception::ca_pem`] to trust. The CA carries X.509 name
//!   constraints limited to the hosts it may sign for (none when a pattern is `*`). Leaves
//!   are backdated two hours (a TCG guest's clock lags), valid a day, cached per name.
//! * **Substitution** (`rewrite`) needs all of: TLS intercepted, the SNI allowed for the
//!   secret, the destination address pinned to the SNI by our DNS (so a spoofed SNI towards
//!   some other address does not qualify), and the request's Host / `:authority` equal to
//!   the SNI. A placeholder anywhere scanned in a request that may not carry it is a
//!   violation: the request is answered `403` and never forwarded.
//! * **Plaintext** flows (not intercepted) are scanned for placeholders across chunk
//!   boundaries (`StreamScan`); a hit resets the flow before the chunk holding it leaves.
//! * **Responses** from hosts allowed for a secret have textual bodies with a known length up
//!   to `scrub_limit` scrubbed: each real value is replaced by its placeholder (`proxy`).
//!   Larger, streamed (no length) or binary bodies are not scrubbed.
//! * **QUIC** to port 443 of an address pinned to an intercepted host is dropped, so clients
//!   fall back to TCP where interception applies.

mod body;
mod ca;
mod config;
mod dn;
mod flow;
mod hosts;
mod proxy;
mod rewrite;
mod scan;
mod scrub;
mod upstream;

pub use config::{CaSource, Injection, InterceptConfig, InterceptError, SecretRule, ViolationAction};
pub use scan::{Needles, StreamScan};

pub(crate) use flow::{intercept, Intercepted, PlainGuard};

use config::MIN_PLACEHOLDER;
use hosts::{any_matches, parse_all, Pattern};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use zeroize::Zeroizing;

/// A secret as checked and parsed.
pub(crate) struct Secret {
    pub(crate) name: String,
    pub(crate) value: Zeroizing<String>,
    pub(crate) placeholder: String,
    pub(crate) hosts: Vec<Pattern>,
    pub(crate) inject: Injection,
}

/// A sandbox's interception: secrets, CA, upstream trust, and the violation record.
pub struct Interception {
    secrets: Vec<Secret>,
    /// Over the placeholders, by secret index (`None`: no secrets).
    placeholders: Option<Needles>,
    /// Over the real values, by secret index.
    values: Option<Needles>,
    intercept_hosts: Vec<Pattern>,
    bypass: Vec<Pattern>,
    ports: Vec<u16>,
    on_violation: ViolationAction,
    scrub_responses: bool,
    scrub_limit: usize,
    block_quic: bool,
    ca: ca::Authority,
    upstream: upstream::Trust,
    violations: AtomicU64,
    terminated: watch::Sender<bool>,
}

impl fmt::Debug for Interception {
    /// Secret names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.secrets.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Interception")
            .field("secrets", &names)
            .field("ports", &self.ports)
            .field("on_violation", &self.on_violation)
            .field("violations", &self.violations())
            .finish_non_exhaustive()
    }
}

impl Interception {
    /// Checks `cfg`, makes (or loads) the CA and the upstream trust store.
    pub fn new(cfg: InterceptConfig) -> Result<Arc<Interception>, InterceptError> {
        let bypass = parse_all(&cfg.bypass)?;
        let intercept_hosts = parse_all(&cfg.intercept_hosts)?;
        let mut secrets = Vec::with_capacity(cfg.secrets.len());
        let mut placeholders: Vec<String> = Vec::with_capacity(cfg.secrets.len());
        for rule in cfg.secrets {
            let hosts = parse_all(&rule.hosts)?;
            if hosts.is_empty() {
                return Err(InterceptError::NoHosts(rule.name));
            }
            if let Some((host, _)) = hosts
                .iter()
                .zip(&rule.hosts)
                .map(|(p, text)| (text, p))
                .find(|(_, p)| bypass.iter().any(|b| b.covers(p)))
            {
                return Err(InterceptError::BypassedSecretHost {
                    secret: rule.name,
                    host: host.clone(),
                });
            }
            if rule.placeholder.len() < MIN_PLACEHOLDER {
                return Err(InterceptError::ShortPlaceholder(rule.name));
            }
            if placeholders.contains(&rule.placeholder) {
                return Err(InterceptError::DuplicatePlaceholder(rule.name));
            }
            if rule.value.is_empty() {
                return Err(InterceptError::EmptyValue(rule.name));
            }
            placeholders.push(rule.placeholder.clone());
            secrets.push(Secret {
                name: rule.name,
                value: rule.value,
                placeholder: rule.placeholder,
                hosts,
                inject: rule.inject,
            });
        }
        let signable: Vec<&Pattern> = secrets.iter().flat_map(|s| &s.hosts).chain(&intercept_hosts).collect();
        let subtrees: Option<Vec<String>> = signable.iter().map(|p| p.subtree().map(str::to_string)).collect();
        let ca = match cfg.ca {
            CaSource::Generate => ca::Authority::generate(subtrees)?,
            CaSource::Given { cert_pem, key_pem } => ca::Authority::given(&cert_pem, &key_pem)?,
        };
        let upstream = upstream::Trust::new(cfg.host_roots, &cfg.upstream_cas)?;
        // Only scrubbing needs the values in an automaton (which is not zeroized on drop).
        let values = if cfg.scrub_responses {
            Needles::new(secrets.iter().map(|s| s.value.as_bytes()))
        } else {
            None
        };
        Ok(Arc::new(Interception {
            placeholders: Needles::new(&placeholders),
            values,
            secrets,
            intercept_hosts,
            bypass,
            ports: cfg.ports,
            on_violation: cfg.on_violation,
            scrub_responses: cfg.scrub_responses,
            scrub_limit: cfg.scrub_limit,
            block_quic: cfg.block_quic,
            ca,
            upstream,
            violations: AtomicU64::new(0),
            terminated: watch::Sender::new(false),
        }))
    }

    /// The CA certificate (PEM) the guest must trust.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Resolves once a [`ViolationAction::BlockAndTerminate`] violation has happened, even
    /// if it happened before this was called.
    pub async fn terminated(&self) {
        let mut seen = self.terminated.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = seen.wait_for(|done| *done).await;
    }

    /// Violations so far.
    pub fn violations(&self) -> u64 {
        self.violations.load(Ordering::Relaxed)
    }

    /// Whether a TLS flow to `port` naming `name` (normalized) is terminated here.
    pub(crate) fn intercepts(&self, name: &str, port: u16) -> bool {
        self.ports.contains(&port) && self.wants(name)
    }

    /// Whether `name` is a host interception applies to (whatever the port).
    fn wants(&self, name: &str) -> bool {
        !any_matches(&self.bypass, name)
            && (any_matches(&self.intercept_hosts, name) || self.secrets.iter().any(|s| any_matches(&s.hosts, name)))
    }

    /// Whether flows to `port` must be sniffed for their name.
    pub(crate) fn sniffs(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    /// Whether a UDP datagram to `port` of an address pinned to `names` is dropped (QUIC).
    pub(crate) fn drops_udp(&self, port: u16, names: &[String]) -> bool {
        self.block_quic && port == 443 && names.iter().any(|n| self.wants(n))
    }

    /// Records a placeholder of secret `secret` sent towards `host`, where it may not go.
    pub(crate) fn violation(&self, host: &str, secret: usize) {
        self.violations.fetch_add(1, Ordering::Relaxed);
        let name = self.secret_name(secret);
        match self.on_violation {
            ViolationAction::Block => {}
            ViolationAction::BlockAndLog => {
                tracing::warn!(
                    host,
                    secret = name,
                    "secret placeholder sent to a host not allowed for it: blocked"
                );
            }
            ViolationAction::BlockAndTerminate => {
                tracing::warn!(
                    host,
                    secret = name,
                    "secret placeholder sent to a host not allowed for it: blocked, terminating the sandbox"
                );
                self.terminated.send_replace(true);
            }
        }
    }

    pub(crate) fn secret_name(&self, secret: usize) -> &str {
        self.secrets.get(secret).map_or("?", |s| s.name.as_str())
    }

    pub(crate) fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    pub(crate) fn placeholders(&self) -> Option<&Needles> {
        self.placeholders.as_ref()
    }

    /// The automaton over real values and the placeholders to put back, when responses from
    /// `sni` are scrubbed.
    pub(crate) fn scrubber(&self, sni: &str) -> Option<(&Needles, usize)> {
        let allowed = self.secrets.iter().any(|s| any_matches(&s.hosts, sni));
        if !self.scrub_responses || !allowed {
            return None;
        }
        Some((self.values.as_ref()?, self.scrub_limit))
    }
}

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod tests;
