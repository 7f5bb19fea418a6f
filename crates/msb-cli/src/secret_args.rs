//! The secret and TLS interception options of `msb run` and `msb create`.
//!
//! A value can be typed (`--secret ENV=VALUE@HOST`, which leaves it in shell history and on
//! this process's argv), taken from this shell's environment (`--secret-env ENV@HOST`) or
//! read from a file (`--secret-file ENV=PATH@HOST`); the last two never put it on a command
//! line. Values are held in [`Zeroizing`] strings and never printed.

use microsandbox::{SandboxBuilder, ViolationAction};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Secrets and TLS interception.
#[derive(clap::Args, Debug)]
pub struct SecretArgs {
    /// A secret: the guest's ENV holds a placeholder, and requests over TLS to HOST carry
    /// VALUE instead (split at the last '@'; hosts comma-separated, `*.example.com` for a
    /// domain and its subdomains); repeatable.
    #[arg(long = "secret", value_name = "ENV=VALUE@HOST[,HOST…]", value_parser = hidden)]
    secrets: Vec<Hidden>,
    /// A secret whose value is this shell's $ENV (never on a command line); repeatable.
    #[arg(long = "secret-env", value_name = "ENV@HOST[,HOST…]", value_parser = hidden)]
    secret_envs: Vec<Hidden>,
    /// A secret whose value is the contents of PATH (one trailing newline dropped); repeatable.
    #[arg(long = "secret-file", value_name = "ENV=PATH@HOST[,HOST…]", value_parser = hidden)]
    secret_files: Vec<Hidden>,
    /// What a placeholder sent to a host its secret may not go to does: block,
    /// block-and-log (the default) or block-and-terminate (stop the sandbox).
    #[arg(long, value_name = "ACTION", value_parser = ViolationAction::parse)]
    on_secret_violation: Option<ViolationAction>,
    /// Intercept TLS to this host too (`*.example.com` patterns); repeatable.
    #[arg(long = "tls-intercept", value_name = "HOST")]
    tls_intercept: Vec<String>,
    /// Never intercept TLS to this host; repeatable.
    #[arg(long = "tls-bypass", value_name = "HOST")]
    tls_bypass: Vec<String>,
    /// A TCP port whose TLS may be intercepted; repeatable [default: 443].
    #[arg(long = "tls-intercept-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    tls_ports: Vec<u16>,
    /// Trust this CA certificate (PEM) for upstream servers, beside the host's roots; repeatable.
    #[arg(long = "tls-upstream-ca-cert", value_name = "PATH")]
    upstream_cas: Vec<PathBuf>,
    /// Sign intercepted connections with this CA certificate (PEM) instead of a generated one.
    #[arg(long, value_name = "PATH", requires = "tls_intercept_ca_key")]
    tls_intercept_ca_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-intercept-ca-cert.
    #[arg(long, value_name = "PATH", requires = "tls_intercept_ca_cert")]
    tls_intercept_ca_key: Option<PathBuf>,
    /// Let QUIC reach intercepted hosts (by default it is dropped, so clients use TCP).
    #[arg(long)]
    no_block_quic: bool,
    /// Leave real values in responses as they come (by default, text responses have them
    /// turned back into placeholders).
    #[arg(long)]
    no_secret_scrub: bool,
}

/// A `--secret*` argument as typed: parsed by [`SecretArgs::apply`], never by clap, whose
/// errors would print it whole.
#[derive(Clone)]
struct Hidden(Zeroizing<String>);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("…")
    }
}

fn hidden(text: &str) -> Result<Hidden, std::convert::Infallible> {
    Ok(Hidden(Zeroizing::new(text.to_string())))
}

/// Reads one kind of `--secret*` argument.
type Parser = fn(&str) -> Result<SecretArg, String>;

/// One secret from the command line.
struct SecretArg {
    env: String,
    value: Zeroizing<String>,
    hosts: Vec<String>,
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=…@{}", self.env, self.hosts.join(","))
    }
}

