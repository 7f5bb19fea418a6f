//! `msb-test/layers`: busybox plus 23 small layers (24 in all, three times the VM's
//! virtio slots), each adding `/layers/N.txt`, overwriting `/layers/top.txt`, and every
//! third one deleting the file the layer before added, so stacking order is visible.

use super::fixtures::{self, busybox_config};
use super::oci::Layout;
use crate::util;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the layers below change.
const RECIPE: &str = "msb-test/layers v1";
/// Layers added on top of busybox.
pub const EXTRA_LAYERS: usize = 23;

/// Builds (or finds cached) the many-layer image on top of the busybox layout's `latest`.
pub fn build(busybox: &Layout, busybox_hash: &str) -> Result<Layout> {
    let hash = fixtures::inputs_hash(&[RECIPE.as_bytes(), busybox_hash.as_bytes()]);
    fixtures::cached("layers", &hash, |layout, work| {
        std::fs::remove_dir_all(&layout.dir).with_context(|| format!("removing {}", layout.dir.display()))?;
        util::run(Command::new("cp").arg("-a").arg(&busybox.dir).arg(&layout.dir))?;
        layout.keep_only(&["latest"])?;
        layout.gc()?;
        for n in 1..=EXTRA_LAYERS {
            let tar = layer(&work.join(format!("l{n}")), n)?;
            layout.add_layer("latest", &tar, &format!("layers: layer {n}"))?;
        }
        layout.config("latest", &busybox_config("layers"))
    })
}

/// The tar of layer `n`, made with GNU tar in `stage`.
fn layer(stage: &Path, n: usize) -> Result<PathBuf> {
    let dir = stage.join("layers");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec!["layers".to_string()];
    let mut add = |name: String, text: String| -> Result<()> {
        std::fs::write(dir.join(&name), text).with_context(|| format!("writing {name}"))?;
        names.push(format!("layers/{name}"));
        Ok(())
    };
    add(format!("{n}.txt"), format!("added by layer {n}\n"))?;
    add("top.txt".into(), format!("layer {n}\n"))?;
    if n.is_multiple_of(3) {
        add(format!(".wh.{}.txt", n - 1), String::new())?;
    }
    let tar = stage.join("layer.tar");
    let mut cmd = Command::new("tar");
    cmd.arg("-C")
        .arg(stage)
        .args([
            "--create",
            "--format=pax",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mode=go-w",
        ])
        .args(["--pax-option=delete=atime,delete=ctime", "--no-recursion", "--file"])
        .arg(&tar)
        .args(&names);
    util::run(&mut cmd)?;
    Ok(tar)
}
