//! Helpers shared by the integration tests: a temporary layout and sample images.
#![allow(dead_code)]

use msb_store::Store;
use msb_types::{ImageConfig, ImageRecord, LayerRecord, Paths, Platform};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// A fresh layout in a temporary directory (kept alive by the returned guard).
pub fn layout() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().join("home"));
    (dir, paths)
}

/// A fresh layout with its store opened.
pub fn store() -> (tempfile::TempDir, Paths, Store) {
    let (dir, paths) = layout();
    let store = Store::open(&paths).unwrap();
    (dir, paths, store)
}

/// A well-formed, deterministic `sha256:` digest derived from `seed`.
pub fn digest(seed: &str) -> String {
    let mut hex = String::from("sha256:");
    for salt in 0..4u8 {
        let mut h = DefaultHasher::new();
        (salt, seed).hash(&mut h);
        hex.push_str(&format!("{:016x}", h.finish()));
    }
    hex
}

/// A layer named `seed`, with sizes derived from its length.
pub fn layer(seed: &str) -> LayerRecord {
    LayerRecord {
        diff_id: digest(&format!("diff {seed}")),
        blob_digest: digest(&format!("blob {seed}")),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        compressed_size: 1000 + seed.len() as u64,
        erofs_size: 4096 * (1 + seed.len() as u64),
    }
}

/// An image under `reference` with layers named by `layers` (bottom first).
pub fn image(reference: &str, manifest_seed: &str, layers: &[&str], created_at: i64) -> ImageRecord {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("org.example.seed".to_string(), manifest_seed.to_string());
    ImageRecord {
        reference: reference.into(),
        manifest_digest: digest(&format!("manifest {manifest_seed}")),
        config_digest: digest(&format!("config {manifest_seed}")),
        platform: "linux/arm64/v8".parse().unwrap(),
        config: ImageConfig {
            env: vec!["PATH=/usr/bin:/bin".into(), format!("SEED={manifest_seed}")],
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: None,
            working_dir: Some("/work".into()),
            user: Some("1000:1000".into()),
            exposed_ports: vec!["80/tcp".into()],
            labels,
            stop_signal: Some("SIGTERM".into()),
        },
        layers: layers.iter().map(|l| layer(l)).collect(),
        created_at,
    }
}

/// The platform used by [`image`].
pub fn platform() -> Platform {
    "linux/arm64/v8".parse().unwrap()
}

/// Diff ids of `layers`, sorted.
pub fn diff_ids(layers: &[LayerRecord]) -> Vec<String> {
    let mut ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    ids.sort();
    ids
}

/// A raw connection to the store's file, for inspecting or sabotaging it.
pub fn raw(paths: &Paths) -> rusqlite::Connection {
    rusqlite::Connection::open(msb_store::db_path(paths)).unwrap()
}
