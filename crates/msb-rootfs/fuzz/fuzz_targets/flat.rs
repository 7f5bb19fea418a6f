#![no_main]
//! Arbitrary bytes as a flat archive (a loaded snapshot's, once out of zstd): unpacking
//! returns Ok or Err; it writes only the files the description allows, each within its
//! limit, and nothing beside its directory.

use libfuzzer_sys::fuzz_target;
use msb_rootfs::{unpack_flat, FlatError};

/// What the test's description allows: the description's first byte picks the limits.
fn members(dir: &std::path::Path) -> Result<Vec<(String, u64)>, FlatError> {
    let description = std::fs::read(dir.join("info.json")).map_err(|e| FlatError(e.to_string()))?;
    match description.first() {
        Some(b'x') => Err(FlatError("refused description".into())),
        first => {
            let limit = u64::from(first.copied().unwrap_or(0)) * 64;
            Ok(vec![("memory.vm".into(), limit), ("upper.ext4".into(), 2 * limit)])
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let dir = tmp.path().join("dir");
    if std::fs::create_dir(&dir).is_err() {
        return;
    }
    let _ = unpack_flat(data, &dir, ("info.json".into(), 4096), members);
    let mut left: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .map(|items| {
            items
                .filter_map(|i| i.ok())
                .map(|i| (i.file_name().to_string_lossy().into_owned(), i.metadata().map_or(0, |m| m.len())))
                .collect()
        })
        .unwrap_or_default();
    left.sort();
    let limit = |name: &str| match name {
        "info.json" => Some(4096),
        "memory.vm" | "upper.ext4" => {
            let first = std::fs::read(dir.join("info.json")).ok().and_then(|d| d.first().copied()).unwrap_or(0);
            Some(u64::from(first) * 64 * if name == "upper.ext4" { 2 } else { 1 })
        }
        _ => None,
    };
    for (name, len) in &left {
        let most = limit(name).unwrap_or_else(|| panic!("wrote {name}"));
        assert!(*len <= most, "{name}: {len} bytes past {most}");
    }
    let beside: Vec<_> = std::fs::read_dir(tmp.path()).map(|i| i.count()).into_iter().collect();
    assert_eq!(beside, [1], "wrote beside the directory");
});
