#![no_main]
//! Arbitrary bytes as a tar out of a guest: unpacking returns Ok or Err, and whatever it
//! does stays inside the target; the directory beside it is never touched.

use libfuzzer_sys::fuzz_target;
use msb_rootfs::{unpack_contained, UnpackOptions};
use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|items| items.filter_map(|i| i.ok()).map(|i| i.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let parent = tmp.path().join("parent");
    let outside = tmp.path().join("outside");
    if std::fs::create_dir(&parent).is_err() || std::fs::create_dir(&outside).is_err() {
        return;
    }
    let _ = unpack_contained(&parent.join("target"), data, UnpackOptions::default());
    assert!(names(&outside).is_empty(), "wrote beside the target");
    assert_eq!(names(tmp.path()), ["outside", "parent"], "wrote beside the parent");
    let left = names(&parent);
    assert!(left.is_empty() || left == ["target"], "left {left:?} beside the target");
});
