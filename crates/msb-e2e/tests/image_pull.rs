//! `msb pull` and `msb image …` against the local fixture registry (`cargo xtask registry`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{registry, Sandbox};
use std::process::Output;

fn msb(sb: &Sandbox, args: &[&str]) -> Output {
    sb.msb().args(args).output().expect("running msb")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "msb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
