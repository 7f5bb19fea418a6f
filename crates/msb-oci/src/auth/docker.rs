//! Reading Docker's `config.json`: its `auths` entries, and the credential helper it names for a host.

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

/// The Docker config at `path` (an empty one when the file does not exist).
fn read(path: &Path) -> Result<DockerConfig, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DockerConfig::default()),
        Err(source) => {
            return Err(AuthError::Io {
                context: "reading Docker config",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The credential helper Docker would ask for `host`: its `credHelpers` entry, else its
/// `credsStore`.
pub(super) fn helper_for(path: &Path, host: &str) -> Result<Option<String>, AuthError> {
    let config = read(path)?;
    let named = config
        .cred_helpers
        .iter()
        .find(|(key, _)| normalize_host(key).is_ok_and(|k| k == host))
        .map(|(_, helper)| helper.clone());
    Ok(named.or(config.creds_store).filter(|h| !h.is_empty()))
}

/// How long a credential helper may take.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks `docker-credential-<helper>` for `host`'s credentials, as Docker does (`get`, the
/// server on stdin, JSON on stdout); `None` when it has none.
pub(super) fn ask_helper(helper: &str, host: &str) -> Result<Option<(String, String)>, AuthError> {
    use std::io::{Read, Write};
    if helper.is_empty() || !helper.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(AuthError::Helper {
            helper: helper.to_string(),
            reason: "not a credential helper name".into(),
        });
    }
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| AuthError::Helper {
        helper: program.clone(),
        reason,
    };
    let child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        // As for a public image on a machine without Docker Desktop's helper: anonymous.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!("{program} is not installed; pulling from {host} without credentials");
            return Ok(None);
        }
        Err(e) => return Err(fail(format!("cannot run it: {e}"))),
    };
    // Docker Hub's credentials are stored under its v1 address.
    let server = if host == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let deadline = std::time::Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| fail(e.to_string()))? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("no answer within {} s", HELPER_TIMEOUT.as_secs())));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(1 << 20).read_to_string(&mut out);
    }
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(4096).read_to_string(&mut err);
    }
    if !status.success() {
        // The helpers' own words for "nothing stored for this server".
        if format!("{out}{err}").contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("{status}: {}", err.trim())));
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: Answer = serde_json::from_str(&out).map_err(|e| fail(format!("unreadable answer: {e}")))?;
    Ok(Some((answer.username, answer.secret)))
}

/// `(normalised host, username, password)` for every usable `auths` entry of the file at
/// `path`, in key order; nothing when the file does not exist.
pub(super) fn entries(path: &Path) -> Result<Vec<(String, String, String)>, AuthError> {
    let malformed = |reason: String| AuthError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let config = read(path)?;
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
