//! `msb pull` and `msb image …` against the local fixture registry (`cargo xtask registry`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::stdout_of as ok;
use msb_e2e::{registry, Sandbox};
use std::process::Output;

fn msb(sb: &Sandbox, args: &[&str]) -> Output {
    sb.msb().args(args).output().expect("running msb")
}

fn images(sb: &Sandbox) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(&msb(sb, &["image", "ls", "--json"]))).expect("json")
}

fn layer_files(sb: &Sandbox) -> Vec<std::path::PathBuf> {
    let dir = sb.home().join("cache/layers");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn pull_converts_layers_that_pass_fsck_and_second_pull_is_cached() {
    let Some(addr) = registry() else { return };
    let sb = Sandbox::new();
    let image = format!("{addr}/msb-test/python");
    let first = ok(&msb(&sb, &["pull", &image]));
    assert!(first.contains("3 layers"), "{first}");
    let files = layer_files(&sb);
    assert_eq!(files.len(), 3);
    for f in &files {
        let status = std::process::Command::new("fsck.erofs")
            .arg(f)
            .output()
            .expect("fsck.erofs");
        assert!(
            status.status.success(),
            "fsck.erofs {}: {}",
            f.display(),
            String::from_utf8_lossy(&status.stdout)
        );
    }
    assert!(ok(&msb(&sb, &["pull", &image])).contains("already cached"));
    let listed = images(&sb);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["reference"], format!("{image}:latest"));
    let inspect: serde_json::Value = serde_json::from_str(&ok(&msb(&sb, &["image", "inspect", &image]))).unwrap();
    assert_eq!(inspect["config"]["working_dir"], "/app");
    assert_eq!(inspect["config"]["cmd"][0], "python3");
    assert!(
        sb.home().join("cache/tmp").read_dir().unwrap().next().is_none(),
        "partial files left behind"
    );
}

