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
    use msb_e2e::fake_registry::{tar_of, Behaviour, FakeRegistry, ImageBuilder, Layer};
    let registry = FakeRegistry::start();
    let image = ImageBuilder::new("test/together", "v1")
        .layer(Layer::tar_gz(&tar_of(&[("etc/one", b"1")])))
        .layer(Layer::tar_gz(&tar_of(&[("etc/two", b"2")])))
        .build();
    registry.serve(&image);
    // The first layer is answered only once both pulls have asked for it: they overlap.
    let held = image.blob_path(&image.layer_digest(0));
    registry.set_behaviour(&held, Behaviour::HoldUntil(2));
    let sb = Sandbox::new();
    let reference = registry.reference(&image);
    let children: Vec<_> = (0..2)
        .map(|_| {
            sb.msb()
                .args(["pull", "-q", &reference])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("msb pull")
        })
        .collect();
    for child in children {
        ok(&child.wait_with_output().expect("msb pull"));
    }
    assert!(
        !registry.requests().iter().any(|r| r.starts_with("HOLD TIMED OUT")),
        "the pulls did not overlap: {:?}",
        registry.requests()
    );
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

/// The EROFS layer files `image` becomes when pulled into a fresh home of its own.
fn layers_of_fresh_pull(image: &str) -> Vec<Vec<u8>> {
    let sb = Sandbox::new();
    ok(&msb(&sb, &["pull", "-q", image]));
    let mut files = layer_files(&sb);
    files.sort();
    files.into_iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn docker_schema2_images_pull_like_oci_ones() {
    let Some(addr) = registry() else { return };
    repush(&addr, "v2s2", &["--format", "v2s2"]);
    let oci = layers_of_fresh_pull(&format!("{addr}/msb-test/busybox:latest"));
    let sb = Sandbox::new();
    let v2s2 = format!("{addr}/msb-test/busybox:v2s2");
    ok(&msb(&sb, &["pull", "-q", &v2s2]));
    let record: serde_json::Value = serde_json::from_str(&ok(&msb(&sb, &["image", "inspect", &v2s2]))).unwrap();
    assert_eq!(
        record["layers"][0]["media_type"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let docker: Vec<Vec<u8>> = layer_files(&sb)
        .into_iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(docker.len(), 1);
    assert!(
        oci == docker,
        "a Docker v2s2 pull made a different EROFS layer than the OCI one"
    );
}

#[test]
fn gzip_zstd_and_uncompressed_layers_give_the_same_layer() {
    let Some(addr) = registry() else { return };
    // Each in a home of its own, so nothing is taken from a cache: every variant is
    // downloaded, decoded and converted.
    let gzip = layers_of_fresh_pull(&format!("{addr}/msb-test/busybox:latest"));
    assert_eq!(gzip.len(), 1);
    for tag in ["zstd", "plain"] {
        let other = layers_of_fresh_pull(&format!("{addr}/msb-test/busybox:{tag}"));
        assert!(
            gzip == other,
            "the {tag} layer converts to different EROFS bytes than the gzip one"
        );
    }
    // Shared in one home: one layer file.
    let sb = Sandbox::new();
    for tag in ["latest", "zstd", "plain"] {
        ok(&msb(&sb, &["pull", "-q", &format!("{addr}/msb-test/busybox:{tag}")]));
    }
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
