//! Secrets on the builder: `.secret(|s| s.env("API_KEY").value(key).allow_host("api.x.com"))`.
//!
//! The guest's environment gets the secret's placeholder; the host's network stack puts the
//! value in only on requests to the allowed hosts (TLS to them is intercepted for that).
//! The value goes into the sandbox's 0600 secrets file at create, never into its spec (the
//! state DB), and is held in memory as a [`Zeroizing`] string.

use crate::SandboxBuilder;
use msb_types::{normalize_host_pattern, Field, SecretInjection, SecretSpec, SpecError, ViolationAction};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// One secret being described; see [`SandboxBuilder::secret`].
#[derive(Clone, Default)]
pub struct SecretBuilder {
    env: Option<String>,
    value: Option<Zeroizing<String>>,
    placeholder: Option<String>,
    hosts: Vec<String>,
    inject: SecretInjection,
}

impl std::fmt::Debug for SecretBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBuilder")
            .field("env", &self.env)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl SecretBuilder {
    /// The guest variable that holds the placeholder (required).
    pub fn env(mut self, name: impl Into<String>) -> Self {
        self.env = Some(name.into());
        self
    }

    /// The real value (required); it never enters the guest.
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(Zeroizing::new(value.into()));
        self
    }

    /// A placeholder of your own instead of a random one (16 or more characters; make it
    /// unguessable, or guest code could forge requests that carry the value).
    pub fn placeholder(mut self, placeholder: impl Into<String>) -> Self {
        self.placeholder = Some(placeholder.into());
        self
    }

    /// A host the value may be sent to, exactly.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.hosts.push(host.into());
        self
    }

    /// Hosts the value may be sent to by pattern: `*.example.com` (any name under it and
    /// the name itself).
    pub fn allow_host_pattern(self, pattern: impl Into<String>) -> Self {
        self.allow_host(pattern)
    }

    /// Any host at all: the value goes wherever guest code sends the placeholder over TLS.
    /// Only for values you would hand the guest anyway.
    pub fn allow_any_host_dangerous(self, yes: bool) -> Self {
        match yes {
            true => self.allow_host("*"),
            false => self,
        }
    }

    /// Replace the placeholder in request headers (default on).
    pub fn inject_headers(mut self, on: bool) -> Self {
        self.inject.headers = on;
        self
    }

    /// Replace it in `Authorization: Basic` credentials (default on).
    pub fn inject_basic_auth(mut self, on: bool) -> Self {
        self.inject.basic_auth = on;
        self
    }

    /// Replace it in the URL's query (default off).
    pub fn inject_query(mut self, on: bool) -> Self {
        self.inject.query = on;
        self
    }

    /// Replace it in request bodies (default off).
    pub fn inject_body(mut self, on: bool) -> Self {
        self.inject.body = on;
        self
    }

    /// The spec entry and the value, or what is missing.
    fn finish(self) -> Result<(SecretSpec, Zeroizing<String>), SpecError> {
        let missing = |what: &str| SpecError::new(Field::Secrets, format!("a secret needs {what}"));
        let env = self.env.ok_or_else(|| missing("an env name (.env(…))"))?;
        let value = self
            .value
            .ok_or_else(|| missing(&format!("a value ({env}: .value(…))")))?;
        if value.is_empty() {
            return Err(SpecError::new(Field::Secrets, format!("{env}: the value is empty")));
        }
        let hosts = self
            .hosts
            .iter()
            .map(|h| normalize_host_pattern(h).map_err(|p| SpecError::new(Field::Secrets, format!("{env}: {p}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let placeholder = self.placeholder.unwrap_or_else(new_placeholder);
        if placeholder.contains(value.as_str()) || value.contains(placeholder.as_str()) {
            return Err(SpecError::new(
                Field::Secrets,
                format!("{env}: the placeholder and the value must not contain each other"),
            ));
        }
        let spec = SecretSpec {
            env,
            placeholder,
            hosts,
            inject: self.inject,
        };
        Ok((spec, value))
    }
}

/// A fresh placeholder: `msb_` and 160 random bits in hex, so guest code can neither guess
/// another sandbox's nor tell it from the value's shape.
fn new_placeholder() -> String {
    match crate::random_hex(20) {
        Ok(hex) => format!("msb_{hex}"),
        // Without randomness no placeholder is safe to hand out.
        Err(e) => panic!("cannot read /dev/urandom for a secret's placeholder: {e}"),
    }
}

/// The values of a builder's secrets, by env name (names only in `Debug`).
#[derive(Clone, Default)]
pub(crate) struct SecretSet(Vec<(String, Zeroizing<String>)>);

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(k, _)| k)).finish()
    }
}

