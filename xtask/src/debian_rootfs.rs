//! `cargo xtask rootfs --debian`: a Debian 12 root filesystem tree with real TLS clients
//! (curl, Python with requests, Node.js) for the VM tests that need more than busybox.
//!
//! Built with debootstrap from the machine's Debian mirror (so it needs root and the
//! mirror; a few minutes), trimmed of docs, man pages, locales, logs and apt's lists and
//! downloads, and cached in `cache_dir()/rootfs/debian` with the hash of its recipe in
//! `.msb-recipe`, so later calls return at once. The build runs under a lock in a scratch
//! directory that is renamed into place only when complete: an interrupted or concurrent
//! build never leaves a partial tree. Tests boot private copies, never this tree.

use crate::registry::{debian_mirror, inputs_hash, remove_tree};
use crate::{paths, setup, util};
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the steps below change in a way the lists do not show.
const RECIPE: &str = "debian-rootfs-v1";
const SUITE: &str = "bookworm";
/// Installed on top of minbase (with their dependencies, not their recommendations).
const PACKAGES: &[&str] = &["curl", "ca-certificates", "python3", "python3-requests", "nodejs"];
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Directories emptied after the build: nothing a program needs at run time.
const TRIMMED: &[&str] = &[
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/log",
    // The agent mounts devtmpfs here.
    "dev",
];
/// The build host's files debootstrap copies in: without a resolv.conf the agent points
/// the guest's resolver at the sandbox's gateway.
const REMOVED: &[&str] = &["etc/resolv.conf", "etc/hostname"];

/// Where the tree lives: `cache_dir()/rootfs/debian`.
pub fn location() -> PathBuf {
    paths::cache_dir().join("rootfs/debian")
}

/// Builds the tree (once; reused while the recipe is unchanged) and returns its path.
pub fn build() -> Result<PathBuf> {
    let dest = location();
    let parent = dest.parent().context("rootfs location has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let hash = recipe_hash();
    let stamp = dest.join(".msb-recipe");
    let fresh = || fs::read_to_string(&stamp).ok().as_deref() == Some(hash.as_str());
    if fresh() {
        return Ok(dest);
    }
    let lock = parent.join("debian.lock");
    let lock = File::create(&lock).with_context(|| format!("opening {}", lock.display()))?;
    lock.lock().context("locking the debian rootfs build")?;
    // Another process may have built it while this one waited.
    if fresh() {
        return Ok(dest);
    }
    if util::output(Command::new("id").arg("-u"))?.trim() != "0" {
        bail!("building the debian rootfs runs debootstrap: run as root");
    }
    setup::ensure_packages(&["debootstrap", "debian-archive-keyring"])?;
    let scratch = parent.join(".debian.build");
    remove_tree(&scratch)?;
    let log = parent.join("debian.build.log");
    let mirror = debian_mirror(SUITE);
    println!(
        "rootfs: debootstrap {SUITE} minbase + {} from {mirror} (a few minutes; output in {})",
        PACKAGES.join(" "),
        log.display()
    );
    let started = Instant::now();
    let mut cmd = Command::new("debootstrap");
    cmd.args(["--variant=minbase", &format!("--include={}", PACKAGES.join(","))])
        .arg(format!("--keyring={KEYRING}"))
        .arg(SUITE)
        .arg(&scratch)
        .arg(&mirror);
    fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
    util::logged(&mut cmd, &log)?;
    trim(&scratch)?;
    fs::write(scratch.join(".msb-recipe"), &hash)?;
    remove_tree(&dest)?;
    fs::rename(&scratch, &dest).with_context(|| format!("moving {} to {}", scratch.display(), dest.display()))?;
    let size = util::output(Command::new("du").args(["-sh", "--apparent-size"]).arg(&dest))?;
    let size = size.split_whitespace().next().unwrap_or("?");
    println!(
        "rootfs: debian built in {:.0}s ({size})",
        started.elapsed().as_secs_f64()
    );
    Ok(dest)
}

/// The cache key: every input that shapes the tree.
fn recipe_hash() -> String {
    let (packages, trimmed, removed) = (PACKAGES.join(","), TRIMMED.join(","), REMOVED.join(","));
    inputs_hash(&[
        RECIPE.as_bytes(),
        SUITE.as_bytes(),
        packages.as_bytes(),
        trimmed.as_bytes(),
        removed.as_bytes(),
    ])
}

/// Empties [`TRIMMED`] (keeping the directories) and deletes [`REMOVED`].
fn trim(root: &Path) -> Result<()> {
    for dir in TRIMMED {
        let dir = root.join(dir);
        let Ok(meta) = fs::metadata(&dir) else { continue };
        remove_tree(&dir)?;
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(&dir, meta.permissions())?;
    }
    for file in REMOVED {
        let path = root.join(file);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => {}
        }
    }
    Ok(())
}
