//! The sandbox lock: held by its supervisor for as long as it lives. The kernel drops it
//! when the process dies, however it dies, so "is the lock held" is the liveness test that
//! reconciles a sandbox whose supervisor was killed.

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;
use std::fs::{File, OpenOptions};
use std::path::Path;

const LOCK_FILE: &str = "lock";

/// A held sandbox lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct SandboxLock {
    _file: File,
}

impl SandboxLock {
    /// Takes the lock of the sandbox in `dir`; `None` when another process holds it.
    pub fn try_acquire(dir: &Path) -> std::io::Result<Option<SandboxLock>> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| with_path(e, "opening", &path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(SandboxLock { _file: file })),
            Err(Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(with_path(e.into(), "locking", &path)),
        }
    }

    /// Whether some process (this one included) holds the lock of the sandbox in `dir`.
    pub fn is_held(dir: &Path) -> bool {
        let Ok(file) = File::open(dir.join(LOCK_FILE)) else {
            return false;
        };
        matches!(
            flock(&file, FlockOperation::NonBlockingLockShared),
            Err(Errno::WOULDBLOCK)
        )
    }
}

fn with_path(e: std::io::Error, doing: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!SandboxLock::is_held(dir.path()));
        let held = SandboxLock::try_acquire(dir.path()).unwrap().unwrap();
        assert!(SandboxLock::is_held(dir.path()));
        assert!(SandboxLock::try_acquire(dir.path()).unwrap().is_none());
        drop(held);
        assert!(!SandboxLock::is_held(dir.path()));
        assert!(SandboxLock::try_acquire(dir.path()).unwrap().is_some());
    }
}
