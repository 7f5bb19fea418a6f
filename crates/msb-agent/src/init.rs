//! Boot-time setup: basic mounts, switching into the root filesystem, hostname and clock.

use msb_protocol::{GuestConfig, GuestMount, RootSource};
use nix::mount::{mount, MsFlags};
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const NEW_ROOT: &str = "/newroot";
/// Where an image root's writable ext4 is mounted (in the initramfs, below the overlay).
const UPPER_MOUNT: &str = "/upperfs";

/// CLOCK_BOOTTIME in nanoseconds: time since the kernel started.
pub fn boottime_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Mounts /dev, /proc and /sys in the initramfs, enough to find the agent port.
pub fn early_mounts() -> io::Result<()> {
    mount_fs("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID, Some("mode=0755"))?;
    mount_fs("proc", "/proc", "proc", nosuid_noexec(), None)?;
    mount_fs("sysfs", "/sys", "sysfs", nosuid_noexec(), None)?;
    Ok(())
}

/// Mounts the root the host asked for, moves the early mounts into it and chroots there.
/// Returns a handle on each writable block-device filesystem it mounted, to freeze them
/// clean at shutdown (they are out of reach by path after the chroot).
pub fn enter_root(config: &GuestConfig) -> io::Result<Vec<File>> {
    let writable = match &config.root {
        RootSource::Overlay { layers, upper } => {
            mount_overlay(*layers, upper)?;
            vec![File::open(UPPER_MOUNT)?]
        }
        RootSource::VirtioFs { tag } => {
            mount_fs(tag, NEW_ROOT, "virtiofs", MsFlags::empty(), None)
                .map_err(|e| io::Error::new(e.kind(), format!("mounting virtio-fs root '{tag}': {e}")))?;
            Vec::new()
        }
        RootSource::Disk { serial, fstype } => {
            mount_disk(&disk_by_serial(serial)?, NEW_ROOT, fstype.as_deref(), MsFlags::empty())?;
            vec![File::open(NEW_ROOT)?]
        }
    };
    let root = Path::new(NEW_ROOT);
    for (dir, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("run", 0o755),
    ] {
        ensure_dir(&root.join(dir), mode)?;
    }
    for dir in ["/dev", "/proc", "/sys"] {
        let target = format!("{NEW_ROOT}{dir}");
        mount(Some(dir), target.as_str(), None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(errno)?;
    }
    std::env::set_current_dir(root)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(errno)?;
    nix::unistd::chroot(".").map_err(errno)?;
    std::env::set_current_dir("/")?;
    late_mounts(config.tmp_mib)?;
    let mut writable = writable;
    for m in &config.mounts {
        writable.extend(user_mount(m)?);
    }
    protect_from_oom();
    if let Err(e) = crate::workload::setup() {
        crate::log(&format!(
            "no workload cgroup ({e}): user processes can starve the agent"
        ));
    }
    Ok(writable)
}

/// PID 1 must outlive any memory hog: the OOM killer never picks it.
fn protect_from_oom() {
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", "-1000") {
        crate::log(&format!("setting oom_score_adj: {e}"));
    }
}

/// Mounts each of the `layers` EROFS layers read-only (a SCSI disk each), the ext4 upper,
/// and overlayfs over them at NEW_ROOT.
fn mount_overlay(layers: u32, upper: &str) -> io::Result<()> {
    let mut dirs = Vec::new();
    for (i, dev) in crate::layers::disks(layers)?.iter().enumerate() {
        // Short names: the whole lowerdir list must fit in one page of mount options.
        let dir = format!("/l/{i}");
        mount_fs(dev, &dir, "erofs", MsFlags::MS_RDONLY, None)?;
        dirs.push(dir);
    }
    mount_fs(&disk_by_serial(upper)?, UPPER_MOUNT, "ext4", MsFlags::MS_NOATIME, None)?;
    for dir in ["/upperfs/upper", "/upperfs/work"] {
        ensure_dir(Path::new(dir), 0o755)?;
    }
    dirs.reverse(); // overlayfs lists the topmost lower first
    let opts = format!(
        "lowerdir={},upperdir=/upperfs/upper,workdir=/upperfs/work",
        dirs.join(":")
    );
    mount_fs("overlay", NEW_ROOT, "overlay", MsFlags::empty(), Some(&opts))
}

/// Mounts the filesystem on disk `dev` at `target`: with the given filesystem type, or the
/// first type the kernel knows that accepts it.
fn mount_disk(dev: &str, target: &str, fstype: Option<&str>, flags: MsFlags) -> io::Result<()> {
    if let Some(fstype) = fstype {
        return mount_fs(dev, target, fstype, flags, None);
    }
    let known = std::fs::read_to_string("/proc/filesystems")?;
    let mut tried = Vec::new();
    for fstype in known.lines().filter(|l| !l.starts_with("nodev")).map(str::trim) {
        match mount_fs(dev, target, fstype, flags, None) {
            Ok(()) => return Ok(()),
            Err(_) => tried.push(fstype),
        }
    }
    // A read-only disk whose ext4 journal needs replaying (its last writer stopped
    // uncleanly) cannot be replayed here: it is read as the journal left it.
    if flags.contains(MsFlags::MS_RDONLY) && mount_fs(dev, target, "ext4", flags, Some("noload")).is_ok() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "no filesystem on disk {dev} could be mounted at {target} (tried {})",
        tried.join(", ")
    )))
}

