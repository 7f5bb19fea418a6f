//! The server's bearer token: made on the first start, kept 0600 under `$MSB_HOME`, and
//! replaced on request.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where the token lives under `$MSB_HOME`.
pub fn token_path(home: &Path) -> PathBuf {
    home.join("server").join("token")
}

/// The token in use, and whether it was made just now (so it is printed once).
#[derive(Debug)]
pub struct Loaded {
    /// The token.
    pub token: Zeroizing<String>,
    /// It did not exist before.
    pub created: bool,
}

/// Reads the token at `path`, making one when there is none (or `rotate` asks for a new
/// one). A token file readable by others is refused rather than used.
pub fn load_or_create(path: &Path, rotate: bool) -> std::io::Result<Loaded> {
    if !rotate {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mode = std::fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(std::io::Error::other(format!(
                        "{} is readable by others (mode {:o}): chmod 600 it, or rotate the token",
                        path.display(),
                        mode & 0o777
                    )));
                }
                let token = Zeroizing::new(text.trim().to_string());
                if !token.is_empty() {
                    return Ok(Loaded { token, created: false });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let token = Zeroizing::new(format!(
        "msbt_{}",
        microsandbox::random_hex(32).map_err(std::io::Error::other)?
    ));
    write_private(path, token.as_bytes())?;
    Ok(Loaded { token, created: true })
}

/// Writes `bytes` to `path` through a 0600 temporary file renamed over it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("a token path needs a directory"))?;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join(".token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub fn matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_kept_private_and_rotated_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_path(dir.path());
        let first = load_or_create(&path, false).unwrap();
        assert!(first.created && first.token.starts_with("msbt_"));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = load_or_create(&path, false).unwrap();
        assert!(!again.created);
        assert_eq!(*again.token, *first.token);
        let rotated = load_or_create(&path, true).unwrap();
        assert_ne!(*rotated.token, *first.token);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create(&path, false).is_err());
    }

    #[test]
    fn comparison_needs_the_whole_token() {
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abd"));
        assert!(!matches("abc", "ab"));
        assert!(!matches("abc", "abcd"));
        assert!(!matches("abc", ""));
    }
}
