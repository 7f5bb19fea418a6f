//! The crate graph's rules (DESIGN.md), checked over `cargo metadata`: dependencies point
//! down the layer list, and a few edges that would blur a crate's job are forbidden.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

/// Our crates, lowest first: a crate may depend only on crates before it.
const LAYERS: &[&str] = &[
    "msb-types",
    "msb-protocol",
    "msb-envd",
    "msb-erofs",
    "msb-ext4",
    "msb-oci",
    "msb-rootfs",
    "msb-vmm",
    "msb-store",
    "msb-boot",
    "msb-net",
    "msb-supervisor",
    "msb-agent",
    "msb-hostile-agent",
    "microsandbox",
    "msb-server",
    "msb-cli",
];

/// Crates that may use any of ours: tests and project tasks.
const ABOVE_ALL: &[&str] = &["msb-e2e", "xtask"];

/// (crate, the only crates of ours it may use; an empty list: none).
const ONLY: &[(&str, &[&str])] = &[
    ("msb-types", &[]),
    ("msb-protocol", &["msb-types"]),
    ("msb-agent", &["msb-protocol", "msb-types"]),
    // A guest program like the agent, for tests: it speaks the protocol and nothing more.
    ("msb-hostile-agent", &["msb-protocol"]),
    // A wire format only.
    ("msb-envd", &[]),
    // A front door: every sandbox operation goes through the SDK.
    ("msb-server", &["microsandbox", "msb-envd"]),
];

/// (crate, crates of ours it must not use).
const NEVER: &[(&str, &[&str])] = &[
    ("msb-vmm", &["msb-store", "msb-oci", "msb-rootfs"]),
    ("msb-cli", &["msb-vmm", "msb-store"]),
];

/// Each workspace crate and the workspace crates it depends on (normal and build deps).
fn graph() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let ours: Vec<&str> = packages.iter().map(|p| p["name"].as_str().unwrap()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap())
                .filter(|d| ours.contains(d))
                .map(String::from)
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn violations(graph: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (krate, deps) in graph {
        if ABOVE_ALL.contains(&krate.as_str()) {
            continue;
        }
        let Some(level) = LAYERS.iter().position(|l| l == krate) else {
            found.push(format!(
                "{krate} is not in the layer list: place it in LAYERS (and DESIGN.md)"
            ));
            continue;
        };
        for dep in deps {
            match LAYERS.iter().position(|l| l == dep) {
                Some(d) if d < level => {}
                _ => found.push(format!("{krate} -> {dep} points up (or sideways) the layer list")),
            }
        }
        if let Some((_, allowed)) = ONLY.iter().find(|(c, _)| c == krate) {
            for dep in deps.iter().filter(|d| !allowed.contains(&d.as_str())) {
                found.push(format!("{krate} may use only {allowed:?} of ours, but uses {dep}"));
            }
        }
        if let Some((_, banned)) = NEVER.iter().find(|(c, _)| c == krate) {
            for dep in deps.iter().filter(|d| banned.contains(&d.as_str())) {
                found.push(format!("{krate} must not use {dep}"));
            }
        }
    }
    found
}

#[test]
fn the_crate_graph_follows_the_design() {
    let found = violations(&graph());
    assert!(found.is_empty(), "crate graph rules broken:\n  {}", found.join("\n  "));
}

#[test]
fn the_check_catches_forbidden_edges() {
    let mut g = graph();
    g.get_mut("msb-cli").unwrap().push("msb-vmm".into());
    g.get_mut("msb-agent").unwrap().push("msb-store".into());
    g.get_mut("msb-types").unwrap().push("msb-protocol".into());
    g.insert("msb-stray".into(), Vec::new());
    let found = violations(&g).join("\n");
    for expected in [
        "msb-cli must not use msb-vmm",
        "msb-agent may use only",
        "msb-types -> msb-protocol points up",
        "msb-stray is not in the layer list",
    ] {
        assert!(found.contains(expected), "{expected:?} not reported in:\n{found}");
    }
}
