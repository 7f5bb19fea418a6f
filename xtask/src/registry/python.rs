//! `msb-test/python`: Debian bookworm minbase + python3 + a tiny app, in three layers.
//!
//! Built with debootstrap from the machine's own Debian mirror, so it needs root and the
//! mirror, takes a few minutes, and is cached per machine. Command output goes to
//! `cache_dir()/registry/fixtures/python.build.log`; progress lines go to stdout.

use super::fixtures::{self, remove_tree};
use super::{mirror, oci::Layout, server};
use crate::{setup, util};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the layers below change.
const RECIPE: &str = "msb-test/python v2";
const SUITE: &str = "bookworm";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const HELLO_PY: &str = r#""""msb-test/python fixture app: greets and echoes its arguments."""
import platform
import sys

print(f"hello from msb-test/python (Python {platform.python_version()})")
if len(sys.argv) > 1:
    print("args:", " ".join(sys.argv[1:]))
"#;

/// Builds (or finds cached) the python image and returns its layout.
pub fn build() -> Result<Layout> {
    let mirror = mirror::debian_mirror(SUITE);
    let hash = fixtures::inputs_hash(&[
        RECIPE.as_bytes(),
        SUITE.as_bytes(),
        mirror.as_bytes(),
        HELLO_PY.as_bytes(),
    ]);
    fixtures::cached("python", &hash, |layout, work| {
        if util::output(Command::new("id").arg("-u"))?.trim() != "0" {
            bail!("building msb-test/python runs debootstrap and chroot: run as root");
        }
        setup::ensure_packages(&["debootstrap"])?;
        let log = server::dir().join("fixtures/python.build.log");
        fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
        println!("registry: python: command output goes to {}", log.display());
        let step = |n: u32, what: &str| println!("registry: python [{n}/3] {what}");
        layout.new_image("latest")?;
        let bundle = work.join("bundle");
        layout.unpack("latest", &bundle)?;
        let root = bundle.join("rootfs");

        step(
            1,
            &format!("debootstrap --variant=minbase {SUITE} from {mirror} (a few minutes)"),
        );
        let t = Instant::now();
        let mut cmd = Command::new("debootstrap");
        cmd.args(["--variant=minbase", SUITE]).arg(&root).arg(&mirror);
        util::logged(&mut cmd, &log)?;
        // Like Docker's debian images: empty /dev, no host resolv.conf or apt leftovers.
        clear_dir(&root.join("dev"))?;
        for leftover in ["etc/resolv.conf", "etc/hostname", "var/log/bootstrap.log"] {
            let _ = fs::remove_file(root.join(leftover));
        }
        clear_dir(&root.join("var/lib/apt/lists"))?;
        clear_dir(&root.join("var/cache/apt/archives"))?;
        println!(
            "registry: python [1/3] debootstrap done in {:.0}s, packing",
            t.elapsed().as_secs_f64()
        );
        layout.repack("latest", &bundle, &format!("debootstrap --variant=minbase {SUITE}"))?;

        step(2, "apt-get install python3 --no-install-recommends (in chroot)");
        let t = Instant::now();
        let chroot = Chroot::enter(&root)?;
        chroot.run("apt-get update", &log)?;
        chroot.run("apt-get install -y --no-install-recommends python3", &log)?;
        chroot.run("apt-get clean", &log)?;
        chroot.leave()?;
        clear_dir(&root.join("var/lib/apt/lists"))?;
        for cache in ["var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"] {
            let _ = fs::remove_file(root.join(cache));
        }
        println!(
            "registry: python [2/3] python3 installed in {:.0}s, packing",
            t.elapsed().as_secs_f64()
        );
        layout.repack("latest", &bundle, "apt-get install python3")?;

        step(3, "app layer /app/hello.py and config");
        fs::create_dir_all(root.join("app"))?;
        fs::write(root.join("app/hello.py"), HELLO_PY).context("writing /app/hello.py")?;
        layout.repack("latest", &bundle, "COPY hello.py /app/")?;
        let config = [
            &format!("--config.env=PATH={PATH}"),
            "--config.cmd=python3",
            "--config.cmd=/app/hello.py",
            "--config.workingdir=/app",
            "--config.user=root",
            "--config.env=PYTHONUNBUFFERED=1",
            "--config.env=LANG=C.UTF-8",
            "--config.label=org.opencontainers.image.title=msb-test/python",
            "--config.label=dev.microsandbox.fixture=python",
            "--author=cargo xtask registry",
        ];
        let args: Vec<String> = config.iter().map(|s| s.to_string()).collect();
        layout.config("latest", &args)
    })
}

/// Removes everything inside `dir`, keeping `dir`, never crossing file systems.
fn clear_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        remove_tree(&entry.with_context(|| format!("listing {}", dir.display()))?.path())?;
    }
    Ok(())
}

/// A rootfs prepared for `chroot`: /proc mounted, a few device nodes, the host's DNS.
/// Undone by `leave` (or, best effort, on drop) so none of it lands in a layer.
struct Chroot {
    root: PathBuf,
    proc_mounted: bool,
}

const DEVICES: &[(&str, &str, &str)] = &[
    ("null", "1", "3"),
    ("zero", "1", "5"),
    ("full", "1", "7"),
    ("random", "1", "8"),
    ("urandom", "1", "9"),
];

impl Chroot {
    fn enter(root: &Path) -> Result<Self> {
        let mut me = Self {
            root: root.to_path_buf(),
            proc_mounted: false,
        };
        for (name, major, minor) in DEVICES {
            let mut cmd = Command::new("mknod");
            cmd.args(["-m", "666"]).arg(root.join("dev").join(name));
            util::run(cmd.args(["c", major, minor]))?;
        }
        fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"))
            .context("copying /etc/resolv.conf into the chroot for apt")?;
        util::run(
            Command::new("mount")
                .args(["-t", "proc", "proc"])
                .arg(root.join("proc")),
        )?;
        me.proc_mounted = true;
        Ok(me)
    }

    /// Runs the shell command `script` inside the chroot with a clean environment.
    fn run(&self, script: &str, log: &Path) -> Result<()> {
        let mut cmd = Command::new("chroot");
        cmd.arg(&self.root)
            .args(["/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", PATH)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LANG", "C.UTF-8")
            .env("HOME", "/root");
        util::logged(&mut cmd, log).with_context(|| format!("in chroot {}: {script}", self.root.display()))
    }

    fn leave(mut self) -> Result<()> {
        self.undo()
    }

    fn undo(&mut self) -> Result<()> {
        if self.proc_mounted {
            util::run(Command::new("umount").arg(self.root.join("proc")))?;
            self.proc_mounted = false;
        }
        clear_dir(&self.root.join("dev"))?;
        let resolv = self.root.join("etc/resolv.conf");
        match fs::remove_file(&resolv) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", resolv.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        if self.proc_mounted {
            let _ = Command::new("umount").arg("-l").arg(self.root.join("proc")).status();
            self.proc_mounted = false;
        }
    }
}
