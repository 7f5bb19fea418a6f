//! Secrets the guest never holds, and the TLS interception that carries them: what a
//! sandbox's spec records of them. A secret's *value* is never part of a spec (specs are
//! stored in the state DB); it lives in the sandbox's 0600 secrets file, and the guest
//! sees only the secret's placeholder.

use super::domain::normalize_domain;
use crate::{Field, SpecError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The port whose TLS flows are intercepted unless told otherwise.
pub const DEFAULT_INTERCEPT_PORT: u16 = 443;

/// One secret: the guest's variable, its placeholder, and where its value may go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSpec {
    /// The guest environment variable that holds the placeholder.
    pub env: String,
    /// What the guest sees instead of the value: random, unique per sandbox and secret.
    pub placeholder: String,
    /// Hosts the value may be sent to: `api.example.com`, `*.example.com` (any name under it
    /// and the name itself), or `*` (any host; only by explicit, dangerous choice).
    pub hosts: Vec<String>,
    /// Where in a request the placeholder is replaced.
    #[serde(default)]
    pub inject: SecretInjection,
}

/// Where in a request a placeholder is replaced by its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInjection {
    /// Request header values.
    pub headers: bool,
    /// The user and password of `Authorization: Basic`.
    pub basic_auth: bool,
    /// The URL's query.
    pub query: bool,
    /// The request body.
    pub body: bool,
}

impl Default for SecretInjection {
    /// Headers and Basic auth, as the reference does.
    fn default() -> Self {
        SecretInjection {
            headers: true,
            basic_auth: true,
            query: false,
            body: false,
        }
    }
}

/// What happens when a placeholder is sent where its value may not go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationAction {
    /// The request is refused.
    Block,
    /// The request is refused and logged (host and secret name, never the value).
    #[default]
    BlockAndLog,
    /// The request is refused, logged, and the sandbox is stopped.
    BlockAndTerminate,
}

impl ViolationAction {
    /// The action written `block`, `block-and-log` or `block-and-terminate`.
    pub fn parse(text: &str) -> Result<ViolationAction, String> {
        match text {
            "block" => Ok(ViolationAction::Block),
            "block-and-log" => Ok(ViolationAction::BlockAndLog),
            "block-and-terminate" => Ok(ViolationAction::BlockAndTerminate),
            other => Err(format!(
                "'{other}' is not a violation action: block, block-and-log or block-and-terminate"
            )),
        }
    }
}

/// TLS interception: which flows are terminated on the host, with which CA, trusting which
/// upstream roots. Having secrets switches it on for their hosts, whatever is set here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSpec {
    /// More hosts to intercept (same patterns as a secret's hosts), with no secret.
    #[serde(default)]
    pub intercept: Vec<String>,
    /// Hosts never intercepted (a secret's host may not be among them).
    #[serde(default)]
    pub bypass: Vec<String>,
    /// TCP ports whose TLS flows may be intercepted.
    #[serde(default = "default_ports")]
    pub ports: Vec<u16>,
    /// More CA certificates (PEM files) trusted for upstream servers, beside the host's roots.
    #[serde(default)]
    pub upstream_ca_certs: Vec<PathBuf>,
    /// A CA of the user's to sign with instead of a generated one.
    #[serde(default)]
    pub intercept_ca: Option<InterceptCa>,
    /// Drop QUIC (UDP 443) to intercepted hosts, so clients fall back to TCP.
    #[serde(default = "yes")]
    pub block_quic: bool,
    /// Replace real values found in text responses by their placeholders.
    #[serde(default = "yes")]
    pub scrub_responses: bool,
    /// What a violation does.
    #[serde(default)]
    pub on_secret_violation: ViolationAction,
}

/// A user's CA: its certificate and private key, PEM files on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterceptCa {
    /// The certificate.
    pub cert: PathBuf,
    /// The private key (read by the supervisor at each start, never copied).
    pub key: PathBuf,
}

fn default_ports() -> Vec<u16> {
    vec![DEFAULT_INTERCEPT_PORT]
}

fn yes() -> bool {
    true
}

impl Default for TlsSpec {
    fn default() -> Self {
        TlsSpec {
            intercept: Vec::new(),
            bypass: Vec::new(),
            ports: default_ports(),
            upstream_ca_certs: Vec::new(),
            intercept_ca: None,
            block_quic: true,
            scrub_responses: true,
            on_secret_violation: ViolationAction::default(),
        }
    }
}

/// `pattern` as a host pattern in canonical form: a name, `*.name`, or `*`.
pub fn normalize_host_pattern(pattern: &str) -> Result<String, String> {
    if pattern == "*" {
        return Ok(pattern.to_string());
    }
    match pattern.strip_prefix("*.") {
        Some(apex) => Ok(format!("*.{}", normalize_domain(apex)?)),
        None => normalize_domain(pattern),
    }
}

/// Whether host `name` is matched by `pattern` (`*.x` matches `x` and any name under it).
pub fn host_pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        _ if pattern == "*" => true,
        Some(apex) => super::suffix_matches(name, apex),
        None => super::domain_matches(name, pattern),
    }
}