impl SecretArgs {
    /// `b` with the secrets and TLS options applied, or which `--secret*` argument is wrong
    /// (named by its variable, never its value).
    pub fn apply(&self, mut b: SandboxBuilder) -> anyhow::Result<SandboxBuilder> {
        let parsers: [(&[Hidden], &str, Parser); 3] = [
            (&self.secrets, "--secret", parse_secret),
            (&self.secret_envs, "--secret-env", parse_secret_env),
            (&self.secret_files, "--secret-file", parse_secret_file),
        ];
        let mut secrets = Vec::new();
        for (args, flag, parse) in parsers {
            for arg in args {
                let name = arg.0.split(['=', '@']).next().unwrap_or_default();
                secrets.push(parse(&arg.0).map_err(|problem| anyhow::anyhow!("{flag} {name}…: {problem}"))?);
            }
        }
        for secret in &secrets {
            b = b.secret(|mut s| {
                s = s.env(&secret.env).value(secret.value.as_str());
                secret.hosts.iter().fold(s, |s, host| s.allow_host(host))
            });
        }
        if let Some(action) = self.on_secret_violation {
            b = b.on_secret_violation(action);
        }
        for host in &self.tls_intercept {
            b = b.tls_intercept(host);
        }
        for host in &self.tls_bypass {
            b = b.tls_bypass(host);
        }
        if !self.tls_ports.is_empty() {
            b = b.tls_intercepted_ports(self.tls_ports.iter().copied());
        }
        for ca in &self.upstream_cas {
            b = b.tls_upstream_ca_cert(absolute(ca));
        }
        if let (Some(cert), Some(key)) = (&self.tls_intercept_ca_cert, &self.tls_intercept_ca_key) {
            b = b.tls_intercept_ca(absolute(cert), absolute(key));
        }
        if self.no_block_quic {
            b = b.tls_block_quic(false);
        }
        if self.no_secret_scrub {
            b = b.scrub_secret_responses(false);
        }
        Ok(b)
    }
}

/// A path the supervisor (which runs elsewhere) reads as meant here.
fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `LEFT@HOST,HOST…`, split at the last '@'.
fn split_hosts(text: &str) -> Result<(&str, Vec<String>), String> {
    let (left, hosts) = text
        .rsplit_once('@')
        .ok_or("name the hosts the value may go to: …@HOST[,HOST…]")?;
    let hosts: Vec<String> = hosts.split(',').map(str::to_string).collect();
    if hosts.iter().any(String::is_empty) {
        return Err("a host after '@' is empty".into());
    }
    Ok((left, hosts))
}

fn parse_secret(text: &str) -> Result<SecretArg, String> {
    let (left, hosts) = split_hosts(text)?;
    let (env, value) = left.split_once('=').ok_or("write ENV=VALUE@HOST")?;
    Ok(SecretArg {
        env: env.to_string(),
        value: Zeroizing::new(value.to_string()),
        hosts,
    })
}

fn parse_secret_env(text: &str) -> Result<SecretArg, String> {
    let (env, hosts) = split_hosts(text)?;
    let value = std::env::var(env).map_err(|_| format!("${env} is not set in this shell"))?;
    Ok(SecretArg {
        env: env.to_string(),
        value: Zeroizing::new(value),
        hosts,
    })
}

fn parse_secret_file(text: &str) -> Result<SecretArg, String> {
    let (left, hosts) = split_hosts(text)?;
    let (env, path) = left.split_once('=').ok_or("write ENV=PATH@HOST")?;
    let mut value = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?);
    if value.ends_with('\n') {
        value.pop();
    }
    Ok(SecretArg {
        env: env.to_string(),
        value,
        hosts,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_split_at_the_last_at_sign() {
        let s = parse_secret("TOKEN=user@pass=x@api.example.com,*.example.org").unwrap();
        assert_eq!(s.env, "TOKEN");
        assert_eq!(s.value.as_str(), "user@pass=x");
        assert_eq!(s.hosts, ["api.example.com", "*.example.org"]);
        assert!(!format!("{s:?}").contains("pass"));
        assert!(parse_secret("TOKEN=v").is_err());
        assert!(parse_secret("TOKEN@h").is_err());
        assert!(parse_secret("TOKEN=v@a,,b").is_err());
        assert!(parse_secret_env("MSB_TEST_SURELY_UNSET_VARIABLE@h").is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let s = parse_secret_file(&format!("KEY={}@h.example", file.display())).unwrap();
        assert_eq!(s.value.as_str(), "from-file");
    }
}
