//! Registry credentials: msb's own `credentials.json` (mode 0600) under `$MSB_HOME`, with
//! Docker's `config.json` as a read-only fallback, and anonymous access when neither knows
//! the registry.
//!
//! The file is `{ "registries": { "HOST": { "username": "…", "password": "…" } } }`, keyed
//! by normalised host (see [`normalize_host`]). It is replaced atomically (temp + rename), so
//! a crash leaves the old or the new file, never half of one.

mod docker;
mod verify;

pub use verify::{verify_login, LoginCheck};

use oci_client::secrets::RegistryAuth;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Name of msb's credentials file inside `$MSB_HOME`.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// Errors of reading, writing or checking registry credentials; each names the file or host.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The host name cannot be a registry.
    #[error("invalid registry host '{host}': {reason}")]
    InvalidHost {
        /// What was given.
        host: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A credentials file could not be read or written.
    #[error("{context} {}", path.display())]
    Io {
        /// What was being done ("reading", "writing" …).
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A Docker credential helper failed.
    #[error("the credential helper {helper} failed: {reason}")]
    Helper {
        /// The helper program.
        helper: String,
        /// What went wrong.
        reason: String,
    },
    /// A credentials file is not what it should be.
    #[error("{} is malformed: {reason}; fix or remove it", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The registry refused the username and password.
    #[error("login to {host} failed: the registry rejected user '{username}' with this password; nothing was saved")]
    Rejected {
        /// The registry.
        host: String,
        /// The username tried.
        username: String,
    },
    /// The registry could not be reached or answered something unexpected.
    #[error("login to {host} failed: {reason}; nothing was saved")]
    Failed {
        /// The registry.
        host: String,
        /// What happened.
        reason: String,
    },
}

/// Where a credential comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// msb's own credentials file.
    Msb,
    /// Docker's `config.json`.
    DockerConfig,
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CredentialSource::Msb => "msb",
            CredentialSource::DockerConfig => "docker-config",
        })
    }
}

/// A known login, for display: never carries the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLogin {
    /// Normalised registry host.
    pub registry: String,
    /// The username.
    pub username: String,
    /// Which file it is in.
    pub source: CredentialSource,
}

/// One registry's username and password as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    username: String,
    password: String,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    registries: BTreeMap<String, Entry>,
}

/// The canonical key of a registry host: lower case, without scheme or path, with Docker
/// Hub's aliases (`index.docker.io`, `registry-1.docker.io`) folded into `docker.io`.
pub fn normalize_host(host: &str) -> Result<String, AuthError> {
    let invalid = |reason| AuthError::InvalidHost {
        host: host.to_string(),
        reason,
    };
    let lower = host.trim().to_ascii_lowercase();
    let bare = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    let name = bare.split('/').next().unwrap_or_default();
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
        return Err(invalid("it contains spaces, control characters or '@'"));
    }
    Ok(match name {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    })
}

/// The path of msb's credentials file under `home`.
pub fn credentials_path(home: &Path) -> PathBuf {
    home.join(CREDENTIALS_FILE)
}

