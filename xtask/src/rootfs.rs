//! A small root filesystem made from Debian's busybox-static, for the demo and the VM tests.

use crate::{paths, setup, util};
use anyhow::{Context, Result};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the layout below changes, so cached trees are rebuilt.
const RECIPE: &str = "busybox-rootfs-v1";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nstaff:x:50:alice\nalice:x:1000:\nnogroup:x:65534:\n";

/// Where the tree lives: `cache_dir()/rootfs/busybox`.
pub fn location() -> PathBuf {
    paths::cache_dir().join("rootfs/busybox")
}

/// Builds the tree (once; reused while the recipe is unchanged) and returns its path.
pub fn build() -> Result<PathBuf> {
    let dest = location();
    let stamp = dest.join(".msb-recipe");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(RECIPE) {
        return Ok(dest);
    }
    setup::ensure_packages(&["busybox-static"])?;
    let parent = dest.parent().context("rootfs location has no parent")?;
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".busybox.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    populate(&tmp).with_context(|| format!("building {}", tmp.display()))?;
    std::fs::write(tmp.join(".msb-recipe"), RECIPE)?;
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&tmp, &dest)?;
    println!("rootfs: {}", dest.display());
    Ok(dest)
}

fn populate(root: &Path) -> Result<()> {
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("run", 0o755),
        ("root", 0o700),
        ("home/alice", 0o755),
        ("var/tmp", 0o1777),
    ] {
        let p = root.join(dir);
        std::fs::create_dir_all(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    }
    std::os::unix::fs::chown(root.join("home/alice"), Some(1000), Some(1000))?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("copying /bin/busybox")?;
    let list = util::output(Command::new("/bin/busybox").arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = root.join(applet);
        if applet == "bin/busybox" || link.exists() {
            continue;
        }
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        symlink(target, &link).with_context(|| format!("linking {applet}"))?;
    }
    std::fs::write(root.join("etc/passwd"), PASSWD)?;
    std::fs::write(root.join("etc/group"), GROUP)?;
    std::fs::write(root.join("etc/hostname"), "msb\n")?;
    Ok(())
}
