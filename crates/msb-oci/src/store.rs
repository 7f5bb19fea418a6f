//! The layer store: one EROFS image per layer, named by the layer's diff_id.

use crate::OciError;
use std::path::{Path, PathBuf};

/// Directory of EROFS layer images plus a scratch directory on the same file system
/// (so finished layers move into place with an atomic rename).
#[derive(Debug, Clone)]
pub struct LayerStore {
    layers: PathBuf,
    tmp: PathBuf,
}

impl LayerStore {
    /// A store under `cache_dir` (`layers/` and `tmp/`), created if missing.
    pub fn open(cache_dir: &Path) -> Result<Self, OciError> {
        let store = LayerStore {
            layers: cache_dir.join("layers"),
            tmp: cache_dir.join("tmp"),
        };
        for dir in [&store.layers, &store.tmp] {
            std::fs::create_dir_all(dir).map_err(OciError::io(format!("creating {}", dir.display())))?;
        }
        store.remove_stale_parts();
        Ok(store)
    }

    /// Deletes partial layers left by pulls that were killed (their pid is gone).
    fn remove_stale_parts(&self) {
        let Ok(entries) = std::fs::read_dir(&self.tmp) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_suffix(".part")
                .and_then(|n| n.split('.').nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Where the layer with `diff_id` (`sha256:<hex>`) lives.
    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.layers.join(format!("{}.erofs", diff_id.replace(':', "_")))
    }

    /// True when the layer is already converted.
    pub fn has(&self, diff_id: &str) -> bool {
        self.layer_path(diff_id).is_file()
    }

    /// A fresh scratch file path for an in-progress layer.
    pub(crate) fn temp_path(&self, digest: &str) -> PathBuf {
        // `<digest>.<pid>.<n>.part`: the pid lets a later pull recognise leftovers of a dead one.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tmp
            .join(format!("{}.{}.{n}.part", digest.replace(':', "_"), std::process::id()))
    }

    /// Removes the layer file of `diff_id` (when no image uses it any more).
    pub fn remove(&self, diff_id: &str) -> Result<(), OciError> {
        let path = self.layer_path(diff_id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(OciError::io(format!("removing {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }
}
