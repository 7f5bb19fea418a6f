//! A sandbox's secret values: the one place they are kept on the host, outside the state DB.
//!
//! They live in `secrets.json` in the sandbox's directory, mode 0600, written by whoever
//! creates the sandbox and read by its supervisor at each start; removing the sandbox
//! removes the directory and them with it. The file is written under a temporary name made
//! 0600 before a byte goes in, then renamed, so it is never readable by others nor half
//! written. Values are held in [`Zeroizing`] strings and the bytes read are wiped after use.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The file's name in the sandbox's directory.
pub const SECRETS_FILE: &str = "secrets.json";

/// Secret values by the guest variable that holds their placeholder.
#[derive(Default)]
pub struct SecretValues(BTreeMap<String, Zeroizing<String>>);

impl std::fmt::Debug for SecretValues {
    /// Names only: a value must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretValues {
    /// Sets the value of `env`.
    pub fn insert(&mut self, env: impl Into<String>, value: Zeroizing<String>) {
        self.0.insert(env.into(), value);
    }

    /// The value of `env`, if there is one.
    pub fn get(&self, env: &str) -> Option<&Zeroizing<String>> {
        self.0.get(env)
    }

    /// Takes the value of `env` out.
    pub fn take(&mut self, env: &str) -> Option<Zeroizing<String>> {
        self.0.remove(env)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The file's path in sandbox directory `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(SECRETS_FILE)
    }

    /// Writes them into sandbox directory `dir` (replacing any earlier file).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let plain: BTreeMap<&str, &str> = self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let json = Zeroizing::new(serde_json::to_vec(&plain).map_err(io::Error::other)?);
        let temp = dir.join(format!(".{SECRETS_FILE}.tmp"));
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&temp, Self::path(dir))
    }

    /// Reads them from sandbox directory `dir`; none when there is no file.
    pub fn read(dir: &Path) -> io::Result<SecretValues> {
        let bytes = match std::fs::read(Self::path(dir)) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SecretValues::default()),
            Err(e) => return Err(e),
        };
        let plain: BTreeMap<String, String> = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{SECRETS_FILE}: {e}")))?;
        Ok(SecretValues(
            plain.into_iter().map(|(k, v)| (k, Zeroizing::new(v))).collect(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn values_round_trip_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SecretValues::read(dir.path()).unwrap().is_empty());
        let mut values = SecretValues::default();
        values.insert("API_KEY", Zeroizing::new("sk-live-\"quoted\"\n".to_string()));
        values.write(dir.path()).unwrap();
        let mode = std::fs::metadata(SecretValues::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut back = SecretValues::read(dir.path()).unwrap();
        assert_eq!(back.get("API_KEY").unwrap().as_str(), "sk-live-\"quoted\"\n");
        assert_eq!(format!("{back:?}"), r#"{"API_KEY"}"#);
        assert!(back.take("API_KEY").is_some() && back.is_empty());
        std::fs::write(SecretValues::path(dir.path()), "not json").unwrap();
        assert!(SecretValues::read(dir.path()).is_err());
    }
}