/// `/dev/vdX` of the virtio-blk disk whose serial is `serial`.
fn disk_by_serial(serial: &str) -> io::Result<String> {
    for entry in std::fs::read_dir("/sys/block")?.flatten() {
        let found = std::fs::read_to_string(entry.path().join("serial")).unwrap_or_default();
        if found.trim() == serial {
            return Ok(format!("/dev/{}", entry.file_name().to_string_lossy()));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no disk with serial {serial}"),
    ))
}

/// The mounts a Linux userland expects below the new root.
fn late_mounts(tmp_mib: Option<u32>) -> io::Result<()> {
    ensure_dir(Path::new("/dev/pts"), 0o755)?;
    ensure_dir(Path::new("/dev/shm"), 0o1777)?;
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        nosuid_noexec(),
        Some("gid=5,mode=0620,ptmxmode=0666"),
    )?;
    mount_fs(
        "shm",
        "/dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    // An image root gets a /tmp in RAM; a directory root keeps the directory's own.
    if let Some(mib) = tmp_mib {
        let opts = format!("mode=1777,size={mib}m");
        mount_fs(
            "tmpfs",
            "/tmp",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(&opts),
        )?;
        if Path::new("/var/tmp").is_dir() {
            std::fs::set_permissions("/var/tmp", std::fs::Permissions::from_mode(0o1777))?;
        }
    }
    mount_fs(
        "tmpfs",
        "/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    if Path::new("/sys/fs/cgroup").is_dir() {
        mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid_noexec(), None)?;
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        if std::fs::symlink_metadata(link).is_err() {
            symlink(target, link)?;
        }
    }
    if std::fs::symlink_metadata("/dev/ptmx").is_err() {
        symlink("pts/ptmx", "/dev/ptmx")?;
    }
    Ok(())
}

/// Where the shares of single-file mounts are mounted, out of the way.
const FILE_SHARES: &str = "/run/msb/file-mounts";

/// One of the sandbox's own mounts (`-v`, `--disk`, `--tmpfs`), its mount point made if
/// missing; a writable disk's filesystem is returned, to be frozen clean at shutdown.
fn user_mount(m: &GuestMount) -> io::Result<Option<File>> {
    let readonly = |ro: bool| if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() };
    match m {
        GuestMount::VirtioFs {
            tag,
            path,
            readonly: ro,
        } => mount_fs(tag, path, "virtiofs", readonly(*ro), None)
            .map(|()| None)
            .map_err(|e| io::Error::new(e.kind(), format!("mounting the host directory for {path}: {e}"))),
        GuestMount::File {
            tag,
            name,
            path,
            readonly: ro,
        } => {
            let share = format!("{FILE_SHARES}/{tag}");
            mount_fs(tag, &share, "virtiofs", readonly(*ro), None)
                .map_err(|e| io::Error::new(e.kind(), format!("mounting the host file for {path}: {e}")))?;
            let target = Path::new(path);
            if std::fs::symlink_metadata(target).is_err() {
                if let Some(dir) = target.parent() {
                    ensure_dir(dir, 0o755)?;
                }
                File::create(target)?;
            }
            let source = format!("{share}/{name}");
            let bind = |flags: MsFlags| {
                mount(Some(source.as_str()), path.as_str(), None::<&str>, flags, None::<&str>)
                    .map_err(|e| io::Error::other(format!("binding the host file over {path}: {e}")))
            };
            bind(MsFlags::MS_BIND)?;
            if *ro {
                bind(MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY)?;
            }
            Ok(None)
        }
        GuestMount::Disk {
            serial,
            path,
            readonly: ro,
        } => {
            mount_disk(&disk_by_serial(serial)?, path, None, readonly(*ro) | MsFlags::MS_NODEV)?;
            Ok((!ro).then(|| File::open(path)).transpose()?)
        }
        GuestMount::Tmpfs {
            path,
            size_mib,
            mode,
            noexec,
            readonly: ro,
        } => {
            let mut opts = format!("mode={:o}", mode.unwrap_or(0o1777));
            if let Some(mib) = size_mib {
                opts.push_str(&format!(",size={mib}m"));
            }
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | readonly(*ro);
            if *noexec {
                flags |= MsFlags::MS_NOEXEC;
            }
            mount_fs("tmpfs", path, "tmpfs", flags, Some(&opts)).map(|()| None)
        }
    }
}

/// Where the sandbox's scripts are, first on every process's PATH.
pub const SCRIPTS_DIR: &str = "/.msb/scripts";

