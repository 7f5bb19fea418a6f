//! Fixture images: built once per machine into cached OCI layouts, keyed by a recipe hash.
//!
//! Each fixture lives in `cache_dir()/registry/fixtures/NAME/` (an OCI layout) next to
//! `NAME.stamp`, the hash of its recipe version and inputs. A build happens in a scratch
//! directory and is renamed into place only when complete.

use super::oci::{self, Encoding, Layout};
use super::{layers, python, server, tricky};
use crate::{rootfs, util};
use anyhow::{Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the busybox image recipe below changes.
const BUSYBOX_RECIPE: &str = "msb-test/busybox v2";

/// Config shared by the busybox-based fixtures.
pub const BUSYBOX_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A fixture ready to push: its repository, cached layout, and the tags to push in order.
#[derive(Debug)]
pub struct Fixture {
    /// Repository name in the registry, e.g. `msb-test/busybox`.
    pub repo: &'static str,
    /// The cached OCI layout holding every tag.
    pub layout: Layout,
    /// Tags to push, members of an index before the index.
    pub tags: Vec<&'static str>,
}

/// Builds (or finds cached) every fixture image.
pub fn build_all() -> Result<Vec<Fixture>> {
    let (busybox, busybox_hash) = busybox()?;
    let tricky = tricky::build(&busybox, &busybox_hash)?;
    let python = python::build()?;
    let layers = layers::build(&busybox, &busybox_hash)?;
    Ok(vec![
        Fixture {
            repo: "msb-test/busybox",
            layout: busybox,
            tags: vec!["latest", "arm64-only", "multi", "zstd", "plain"],
        },
        Fixture {
            repo: "msb-test/tricky",
            layout: tricky,
            tags: vec!["latest"],
        },
        Fixture {
            repo: "msb-test/python",
            layout: python,
            tags: vec!["latest"],
        },
        Fixture {
            repo: "msb-test/layers",
            layout: layers,
            tags: vec!["latest"],
        },
    ])
}

/// sha256 over length-prefixed parts, so `["ab","c"]` and `["a","bc"]` differ.
pub fn inputs_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    oci::hex(&h.finalize())
}

/// Returns the cached layout `name` when its stamp equals `hash`; otherwise runs `build`
/// with an empty layout and a scratch directory, then caches the result.
pub fn cached(name: &str, hash: &str, build: impl FnOnce(&Layout, &Path) -> Result<()>) -> Result<Layout> {
    let root = server::dir().join("fixtures");
    let dest = root.join(name);
    let stamp = root.join(format!("{name}.stamp"));
    let stamp_ok = std::fs::read_to_string(&stamp).ok().as_deref() == Some(hash);
    if stamp_ok && dest.join("index.json").is_file() {
        return Ok(Layout { dir: dest });
    }
    let scratch = root.join(format!(".{name}.build"));
    remove_tree(&scratch)?;
    let work = scratch.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    println!("registry: building {name} (cached in {})", dest.display());
    let started = Instant::now();
    let layout = Layout::init(&scratch.join("layout"))?;
    build(&layout, &work).with_context(|| format!("building fixture {name}"))?;
    remove_tree(&dest)?;
    let _ = std::fs::remove_file(&stamp);
    std::fs::rename(&layout.dir, &dest)
        .with_context(|| format!("moving {} to {}", layout.dir.display(), dest.display()))?;
    remove_tree(&scratch)?;
    std::fs::write(&stamp, hash).with_context(|| format!("writing {}", stamp.display()))?;
    println!("registry: built {name} in {:.1}s", started.elapsed().as_secs_f64());
    Ok(Layout { dir: dest })
}

/// Removes `dir` after unmounting anything a crashed build left mounted inside it; never
/// crosses into other file systems.
pub fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    let mut inside: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    inside.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in inside {
        util::run(Command::new("umount").arg("-l").arg(&m))?;
    }
    util::run(Command::new("rm").args(["-rf", "--one-file-system"]).arg(dir))
}

/// `msb-test/busybox`: one layer from busybox-static, plus an arm64-labelled twin and an
/// index over both for platform selection tests. Returns the layout and its inputs hash.
fn busybox() -> Result<(Layout, String)> {
    let tree = rootfs::build()?;
    let recipe = std::fs::read(tree.join(".msb-recipe")).unwrap_or_default();
    let binary = tree.join("bin/busybox");
    let bytes = std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
    let hash = inputs_hash(&[BUSYBOX_RECIPE.as_bytes(), &recipe, &bytes]);
    let layout = cached("busybox", &hash, |layout, work| {
        layout.new_image("latest")?;
        let bundle = work.join("bundle");
        layout.unpack("latest", &bundle)?;
        copy_tree(&tree, &bundle.join("rootfs"))?;
        layout.repack("latest", &bundle, "busybox-static tree (cargo xtask rootfs)")?;
        layout.config("latest", &busybox_config("busybox"))?;
        let arm = ["--architecture=arm64", "--tag=arm64-only"].map(String::from);
        layout.config("latest", &arm)?;
        let arm64 = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
        let amd64 = json!({"architecture": "amd64", "os": "linux"});
        layout.write_platform_index("multi", &[("latest", amd64), ("arm64-only", arm64)])?;
        layout.recompressed("latest", "zstd", Encoding::Zstd)?;
        layout.recompressed("latest", "plain", Encoding::Plain)
    })?;
    Ok((layout, hash))
}

/// `umoci config` flags for a busybox-based image: `sh`, PATH, `FIXTURE=NAME`, labels.
pub fn busybox_config(name: &str) -> Vec<String> {
    [
        "--config.cmd=sh".to_string(),
        format!("--config.env={BUSYBOX_PATH}"),
        format!("--config.env=FIXTURE={name}"),
        "--config.workingdir=/".to_string(),
        format!("--config.label=org.opencontainers.image.title=msb-test/{name}"),
        format!("--config.label=dev.microsandbox.fixture={name}"),
        "--author=cargo xtask registry".to_string(),
    ]
    .to_vec()
}

/// Copies the contents of `from` into `to` preserving everything (`cp -a`), without the
/// rootfs recipe stamp.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let mut src = from.as_os_str().to_owned();
    src.push("/.");
    util::run(Command::new("cp").arg("-a").arg(&src).arg(to))?;
    let stamp = to.join(".msb-recipe");
    if stamp.exists() {
        std::fs::remove_file(&stamp).with_context(|| format!("removing {}", stamp.display()))?;
    }
    Ok(())
}