impl SecretSet {
    /// The values as the sandbox's secrets file holds them.
    pub(crate) fn values(&self) -> msb_store::SecretValues {
        let mut values = msb_store::SecretValues::default();
        for (env, value) in &self.0 {
            values.insert(env.clone(), value.clone());
        }
        values
    }
}

impl SandboxBuilder {
    /// A secret: the guest sees `env=<placeholder>`; requests over TLS to an allowed host
    /// carry the value instead (in headers and Basic auth unless told otherwise). Having
    /// secrets switches TLS interception on for their hosts.
    pub fn secret(mut self, f: impl FnOnce(SecretBuilder) -> SecretBuilder) -> Self {
        match f(SecretBuilder::default()).finish() {
            Ok((spec, value)) => {
                self.secret_values.0.retain(|(env, _)| *env != spec.env);
                self.secret_values.0.push((spec.env.clone(), value));
                self.spec.network.secrets.retain(|s| s.env != spec.env);
                self.spec.network.secrets.push(spec);
            }
            Err(e) => {
                self.invalid.get_or_insert(e);
            }
        }
        self
    }

    /// A secret allowed to one host: `.secret_env("API_KEY", key, "api.example.com")`.
    pub fn secret_env(self, env: impl Into<String>, value: impl Into<String>, host: impl Into<String>) -> Self {
        self.secret(|s| s.env(env).value(value).allow_host(host))
    }

    /// What a placeholder sent to a host its value may not go to does (default
    /// [`ViolationAction::BlockAndLog`]).
    pub fn on_secret_violation(mut self, action: ViolationAction) -> Self {
        self.spec.network.tls.on_secret_violation = action;
        self
    }

    /// Intercept TLS to these hosts too (`*.example.com` patterns), with no secret.
    pub fn tls_intercept(mut self, host: impl Into<String>) -> Self {
        self.spec.network.tls.intercept.push(host.into());
        self
    }

    /// Never intercept TLS to these hosts.
    pub fn tls_bypass(mut self, host: impl Into<String>) -> Self {
        self.spec.network.tls.bypass.push(host.into());
        self
    }

    /// The TCP ports whose TLS may be intercepted (default 443).
    pub fn tls_intercepted_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.spec.network.tls.ports = ports.into_iter().collect();
        self
    }

    /// Trust this CA certificate (PEM file) for upstream servers, beside the host's roots.
    pub fn tls_upstream_ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.spec.network.tls.upstream_ca_certs.push(path.into());
        self
    }

    /// Sign intercepted connections with your CA (PEM certificate and key files) instead of
    /// one generated at each start.
    pub fn tls_intercept_ca(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.spec.network.tls.intercept_ca = Some(msb_types::InterceptCa {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Whether QUIC to intercepted hosts is dropped so clients use TCP (default yes).
    pub fn tls_block_quic(mut self, on: bool) -> Self {
        self.spec.network.tls.block_quic = on;
        self
    }

    /// Whether real values in text responses are turned back into placeholders (default yes).
    pub fn scrub_secret_responses(mut self, on: bool) -> Self {
        self.spec.network.tls.scrub_responses = on;
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_needs_a_name_a_value_and_hosts_in_canonical_form() {
        let (spec, value) = SecretBuilder::default()
            .env("API_KEY")
            .value("sk-1")
            .allow_host("API.example.com")
            .allow_host_pattern("*.x.org")
            .finish()
            .unwrap();
        assert_eq!(spec.hosts, ["api.example.com", "*.x.org"]);
        assert_eq!(value.as_str(), "sk-1");
        assert!(spec.placeholder.starts_with("msb_") && spec.placeholder.len() == 44);
        assert!(SecretBuilder::default().value("v").finish().is_err());
        assert!(SecretBuilder::default().env("K").finish().is_err());
        let shown = format!("{:?}", SecretBuilder::default().env("K").value("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        let twice: Vec<String> = (0..2).map(|_| new_placeholder()).collect();
        assert_ne!(twice[0], twice[1]);
    }
}
