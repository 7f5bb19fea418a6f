//! `cargo xtask fuzz`: builds every `cargo fuzz` target of the workspace (`crates/*/fuzz`)
//! and runs each for a while. CI runs it for a few seconds per target so the targets cannot
//! rot; longer runs hunt for bugs.
//!
//! The targets are built with the stable toolchain as ordinary libFuzzer binaries (the
//! machines this project runs on have no other toolchain): libFuzzer then mutates without
//! coverage feedback. With `--instrumented` they go through `cargo +nightly fuzz run`, which
//! adds coverage-guided instrumentation, where a nightly toolchain and cargo-fuzz exist.

use crate::{paths, util};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds to run each target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Use `cargo +nightly fuzz run` (coverage-guided; needs nightly and cargo-fuzz).
    #[arg(long)]
    pub instrumented: bool,
}

/// One fuzz target: its crate's fuzz directory and its binary name.
#[derive(Debug, Clone)]
struct Target {
    dir: PathBuf,
    name: String,
}

/// Builds and runs every target for `args.seconds` each; fails on the first crash.
pub fn run(args: &Args) -> Result<()> {
    let targets = targets()?;
    if targets.is_empty() {
        bail!("no fuzz targets found under crates/*/fuzz");
    }
    let target_dir = paths::repo_root().join("target/fuzz");
    for t in &targets {
        let crate_name = t
            .dir
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("fuzz: {crate_name}/{} for {} s", t.name, args.seconds);
        let corpus = t.dir.join("corpus").join(&t.name);
        std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
        let time = format!("-max_total_time={}", args.seconds);
        if args.instrumented {
            util::run(
                Command::new("cargo")
                    .current_dir(&t.dir)
                    .args(["+nightly", "fuzz", "run", &t.name, "--"])
                    .arg(&time),
            )?;
            continue;
        }
        let manifest = t.dir.join("Cargo.toml");
        util::run(
            Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--release", "--bin", &t.name, "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target_dir),
        )?;
        let binary = target_dir.join("release").join(&t.name);
        util::run(
            Command::new(&binary)
                .arg(&time)
                .arg("-print_final_stats=1")
                .arg(&corpus),
        )
        .with_context(|| {
            format!(
                "fuzz target {crate_name}/{} failed (its crash input is in the working directory)",
                t.name
            )
        })?;
    }
    Ok(())
}

/// Every `[[bin]]` of every `crates/*/fuzz/Cargo.toml`.
fn targets() -> Result<Vec<Target>> {
    let crates = paths::repo_root().join("crates");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&crates)
        .with_context(|| format!("listing {}", crates.display()))?
        .flatten()
        .map(|e| e.path().join("fuzz"))
        .filter(|d| d.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
        // `[[bin]]` sections name their target on a `name = "…"` line.
        let mut in_bin = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if let (true, Some(rest)) = (in_bin, line.strip_prefix("name")) {
                let name = rest.trim_start_matches([' ', '=']).trim().trim_matches('"');
                out.push(Target {
                    dir: dir.clone(),
                    name: name.to_string(),
                });
            }
        }
    }
    Ok(out)
}