/// Whether `name` can be a guest environment variable's name.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks the secrets and the TLS settings together (a secret's host may not be bypassed).
pub(crate) fn validate(secrets: &[SecretSpec], tls: &TlsSpec) -> Result<(), SpecError> {
    let error = |problem: String| SpecError::new(Field::Secrets, problem);
    for (i, secret) in secrets.iter().enumerate() {
        let env = &secret.env;
        if !valid_env_name(env) {
            return Err(error(format!(
                "'{env}' is not a variable name (letters, digits and '_', not starting with a digit)"
            )));
        }
        if secrets[..i].iter().any(|s| s.env == *env) {
            return Err(error(format!("{env} is given twice")));
        }
        if secret.placeholder.len() < 16 || secret.placeholder.contains(char::is_whitespace) {
            return Err(error(format!(
                "{env}: the placeholder must be 16 or more non-blank characters"
            )));
        }
        if secret.hosts.is_empty() {
            return Err(error(format!(
                "{env}: name the hosts it may be sent to (ENV=VALUE@HOST)"
            )));
        }
        for host in &secret.hosts {
            check_pattern(host).map_err(|problem| error(format!("{env}: {problem}")))?;
            if let Some(bypassed) = tls.bypass.iter().find(|b| host_pattern_matches(b, trim_star(host))) {
                return Err(error(format!(
                    "{env}: its host {host} is bypassed ({bypassed}), so the value could never be sent"
                )));
            }
        }
    }
    let tls_error = |problem: String| SpecError::new(Field::Tls, problem);
    for pattern in tls.intercept.iter().chain(&tls.bypass) {
        check_pattern(pattern).map_err(tls_error)?;
    }
    if tls.ports.is_empty() || tls.ports.contains(&0) {
        return Err(tls_error("intercepted ports are 1 to 65535, at least one".into()));
    }
    Ok(())
}

fn check_pattern(pattern: &str) -> Result<(), String> {
    let canonical = normalize_host_pattern(pattern)?;
    if canonical != pattern {
        return Err(format!("write host '{pattern}' as '{canonical}'"));
    }
    Ok(())
}

fn trim_star(pattern: &str) -> &str {
    pattern.strip_prefix("*.").unwrap_or(pattern)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(env: &str, hosts: &[&str]) -> SecretSpec {
        SecretSpec {
            env: env.into(),
            placeholder: "msb_sec_0123456789abcdef".into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            inject: SecretInjection::default(),
        }
    }

    #[test]
    fn patterns_match_names_on_label_boundaries() {
        assert!(host_pattern_matches("*.example.com", "api.example.com"));
        assert!(host_pattern_matches("*.example.com", "example.com"));
        assert!(!host_pattern_matches("*.example.com", "badexample.com"));
        assert!(host_pattern_matches("api.example.com", "API.example.com."));
        assert!(!host_pattern_matches("api.example.com", "x.api.example.com"));
        assert!(host_pattern_matches("*", "anything"));
        assert_eq!(normalize_host_pattern("*.Example.COM.").unwrap(), "*.example.com");
        assert!(normalize_host_pattern("a*b.com").is_err());
    }

    #[test]
    fn secrets_are_checked() {
        let tls = TlsSpec::default();
        assert!(validate(&[secret("API_KEY", &["api.example.com", "*.x.org"])], &tls).is_ok());
        for bad in [
            secret("1KEY", &["a.com"]),
            secret("K-EY", &["a.com"]),
            secret("KEY", &[]),
            secret("KEY", &["A.com"]),
            secret("KEY", &["a..com"]),
        ] {
            assert!(validate(std::slice::from_ref(&bad), &tls).is_err(), "{bad:?}");
        }
        let twice = [secret("K", &["a.com"]), secret("K", &["b.com"])];
        assert!(validate(&twice, &tls).is_err());
        let mut short = secret("K", &["a.com"]);
        short.placeholder = "short".into();
        assert!(validate(&[short], &tls).is_err());
        let bypassing = TlsSpec {
            bypass: vec!["*.example.com".into()],
            ..TlsSpec::default()
        };
        let err = validate(&[secret("K", &["api.example.com"])], &bypassing).unwrap_err();
        assert!(err.problem.contains("bypassed"), "{err}");
        let no_ports = TlsSpec {
            ports: vec![],
            ..TlsSpec::default()
        };
        assert_eq!(validate(&[], &no_ports).unwrap_err().field, Field::Tls);
    }

    #[test]
    fn violation_actions_parse() {
        assert_eq!(ViolationAction::parse("block").unwrap(), ViolationAction::Block);
        assert_eq!(
            ViolationAction::parse("block-and-terminate").unwrap(),
            ViolationAction::BlockAndTerminate
        );
        assert!(ViolationAction::parse("allow").is_err());
        let json = serde_json::to_string(&ViolationAction::BlockAndLog).unwrap();
        assert_eq!(json, "\"block-and-log\"");
    }
}
