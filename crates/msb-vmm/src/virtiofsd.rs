//! virtiofsd, the vhost-user daemon that serves a host directory to the guest's virtio-fs.
//!
//! virtiofsd parses requests from a guest whose kernel may be hostile, and its own manual
//! says only its sandbox keeps a subverted virtiofsd from reaching files outside the share
//! through symlinks and other objects. So it always runs walled in, the strongest way this
//! host allows ([`FsSandbox`]).

use crate::child::{connect_when_listening, spawn_owned, Confinement};
use crate::{Share, ShareCache, VmmError};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use tokio::process::{Child, Command};

/// Address space virtiofsd may map: its tables grow with the files the guest looks up,
/// not with the guest's RAM; it measured 0.7 GB with a busybox root.
const VIRTIOFSD_ADDRESS_SPACE: u64 = 8 << 30;

/// How to get virtiofsd.
pub(crate) const HINT: &str =
    "install it with `cargo install --locked virtiofsd` (or run `cargo xtask setup`), or set MSB_VIRTIOFSD";

/// How virtiofsd is walled in on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsSandbox {
    /// Its namespace sandbox: its own mount, pid and net namespaces with the share as its
    /// root (msb runs as root).
    Namespaces,
    /// The same namespaces inside a user namespace that maps only the user's own ids
    /// (msb runs as an ordinary user).
    UserNamespace,
    /// No namespaces (this host does not give ordinary users user namespaces): Landlock
    /// limits it to the system's files, its share and its socket.
    LandlockOnly,
}

impl FsSandbox {
    /// The sandbox virtiofsd gets here, for a process with this effective uid.
    pub fn detect() -> FsSandbox {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            FsSandbox::Namespaces
        } else if user_namespaces_for_everyone() {
            FsSandbox::UserNamespace
        } else {
            FsSandbox::LandlockOnly
        }
    }

    /// What this sandbox keeps a subverted virtiofsd from, in a sentence.
    pub fn describe(self) -> &'static str {
        match self {
            FsSandbox::Namespaces => {
                "virtiofsd sees only the shared directory, in its own mount, pid and net namespaces"
            }
            FsSandbox::UserNamespace => {
                "virtiofsd sees only the shared directory, in its own user, mount, pid and net namespaces"
            }
            FsSandbox::LandlockOnly => {
                "no user namespaces for ordinary users here: Landlock limits virtiofsd to the system's \
                 files and its share, but it shares msb's pid and net namespaces"
            }
        }
    }
}

fn read_number(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether an ordinary user may make user namespaces: some are allowed at all, Debian's
/// switch for unprivileged users is on, and Ubuntu's AppArmor restriction is off (absent
/// switches allow).
pub fn user_namespaces_for_everyone() -> bool {
    read_number("/proc/sys/user/max_user_namespaces").unwrap_or(0) > 0
        && read_number("/proc/sys/kernel/unprivileged_userns_clone").unwrap_or(1) == 1
        && read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").unwrap_or(0) == 0
}

/// Starts virtiofsd for `share` on `socket` and returns it with the one connection it
/// serves (handed to QEMU).
pub(crate) async fn start(
    binary: &Path,
    share: &Share,
    socket: &Path,
    log: &Path,
) -> Result<(Child, UnixStream), VmmError> {
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
    // The namespace sandbox is virtiofsd's default. For an ordinary user it makes a user
    // namespace mapping only the user's own uid and gid, so files keep their owner and
    // the user's rights stay exactly what they were.
    let sandbox = FsSandbox::detect();
    // Landlock forbids mount and pivot_root, which the namespace sandbox is made of, so
    // it confines only a virtiofsd that has no namespaces.
    let ruleset = match sandbox {
        FsSandbox::Namespaces | FsSandbox::UserNamespace => None,
        FsSandbox::LandlockOnly => {
            cmd.arg("--sandbox=none");
            let socket_dir = socket.parent().unwrap_or(Path::new("/"));
            crate::landlock::virtiofsd_ruleset(share, socket_dir)?
        }
    };
    cmd.stdout(std::process::Stdio::null()).stderr(log_file);
    let confinement = Confinement {
        // The namespace sandbox needs root's capabilities to build itself (it drops them
        // after); an ordinary user's virtiofsd has none to drop.
        drop_caps: false,
        landlock: ruleset.as_ref().map(|fd| fd.as_raw_fd()),
        address_space: Some(VIRTIOFSD_ADDRESS_SPACE),
        // Its own: it holds a descriptor per inode the guest has looked up, and sets its
        // limit from the hard one itself.
        open_files: None,
        // Root's, for the namespace sandbox, and to serve files of every owner.
        own_ids: None,
    };
    let spawned = spawn_owned(&mut cmd, "virtiofsd", &[], confinement);
    drop(ruleset);
    let mut child = spawned?;
    let connection = connect_when_listening(socket, &mut child, "virtiofsd", log).await?;
    Ok((child, connection))
}