#[test]
fn removing_an_image_keeps_layers_another_image_uses() {
    let Some(addr) = registry() else { return };
    let sb = Sandbox::new();
    ok(&msb(&sb, &["pull", &format!("{addr}/msb-test/busybox")]));
    ok(&msb(&sb, &["pull", &format!("{addr}/msb-test/tricky")]));
    let before = layer_files(&sb);
    ok(&msb(&sb, &["image", "rm", &format!("{addr}/msb-test/tricky")]));
    let after = layer_files(&sb);
    assert!(
        after.len() < before.len() && !after.is_empty(),
        "{before:?} -> {after:?}"
    );
    assert_eq!(images(&sb).len(), 1);
    ok(&msb(&sb, &["image", "rm", &format!("{addr}/msb-test/busybox")]));
    assert!(layer_files(&sb).is_empty());
    let again = msb(&sb, &["image", "rm", &format!("{addr}/msb-test/busybox")]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not found locally"));
}

#[test]
fn two_concurrent_pulls_of_one_image_both_succeed() {
    let Some(addr) = registry() else { return };
    let sb = Sandbox::new();
    let image = format!("{addr}/msb-test/tricky");
    let children: Vec<_> = (0..2).map(|_| sb.msb().args(["pull", "-q", &image]).output()).collect();
    for child in children {
        ok(&child.expect("msb pull"));
    }
    let listed = images(&sb);
    assert_eq!(listed.len(), 1);
    for f in layer_files(&sb) {
        assert!(std::process::Command::new("fsck.erofs")
            .arg(&f)
            .status()
            .unwrap()
            .success());
    }
}

#[test]
fn bad_references_give_clear_errors_and_store_nothing() {
    let Some(addr) = registry() else { return };
    let sb = Sandbox::new();
    let cases = [
        (format!("{addr}/msb-test/no-such-image"), "not found"),
        (format!("{addr}/msb-test/busybox:no-such-tag"), "not found"),
        ("127.0.0.1:1/x".to_string(), "cannot reach the registry"),
        ("UPPER/Case".to_string(), "invalid image reference"),
    ];
    for (image, needle) in &cases {
        let out = msb(&sb, &["pull", image]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{image}: {stderr}");
        assert!(stderr.contains(needle), "{image}: expected '{needle}' in {stderr}");
    }
    let out = msb(
        &sb,
        &["pull", "--platform", "linux/arm64", &format!("{addr}/msb-test/busybox")],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no image for linux/arm64"));
    assert!(layer_files(&sb).is_empty());
    assert!(images(&sb).is_empty());
}

/// Re-pushes the busybox fixture under `tag` with extra `skopeo copy` flags.
fn repush(addr: &str, tag: &str, flags: &[&str]) {
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(flags)
        .arg(format!("docker://{addr}/msb-test/busybox:latest"))
        .arg(format!("docker://{addr}/msb-test/busybox:{tag}"))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_schema2_images_pull_like_oci_ones() {
    let Some(addr) = registry() else { return };
    repush(&addr, "v2s2", &["--format", "v2s2"]);
    let sb = Sandbox::new();
    let mut layers = Vec::new();
    for tag in ["latest", "v2s2"] {
        let image = format!("{addr}/msb-test/busybox:{tag}");
        ok(&msb(&sb, &["pull", "-q", &image]));
        let record: serde_json::Value = serde_json::from_str(&ok(&msb(&sb, &["image", "inspect", &image]))).unwrap();
        layers.push(record["layers"][0].clone());
    }
    assert_eq!(layers[0]["diff_id"], layers[1]["diff_id"]);
    assert_eq!(
        layers[1]["media_type"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(layer_files(&sb).len(), 1, "one shared EROFS layer");
}

#[test]
fn gzip_zstd_and_uncompressed_layers_give_the_same_layer() {
    use msb_e2e::fake_registry::{gzip, sha256, tar_of, FakeRegistry, ImageBuilder, Layer};
    let fake = FakeRegistry::start();
    let tar = tar_of(&[("etc/hello", b"hello"), ("bin/tool", b"#!/bin/sh\necho hi\n")]);
    let zstd = zstd::encode_all(&tar[..], 3).expect("zstd");
    let layers = [
        Layer::raw("application/vnd.oci.image.layer.v1.tar+gzip", gzip(&tar), sha256(&tar)),
        Layer::raw("application/vnd.oci.image.layer.v1.tar+zstd", zstd, sha256(&tar)),
        Layer::raw("application/vnd.oci.image.layer.v1.tar", tar.clone(), sha256(&tar)),
    ];
    let sb = Sandbox::new();
    for (i, layer) in layers.into_iter().enumerate() {
        let image = ImageBuilder::new("test/compression", &format!("v{i}"))
            .layer(layer)
            .build();
        fake.serve(&image);
        ok(&msb(&sb, &["pull", "-q", &fake.reference(&image)]));
    }
    assert_eq!(images(&sb).len(), 3);
    assert_eq!(layer_files(&sb).len(), 1, "one EROFS layer shared by all three");
}

#[test]
fn an_index_resolves_to_the_requested_platform() {
    let Some(addr) = registry() else { return };
    let sb = Sandbox::new();
    let image = format!("{addr}/msb-test/busybox:multi");
    ok(&msb(&sb, &["pull", "-q", &image]));
    let amd: serde_json::Value = serde_json::from_str(&ok(&msb(&sb, &["image", "inspect", &image]))).unwrap();
    assert_eq!(amd["platform"]["architecture"], "amd64");
    ok(&msb(&sb, &["pull", "-q", "--platform", "linux/arm64", &image]));
    let arm: serde_json::Value = serde_json::from_str(&ok(&msb(&sb, &["image", "inspect", &image]))).unwrap();
    assert_eq!(arm["platform"]["architecture"], "arm64");
    assert_ne!(amd["manifest_digest"], arm["manifest_digest"]);
    let bad = msb(&sb, &["pull", "--platform", "linux/s390x", &image]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("available: linux/amd64, linux/arm64"));
}