/// Files the guest gets from its configuration: the scripts and the interception CA (on a
/// tmpfs at `/.msb`, so they never land in the root filesystem; the CA also in the system
/// bundles, see `tls`) and, for image roots, `/etc/hostname` and
/// `/etc/hosts` naming the hostname.
pub fn guest_files(config: &GuestConfig) -> io::Result<()> {
    if !config.scripts.is_empty() || config.tls_ca.is_some() {
        mount_fs(
            "tmpfs",
            "/.msb",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        )?;
    }
    if !config.scripts.is_empty() {
        ensure_dir(Path::new(SCRIPTS_DIR), 0o755)?;
        for (name, body) in &config.scripts {
            // Names were checked on the host; a path separator here is refused all the same.
            if name.contains('/') || name.starts_with('.') {
                continue;
            }
            let path = Path::new(SCRIPTS_DIR).join(name);
            std::fs::write(&path, body)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    identity_files(config)?;
    if config.write_identity_files && !config.scripts.is_empty() {
        add_scripts_to_profile(Path::new("/etc/profile"))?;
    }
    if let Some(net) = &config.network {
        crate::net::resolver(Ipv4Addr::from(net.gateway), config.write_identity_files)?;
    }
    Ok(())
}

/// The files that say which sandbox this is and whom it trusts: the interception CA and,
/// for image roots, `/etc/hostname` and `/etc/hosts`. Written again by a guest resumed
/// as a new sandbox (its name and its supervisor's CA are new).
pub fn identity_files(config: &GuestConfig) -> io::Result<()> {
    crate::tls::install(config.tls_ca.as_deref())?;
    if config.write_identity_files {
        ensure_dir(Path::new("/etc"), 0o755)?;
        let name = &config.hostname;
        std::fs::write("/etc/hostname", format!("{name}\n"))?;
        let mut hosts = format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n");
        if let Some(net) = &config.network {
            hosts.push_str(&format!("{}\t{}\n", Ipv4Addr::from(net.gateway), crate::net::HOST_NAME));
        }
        std::fs::write("/etc/hosts", hosts)?;
    }
    Ok(())
}

/// First line of the block that puts the scripts on a login shell's PATH.
const PROFILE_MARK: &str = "# msb: sandbox scripts on PATH";

/// Appends (once: the upper keeps it across boots) a block to `profile` that puts the
/// scripts first on PATH, since login shells set PATH afresh from it.
fn add_scripts_to_profile(profile: &Path) -> io::Result<()> {
    let text = match std::fs::read_to_string(profile) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    if text.lines().any(|line| line == PROFILE_MARK) {
        return Ok(());
    }
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let block = format!(
        "{separator}{PROFILE_MARK}\ncase \":$PATH:\" in *\":{SCRIPTS_DIR}:\"*) ;; *) PATH=\"{SCRIPTS_DIR}:$PATH\"; export PATH ;; esac\n"
    );
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(profile)?;
    std::io::Write::write_all(&mut file, block.as_bytes())
}

/// Sets the hostname and the wall clock from the host's values.
pub fn identity(hostname: &str, host_time: (i64, u32)) -> io::Result<()> {
    nix::unistd::sethostname(hostname).map_err(errno)?;
    let (secs, nanos) = host_time;
    let ts = nix::sys::time::TimeSpec::new(secs, i64::from(nanos));
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts).map_err(errno)?;
    Ok(())
}

fn nosuid_noexec() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
}

fn mount_fs(src: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>) -> io::Result<()> {
    ensure_dir(Path::new(target), 0o755)?;
    mount(Some(src), target, Some(fstype), flags, data)
        .map_err(|e| io::Error::other(format!("mount {fstype} on {target}: {e}")))
}

pub(crate) fn ensure_dir(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(()),
        Err(_) => {
            std::fs::DirBuilder::new().recursive(true).mode(mode).create(path)?;
            // The umask must not weaken sticky or world-writable modes like 1777.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        }
    }
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_block_is_added_once_after_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        std::fs::write(&profile, "export PATH=/bin").unwrap();
        add_scripts_to_profile(&profile).unwrap();
        add_scripts_to_profile(&profile).unwrap();
        let text = std::fs::read_to_string(&profile).unwrap();
        assert!(
            text.starts_with("export PATH=/bin\n# msb: sandbox scripts on PATH\n"),
            "{text}"
        );
        assert_eq!(text.matches(SCRIPTS_DIR).count(), 2, "{text}");
        // A shell that reads it gets the scripts first, once, however often it is read.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". {0}; . {0}; echo $PATH", profile.display()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{SCRIPTS_DIR}:/bin\n"));
        // A missing profile is created.
        let fresh = dir.path().join("fresh");
        add_scripts_to_profile(&fresh).unwrap();
        assert!(std::fs::read_to_string(&fresh).unwrap().starts_with(PROFILE_MARK));
    }
}
