//! `cargo xtask setup`: installs the Debian packages and tools the project needs.
//!
//! Every step checks first and does nothing when already done, so `setup` is cheap to run
//! at the start of any other task.

use crate::util;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages for building the guest kernel and images, running VMs and the fixture
/// registry.
const PACKAGES: &[&str] = &[
    // VMM and guest kernel build
    "qemu-system-x86",
    "linux-source-6.12",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "libssl-dev",
    "build-essential",
    // initramfs, test root filesystems and reference format tools
    "cpio",
    "xz-utils",
    "busybox-static",
    "erofs-utils",
    "e2fsprogs",
    // virtiofsd build dependencies (cargo install)
    "libseccomp-dev",
    "libcap-ng-dev",
    // fixture registry and images
    "skopeo",
    "umoci",
    "docker-registry",
    "debootstrap",
    // debootstrap only recommends the keyring that verifies what it downloads
    "debian-archive-keyring",
    "socat",
    // network tests and baselines: namespaces, a client in the test world, passt
    "iproute2",
    "curl",
    "passt",
];

/// Installs every package and tool the project needs (idempotent, fast when done).
pub fn run() -> Result<()> {
    ensure_packages(PACKAGES)?;
    let vfs = virtiofsd()?;
    println!(
        "setup: {} packages present, virtiofsd at {}",
        PACKAGES.len(),
        vfs.display()
    );
    Ok(())
}

/// Installs those of the Debian packages `pkgs` that are not installed yet (no apt call if
/// all are present).
pub fn ensure_packages(pkgs: &[&str]) -> Result<()> {
    let missing = missing_packages(pkgs)?;
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    let sudo = if is_root()? {
        false
    } else if find_in_path("sudo").is_some() {
        true
    } else {
        bail!("packages missing: {list}; not root and no sudo: install them with apt-get as root");
    };
    println!("setup: installing {list}");
    util::run(&mut apt(sudo, &["update"])).context("apt-get update")?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(missing.iter().map(String::as_str));
    util::run(&mut apt(sudo, &install)).with_context(|| format!("installing {list}"))?;
    let still = missing_packages(pkgs)?;
    if !still.is_empty() {
        bail!(
            "apt-get reported success but these are still not installed: {}",
            still.join(" ")
        );
    }
    Ok(())
}

/// Makes sure `virtiofsd` is installed (building it with cargo if needed) and returns its path.
pub fn virtiofsd() -> Result<PathBuf> {
    if let Some(found) = find_virtiofsd() {
        return Ok(found);
    }
    // The crate links libseccomp and libcap-ng and needs a C toolchain for its -sys crates.
    ensure_packages(&["libseccomp-dev", "libcap-ng-dev", "build-essential"])?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("setup: building virtiofsd with `cargo install --locked virtiofsd` (about a minute)");
    util::run(Command::new(cargo).args(["install", "--locked", "virtiofsd"]))
        .context("installing virtiofsd from crates.io")?;
    let installed = cargo_bin().join("virtiofsd");
    if !is_executable(&installed) {
        bail!("cargo install succeeded but {} is not there", installed.display());
    }
    Ok(installed)
}

/// Runs `apt-get ARGS` non-interactively, through sudo when not root.
fn apt(sudo: bool, args: &[&str]) -> Command {
    let mut cmd = if sudo {
        let mut c = Command::new("sudo");
        c.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        c
    } else {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    cmd.args(args);
    cmd
}

/// Returns the packages of `pkgs` that dpkg does not report as "install ok installed".
fn missing_packages(pkgs: &[&str]) -> Result<Vec<String>> {
    if pkgs.is_empty() {
        return Ok(Vec::new());
    }
    // One call for all; dpkg-query exits 1 when some package is unknown, which just means
    // "missing" here, so only a failure to start it is an error.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(pkgs)
        .output()
        .context("running dpkg-query (setup supports Debian and Ubuntu hosts only)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.trim() == "install ok installed")
        .map(|(name, _)| name)
        .collect();
    Ok(pkgs
        .iter()
        .filter(|p| !installed.contains(p))
        .map(|p| (*p).to_string())
        .collect())
}

fn is_root() -> Result<bool> {
    let uid = util::output(Command::new("id").arg("-u"))?;
    Ok(uid.trim() == "0")
}

/// `$CARGO_HOME/bin`, default `~/.cargo/bin`, where `cargo install` puts binaries.
fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

/// The first virtiofsd on PATH or in the usual places that is the Rust implementation.
///
/// QEMU 7.2's legacy C virtiofsd (`/usr/lib/qemu/virtiofsd`, in qemu-system-common) is
/// skipped: it takes `-o source=DIR` instead of `--shared-dir DIR` and is unmaintained.
fn find_virtiofsd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("virtiofsd"))
        .chain([
            cargo_bin().join("virtiofsd"),
            PathBuf::from("/usr/libexec/virtiofsd"),
            PathBuf::from("/usr/lib/qemu/virtiofsd"),
        ])
        .filter(|p| is_executable(p))
        .find(|p| speaks_shared_dir(p))
}

fn speaks_shared_dir(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--shared-dir"))
        .unwrap_or(false)
}

/// The first executable `name` on the PATH.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
