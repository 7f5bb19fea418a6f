//! Registry logins: check credentials against a registry and keep them in
//! `$MSB_HOME/credentials.json` (mode 0600) for later pulls.

use crate::image::is_loopback;
use crate::MicrosandboxResult;
use msb_oci::{auth, OciError};
use msb_types::Paths;
use std::path::PathBuf;

pub use msb_oci::auth::{CredentialSource, LoginCheck, StoredLogin};

/// What [`login`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// The registry host as stored (normalised: `docker.io` for Docker Hub).
    pub registry: String,
    /// Whether the registry accepted the credentials or asks for none.
    pub check: LoginCheck,
    /// The file they were saved in.
    pub file: PathBuf,
}

/// Checks `username`/`password` against `host` and saves them only if it accepts them.
/// Loopback registries (and all, when `insecure`) are spoken to over plain HTTP.
pub async fn login(
    paths: &Paths,
    host: &str,
    username: &str,
    password: &str,
    insecure: bool,
) -> MicrosandboxResult<LoginOutcome> {
    let registry = auth::normalize_host(host).map_err(OciError::from)?;
    let insecure = insecure || is_loopback(&registry);
    let check = auth::verify_login(&registry, username, password, insecure)
        .await
        .map_err(OciError::from)?;
    auth::login(paths.home(), &registry, username, password).map_err(OciError::from)?;
    Ok(LoginOutcome {
        registry,
        check,
        file: auth::credentials_path(paths.home()),
    })
}

/// Forgets the saved login to `host`; `false` when msb had none (Docker's own
/// `config.json` is never modified).
pub fn logout(paths: &Paths, host: &str) -> MicrosandboxResult<bool> {
    Ok(auth::logout(paths.home(), host).map_err(OciError::from)?)
}

/// Known logins (msb's, then Docker's `config.json`), without passwords.
pub fn list(paths: &Paths) -> MicrosandboxResult<Vec<StoredLogin>> {
    let docker = crate::env::docker_config(&crate::env::process_var);
    Ok(auth::list(paths.home(), docker.as_deref()).map_err(OciError::from)?)
}

/// The normalised form of a registry host (`index.docker.io` → `docker.io`).
pub fn normalize_host(host: &str) -> MicrosandboxResult<String> {
    Ok(auth::normalize_host(host).map_err(OciError::from)?)
}
