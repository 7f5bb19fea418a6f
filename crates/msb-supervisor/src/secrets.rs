//! Secrets and TLS interception for one run of a sandbox: the values read from its 0600
//! secrets file (never from the spec, the DB, argv or the environment), the user's CA and
//! upstream roots read from their files, and the network stack's interception built from
//! them before the VM boots, so the guest can be told which CA to trust.

use crate::{Error, Result};
use msb_net::intercept::{CaSource, InterceptConfig, Interception, SecretRule};
use msb_store::SecretValues;
use msb_types::SandboxSpec;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The interception of sandbox `spec` (whose directory is `dir`), if it intercepts anything.
pub fn interception(spec: &SandboxSpec, dir: &Path) -> Result<Option<Arc<Interception>>> {
    let net = &spec.network;
    if !net.intercepts() {
        return Ok(None);
    }
    let problem = |what: String| Error::Network(what);
    let mut values = SecretValues::read(dir).map_err(|e| problem(format!("reading the sandbox's secrets: {e}")))?;
    let mut secrets = Vec::with_capacity(net.secrets.len());
    for secret in &net.secrets {
        let value = values.take(&secret.env).ok_or_else(|| {
            problem(format!(
                "secret {} has no value (its secrets file lost it): create the sandbox again",
                secret.env
            ))
        })?;
        secrets.push(SecretRule {
            name: secret.env.clone(),
            value,
            placeholder: secret.placeholder.clone(),
            hosts: secret.hosts.clone(),
            inject: secret.inject,
        });
    }
    let tls = &net.tls;
    let read = |path: &Path, what: &str| {
        std::fs::read_to_string(path).map_err(|e| problem(format!("reading the {what} {}: {e}", path.display())))
    };
    let ca = match &tls.intercept_ca {
        Some(ca) => CaSource::Given {
            cert_pem: read(&ca.cert, "interception CA certificate")?,
            key_pem: Zeroizing::new(read(&ca.key, "interception CA key")?),
        },
        None => CaSource::Generate,
    };
    let upstream_cas = tls
        .upstream_ca_certs
        .iter()
        .map(|path| read(path, "upstream CA certificate"))
        .collect::<Result<Vec<_>>>()?;
    let config = InterceptConfig {
        secrets,
        on_violation: tls.on_secret_violation,
        intercept_hosts: tls.intercept.clone(),
        bypass: tls.bypass.clone(),
        ports: tls.ports.clone(),
        upstream_cas,
        ca,
        scrub_responses: tls.scrub_responses,
        block_quic: tls.block_quic,
        ..InterceptConfig::default()
    };
    Interception::new(config)
        .map(Some)
        .map_err(|e| problem(format!("setting up TLS interception: {e}")))
}
