//! virtiofsd, the vhost-user daemon that serves a host directory to the guest's virtio-fs.

use crate::child::{spawn_owned, wait_for_path};
use crate::{Share, ShareCache, VmmError};
use std::path::Path;
use tokio::process::{Child, Command};

/// How to get virtiofsd.
pub(crate) const HINT: &str =
    "install it with `cargo install --locked virtiofsd` (or run `cargo xtask setup`), or set MSB_VIRTIOFSD";

/// Starts virtiofsd for `share` on `socket` and waits until it listens.
pub(crate) async fn start(binary: &Path, share: &Share, socket: &Path, log: &Path) -> Result<Child, VmmError> {
    let dir = &share.dir;
    let log_file = std::fs::File::create(log).map_err(VmmError::io(format!("creating {}", log.display())))?;
    let mut cmd = Command::new(binary);
    cmd.arg("--socket-path").arg(socket).arg("--shared-dir").arg(dir);
    // cache=always (the root): the guest keeps file data and metadata cached across opens.
    // With cache=auto every open drops the page cache, so each exec re-reads its binary
    // through FUSE: 75 ms per `/bin/true` under TCG against 7–11 ms (docs/architecture.md).
    // The cost: changes the host makes to the directory while the VM runs may be seen
    // late, so shares others change too (mounts) cache nothing. Guest writes go straight through
    // (no --writeback). xattrs pass through so file capabilities and ACLs survive.
    cmd.arg(match share.cache {
        ShareCache::Always => "--cache=always",
        ShareCache::Never => "--cache=never",
    });
    cmd.args(["--xattr", "--log-level=error"]);
    if share.readonly {
        // Enforced here, on the host: a guest that remounts read-write still cannot write.
        cmd.arg("--readonly");
    }
    // Its namespace sandbox needs root; an unprivileged msb runs it without one.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        cmd.arg("--sandbox=none");
    }
    cmd.stdout(std::process::Stdio::null()).stderr(log_file);
    let mut child = spawn_owned(&mut cmd, "virtiofsd")?;
    wait_for_path(socket, &mut child, "virtiofsd", log).await?;
    Ok(child)
}
