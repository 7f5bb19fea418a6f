//! `cargo xtask registry`: a local OCI registry on 127.0.0.1 filled with fixture images, so
//! pull and boot tests run without internet.
//!
//! The registry is Debian's `docker-registry`, started detached and reused across runs;
//! fixtures are built with umoci into cached OCI layouts and pushed with skopeo only when
//! the registry does not already hold the same digest. A lock file serialises concurrent
//! callers (tests may call [`ensure`] in parallel).

mod fixtures;
mod http;
mod layers;
mod mirror;
mod oci;
mod python;
mod server;
mod tricky;

/// Shared with the Debian rootfs build, which debootstraps as the python fixture does.
pub use fixtures::{inputs_hash, remove_tree};
pub use mirror::debian_mirror;

use crate::setup;
use anyhow::{Context, Result};
use std::fs::File;
use std::time::Instant;

/// Options of `cargo xtask registry`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Stop the running registry (its storage is kept).
    #[arg(long)]
    stop: bool,
}

/// Runs the task: ensure registry and fixtures and print a summary, or stop the registry.
pub fn run(args: Args) -> Result<()> {
    let _lock = lock()?;
    if args.stop {
        if server::stop()? {
            println!("registry: stopped");
        } else {
            println!("registry: not running");
        }
        return Ok(());
    }
    let started = Instant::now();
    let (addr, fixtures) = ensure_locked()?;
    println!("registry: {addr} (storage {})", server::dir().join("storage").display());
    for f in &fixtures {
        for tag in &f.tags {
            let desc = f.layout.descriptor(tag)?;
            let digest = desc["digest"].as_str().unwrap_or("?");
            let size = f.layout.total_size(&desc)?;
            let kind = describe(&f.layout, &desc)?;
            let reference = format!("{addr}/{}:{tag}", f.repo);
            println!("  {reference:<44} {digest} {:>9}  {kind}", human(size));
        }
    }
    println!("registry: ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Makes sure the registry runs and holds every fixture; returns its "127.0.0.1:PORT".
pub fn ensure() -> Result<String> {
    let _lock = lock()?;
    ensure_locked().map(|(addr, _)| addr)
}

/// Unpacks fixture `repo` (e.g. `python`; its `latest` tag) into the bundle directory
/// `bundle` with `umoci unpack`, as a reference view of the image's root filesystem.
pub fn unpack_fixture(repo: &str, bundle: &std::path::Path) -> Result<()> {
    let _lock = lock()?;
    let (_, fixtures) = ensure_locked()?;
    let name = format!("msb-test/{repo}");
    let fixture = fixtures
        .iter()
        .find(|f| f.repo == name)
        .with_context(|| format!("no fixture image {name}"))?;
    fixture.layout.unpack("latest", bundle)
}

fn ensure_locked() -> Result<(String, Vec<fixtures::Fixture>)> {
    setup::ensure_packages(&["docker-registry", "skopeo", "umoci"])?;
    let addr = server::ensure_running()?;
    let fixtures = fixtures::build_all()?;
    for f in &fixtures {
        for tag in &f.tags {
            if oci::push(&f.layout, tag, &addr, f.repo)? {
                println!("registry: pushed {}:{tag}", f.repo);
            }
        }
    }
    Ok((addr, fixtures))
}

/// Holds an exclusive lock on `cache_dir()/registry/lock` until dropped.
fn lock() -> Result<File> {
    let dir = server::dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("lock");
    let file = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    file.lock().with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// "linux/amd64, 3 layers" for a manifest, "index: linux/amd64 linux/arm64/v8" for an index.
fn describe(layout: &oci::Layout, desc: &serde_json::Value) -> Result<String> {
    let doc = layout.json_blob(desc)?;
    if desc["mediaType"] == oci::INDEX_TYPE {
        let platforms: Vec<String> = doc["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let p = &m["platform"];
                let base = format!(
                    "{}/{}",
                    p["os"].as_str().unwrap_or("?"),
                    p["architecture"].as_str().unwrap_or("?")
                );
                match p["variant"].as_str() {
                    Some(v) => format!("{base}/{v}"),
                    None => base,
                }
            })
            .collect();
        return Ok(format!("index: {}", platforms.join(" ")));
    }
    let config = layout.json_blob(&doc["config"])?;
    let layers = doc["layers"].as_array().map_or(0, Vec::len);
    Ok(format!(
        "{}/{}, {layers} layer{}",
        config["os"].as_str().unwrap_or("?"),
        config["architecture"].as_str().unwrap_or("?"),
        if layers == 1 { "" } else { "s" }
    ))
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
