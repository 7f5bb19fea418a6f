//! Timings, not assertions: `cargo test -p msb-ext4 --release --test timing -- --ignored --nocapture`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use msb_ext4::{Dir, Options};

fn best_of(runs: usize, root: &Dir, opts: &Options) -> (Duration, msb_ext4::Stats) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let mut best = Duration::MAX;
    let mut stats = None;
    for _ in 0..runs {
        let out = std::fs::File::create(&path).unwrap();
        let start = Instant::now();
        stats = Some(msb_ext4::write(root, &out, opts).unwrap());
        best = best.min(start.elapsed());
    }
    fsck(&path);
    (best, stats.unwrap())
}

#[test]
#[ignore = "prints timings; run in release"]
fn timing() {
    let mut root = Dir::new(meta(0o755));
    for d in 0..10 {
        root.insert(&[format!("dir{d}").as_bytes()], dir(0o755)).unwrap();
        for i in 0..100 {
            let text = format!("file {d}/{i}\n").repeat(8);
            root.insert(
                &[format!("dir{d}").as_bytes(), format!("f{i}").as_bytes()],
                file(0o644, text.as_bytes()),
            )
            .unwrap();
        }
    }
    let (t, s) = best_of(10, &root, &opts(4 << 30));
    println!(
        "1,000 small files, 4 GiB image: {t:?} ({} bytes written)",
        s.bytes_written
    );
    let (t, s) = best_of(10, &Dir::new(meta(0o755)), &opts(4 << 30));
    println!("empty tree, 4 GiB image: {t:?} ({} bytes written)", s.bytes_written);
    let (t, s) = best_of(3, &Dir::new(meta(0o755)), &opts(100 << 30));
    println!("empty tree, 100 GiB image: {t:?} ({} bytes written)", s.bytes_written);
}