fn read_file(home: &Path) -> Result<CredentialsFile, AuthError> {
    let path = credentials_path(home);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CredentialsFile::default()),
        Err(source) => {
            return Err(AuthError::Io {
                context: "reading credentials file",
                path,
                source,
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed {
        path,
        reason: e.to_string(),
    })
}

/// Replaces the file with `file`: a 0600 temp file beside it, synced, then renamed.
fn write_file(home: &Path, file: &CredentialsFile) -> Result<(), AuthError> {
    let path = credentials_path(home);
    let io = |context, path: &Path| {
        let path = path.to_path_buf();
        move |source| AuthError::Io { context, path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .map_err(io("creating directory", home))?;
    let json = serde_json::to_vec_pretty(file).map_err(|e| AuthError::Malformed {
        path: path.clone(),
        reason: format!("cannot encode: {e}"),
    })?;
    let tmp = home.join(format!(".{CREDENTIALS_FILE}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()
        })
        .map_err(io("writing", &tmp))
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(io("replacing credentials file", &path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Saves `username`/`password` for `host` in `home`'s credentials file (replacing any
/// earlier login to it). Does not check them: see [`verify_login`].
pub fn login(home: &Path, host: &str, username: &str, password: &str) -> Result<(), AuthError> {
    let host = normalize_host(host)?;
    if username.is_empty() || password.is_empty() {
        return Err(AuthError::Failed {
            host,
            reason: "the username and the password must not be empty".into(),
        });
    }
    let mut file = read_file(home)?;
    let entry = Entry {
        username: username.to_string(),
        password: password.to_string(),
    };
    file.registries.insert(host, entry);
    write_file(home, &file)
}

/// Forgets the login to `host`; `false` when there was none in msb's file.
pub fn logout(home: &Path, host: &str) -> Result<bool, AuthError> {
    let host = normalize_host(host)?;
    let mut file = read_file(home)?;
    if file.registries.remove(&host).is_none() {
        return Ok(false);
    }
    write_file(home, &file)?;
    Ok(true)
}

/// Known logins: msb's file first, then the entries of Docker's `config.json` at `docker`
/// that msb's file does not override. Passwords are not returned.
pub fn list(home: &Path, docker: Option<&Path>) -> Result<Vec<StoredLogin>, AuthError> {
    let ours = read_file(home)?.registries;
    let mut out: Vec<StoredLogin> = ours
        .iter()
        .map(|(host, e)| StoredLogin {
            registry: host.clone(),
            username: e.username.clone(),
            source: CredentialSource::Msb,
        })
        .collect();
    if let Some(path) = docker {
        for (host, user, _) in docker::entries(path)? {
            if !ours.contains_key(&host) && !out.iter().any(|l| l.registry == host) {
                out.push(StoredLogin {
                    registry: host,
                    username: user,
                    source: CredentialSource::DockerConfig,
                });
            }
        }
    }
    Ok(out)
}

/// Where credentials for a registry may come from, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct AuthSources<'a> {
    /// Given by the caller for this pull (SDK).
    pub explicit: Option<(String, String)>,
    /// From msb's `config.json` entry for the registry (its password already read).
    pub configured: Option<(String, String)>,
    /// `$MSB_HOME`, holding msb's credentials file.
    pub home: Option<&'a Path>,
    /// Docker's `config.json` (`auths`, then `credHelpers`/`credsStore`).
    pub docker_config: Option<&'a Path>,
}

/// Credentials for `registry_host`: the explicit ones, msb's config entry, msb's
/// credentials file, Docker's `auths`, Docker's credential helper, else anonymous.
pub fn resolve(sources: &AuthSources<'_>, registry_host: &str) -> Result<RegistryAuth, AuthError> {
    let host = normalize_host(registry_host)?;
    let basic = |(user, pass): (String, String), from: &str| {
        tracing::debug!(%host, "using credentials from {from}");
        Ok(RegistryAuth::Basic(user, pass))
    };
    if let Some(creds) = sources.explicit.clone() {
        return basic(creds, "the caller");
    }
    if let Some(creds) = sources.configured.clone() {
        return basic(creds, "msb's config.json");
    }
    if let Some(home) = sources.home {
        if let Some(e) = read_file(home)?.registries.remove(&host) {
            return basic((e.username, e.password), &credentials_path(home).display().to_string());
        }
    }
    if let Some(path) = sources.docker_config {
        if let Some((_, user, pass)) = docker::entries(path)?.into_iter().find(|(h, _, _)| *h == host) {
            return basic((user, pass), &path.display().to_string());
        }
        if let Some(helper) = docker::helper_for(path, &host)? {
            if let Some(creds) = docker::ask_helper(&helper, &host)? {
                return basic(creds, &format!("docker-credential-{helper}"));
            }
        }
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests;
