//! Reading Docker's `config.json` (`auths` only; credential helpers are not run).

use super::{normalize_host, AuthError};
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Default, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// `(normalised host, username, password)` for every usable `auths` entry of the file at
/// `path`, in key order; nothing when the file does not exist.
pub(super) fn entries(path: &Path) -> Result<Vec<(String, String, String)>, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuthError::Io {
                context: "reading Docker config",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let malformed = |reason: String| AuthError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let config: DockerConfig = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
    if let Some(store) = &config.creds_store {
        tracing::debug!(
            "{}: credsStore '{store}' is not supported; only inline `auths` are used",
            path.display()
        );
    }
    for (host, helper) in &config.cred_helpers {
        tracing::debug!(
            "{}: credHelpers entry for {host} ('{helper}') is not supported and is ignored",
            path.display()
        );
    }
    let mut out = Vec::new();
    for (key, entry) in config.auths {
        let Ok(host) = normalize_host(&key) else {
            tracing::debug!("{}: ignoring auths key '{key}': not a registry host", path.display());
            continue;
        };
        match credentials(&entry).map_err(|reason| malformed(format!("auths entry '{key}': {reason}")))? {
            Some((user, pass)) => out.push((host, user, pass)),
            None if entry.identity_token.is_some() => {
                tracing::debug!("{}: identity token for '{key}' is not supported", path.display());
            }
            None => tracing::debug!("{}: auths entry '{key}' holds no credentials", path.display()),
        }
    }
    Ok(out)
}

/// The username and password of one entry: `auth` (base64 of `user:pass`) wins over the
/// separate fields; `None` when the entry has neither.
fn credentials(entry: &DockerAuth) -> Result<Option<(String, String)>, String> {
    if let Some(auth) = entry.auth.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .map_err(|e| format!("`auth` is not base64: {e}"))?;
        let text = String::from_utf8(decoded).map_err(|_| "`auth` does not decode to UTF-8 text".to_string())?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| "`auth` does not decode to 'user:password'".to_string())?;
        return Ok(Some((user.to_string(), pass.to_string())));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some((u.clone(), p.clone()))),
        _ => Ok(None),
    }
}
