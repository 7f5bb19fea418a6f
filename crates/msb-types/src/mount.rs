//! What a sandbox mounts besides its root: host directories (`-v HOST:GUEST[:ro]`), named
//! volumes (`-v NAME:GUEST[:ro]`) and
//! tmpfs (`--tmpfs GUEST[:size=64m,mode=1777,noexec,ro]`), with the checks every guest
//! mount path must pass before anything boots.

use crate::{Field, SpecError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A mount in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// A host directory, shared over virtio-fs. Read-only is enforced by the host's file
    /// server, not only by a guest mount flag.
    Bind {
        /// The host directory (absolute, canonical once the sandbox is created).
        host: PathBuf,
        /// Where the guest sees it.
        guest: String,
        /// Refuse writes.
        readonly: bool,
    },
    /// A single host file, mounted over a guest path (`-v FILE:GUEST` where FILE is a file).
    /// As with docker, the mount holds the file itself: writes on either side are seen by
    /// the other, but a host program that replaces the file (writes a new one and renames
    /// it over) is not seen. It is shared from a directory holding nothing else.
    File {
        /// The host file (absolute, canonical once the sandbox is created).
        host: PathBuf,
        /// Where the guest sees it.
        guest: String,
        /// Refuse writes (enforced by the host, as for a bind).
        readonly: bool,
    },
    /// A named volume (a directory under `$MSB_HOME/volumes`), shared over virtio-fs;
    /// any number of sandboxes may mount one.
    Volume {
        /// The volume's name.
        name: String,
        /// Where the guest sees it.
        guest: String,
        /// Refuse writes (enforced by the host, as for a bind).
        readonly: bool,
    },
    /// A disk image (raw, qcow2, vmdk: by its extension), its filesystem mounted at a guest
    /// path; the filesystem type is probed in the guest. Also what a sized volume becomes.
    Disk {
        /// The image file on the host (absolute, canonical once the sandbox is created).
        image: PathBuf,
        /// Where the guest sees its filesystem.
        guest: String,
        /// Attached and mounted read-only.
        readonly: bool,
    },
    /// A filesystem in guest memory.
    Tmpfs {
        /// Where the guest sees it.
        guest: String,
        /// Most it may hold, in MiB (default: half the guest's memory, as tmpfs does).
        size_mib: Option<u32>,
        /// Permission bits of its root (default 1777).
        mode: Option<u32>,
        /// Programs on it cannot be run.
        noexec: bool,
        /// Mounted read-only.
        readonly: bool,
    },
}

impl Mount {
    /// Where the guest sees it.
    pub fn guest(&self) -> &str {
        match self {
            Mount::Bind { guest, .. }
            | Mount::File { guest, .. }
            | Mount::Volume { guest, .. }
            | Mount::Disk { guest, .. }
            | Mount::Tmpfs { guest, .. } => guest,
        }
    }

    /// `SOURCE:GUEST[:ro|:rw]` (docker's `-v`): a source starting with `/`, `./` or `../`
    /// (or `.`, `..`) is a host directory; anything else names a volume.
    pub fn parse_volume(text: &str) -> Result<Mount, SpecError> {
        let bad = |why: &str| SpecError::new(Field::Mounts, format!("'{text}': {why}"));
        let (rest, readonly) = access(text);
        let (host, guest) = rest
            .split_once(':')
            .ok_or_else(|| bad("expected HOST:GUEST[:ro] (the guest path is missing)"))?;
        check_guest_path(guest).map_err(|why| bad(&why))?;
        if !is_host_path(host) {
            crate::validate_name(host)
                .map_err(|e| bad(&format!("not a host path (/…, ./…) nor a volume name: {e}")))?;
            return Ok(Mount::Volume {
                name: host.to_string(),
                guest: guest.to_string(),
                readonly,
            });
        }
        Ok(Mount::Bind {
            host: PathBuf::from(host),
            guest: guest.to_string(),
            readonly,
        })
    }

    /// `HOST.img:GUEST[:ro|:rw]` (`--disk`).
    pub fn parse_disk(text: &str) -> Result<Mount, SpecError> {
        let bad = |why: &str| SpecError::new(Field::Mounts, format!("'{text}': {why}"));
        let (rest, readonly) = access(text);
        let (image, guest) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("expected IMAGE:GUEST[:ro] (the guest path is missing)"))?;
        check_guest_path(guest).map_err(|why| bad(&why))?;
        Ok(Mount::Disk {
            image: PathBuf::from(image),
            guest: guest.to_string(),
            readonly,
        })
    }

    /// `GUEST[:opt,opt…]` with `size=64m` (k, m, g), `mode=1777`, `noexec`, `exec`, `ro`,
    /// `rw` (docker's `--tmpfs`).
    pub fn parse_tmpfs(text: &str) -> Result<Mount, SpecError> {
        let bad = |why: String| SpecError::new(Field::Mounts, format!("'{text}': {why}"));
        let (guest, opts) = text.split_once(':').unwrap_or((text, ""));
        check_guest_path(guest).map_err(bad)?;
        let (mut size_mib, mut mode, mut noexec, mut readonly) = (None, None, false, false);
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("size", v)) => size_mib = Some(crate::parse_size_mib(v).map_err(bad)?),
                Some(("mode", v)) => {
                    mode = Some(
                        u32::from_str_radix(v, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or_else(|| bad(format!("mode '{v}' is not octal bits (0-7777)")))?,
                    )
                }
                None if opt == "noexec" => noexec = true,
                None if opt == "exec" => noexec = false,
                None if opt == "ro" => readonly = true,
                None if opt == "rw" => readonly = false,
                _ => {
                    return Err(bad(format!(
                        "unknown option '{opt}' (size=, mode=, noexec, exec, ro, rw)"
                    )))
                }
            }
        }
        Ok(Mount::Tmpfs {
            guest: guest.to_string(),
            size_mib,
            mode,
            noexec,
            readonly,
        })
    }
}

/// `TEXT[:ro|:rw]`: the text before the suffix, and whether it asks for read-only.
fn access(text: &str) -> (&str, bool) {
    match text.rsplit_once(':') {
        Some((rest, "ro")) => (rest, true),
        Some((rest, "rw")) => (rest, false),
        _ => (text, false),
    }
}

/// Whether a `-v` source is a host path rather than a volume name (docker's rule).
pub fn is_host_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with("./") || source.starts_with("../") || source == "." || source == ".."
}

/// A guest mount path must be absolute, without `..` or empty names, not `/` itself, and not
/// on `/proc`, `/sys` or `/dev`, which the agent owns.
pub fn check_guest_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("guest path '{path}' must be absolute"));
    }
    if path.contains('\0') || path.len() >= 4096 {
        return Err("a guest path cannot hold a NUL byte or exceed PATH_MAX".into());
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return Err(format!("guest path '{path}' cannot contain '..'"));
    }
    match parts.first() {
        None => Err("nothing can be mounted over the guest's root '/'".into()),
        Some(&top) if ["proc", "sys", "dev"].contains(&top) => Err(format!(
            "guest path '{path}' is on /{top}, which the guest's kernel and agent own"
        )),
        _ => Ok(()),
    }
}

/// The path as the guest will see it: one `/` between names, no trailing `/`.
pub fn normal_guest_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

/// Checks every mount, and that no two are on one path.
pub fn check_mounts(mounts: &[Mount]) -> Result<(), SpecError> {
    let mut seen = std::collections::HashSet::new();
    for m in mounts {
        check_guest_path(m.guest()).map_err(|why| SpecError::new(Field::Mounts, why))?;
        if !seen.insert(normal_guest_path(m.guest())) {
            return Err(SpecError::new(
                Field::Mounts,
                format!("two mounts on '{}'", normal_guest_path(m.guest())),
            ));
        }
        if let Mount::Volume { name, .. } = m {
            crate::validate_name(name).map_err(|e| SpecError::new(Field::Mounts, format!("volume name: {e}")))?;
        }
        if let Mount::Bind { host, .. } | Mount::File { host, .. } | Mount::Disk { image: host, .. } = m {
            if !host.is_absolute() {
                return Err(SpecError::new(
                    Field::Mounts,
                    format!("host path '{}' must be absolute by now", host.display()),
                ));
            }
        }
        if let Mount::Tmpfs { size_mib: Some(0), .. } = m {
            return Err(SpecError::new(Field::Mounts, "a tmpfs size must be at least 1m"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_as_docker_writes_them() {
        let m = Mount::parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!(
            m,
            Mount::Bind {
                host: "/srv/data".into(),
                guest: "/data".into(),
                readonly: true
            }
        );
        assert!(matches!(
            Mount::parse_volume("./x:/x").unwrap(),
            Mount::Bind { readonly: false, .. }
        ));
        assert!(matches!(
            Mount::parse_volume("./x:/x:rw").unwrap(),
            Mount::Bind { readonly: false, .. }
        ));
        for bad in [
            "/x",
            "/x:relative",
            "/x:/",
            "/x:/proc/y",
            "/x:/a/../b",
            "/x:/dev",
            "bad name:/x",
            "-x:/x",
        ] {
            assert!(Mount::parse_volume(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Mount::parse_volume("cache:/root/.cache:ro").unwrap(),
            Mount::Volume {
                name: "cache".into(),
                guest: "/root/.cache".into(),
                readonly: true
            }
        );
    }

    #[test]
    fn tmpfs_options_parse_and_bad_ones_are_named() {
        let m = Mount::parse_tmpfs("/scratch:size=64m,mode=1777,noexec,ro").unwrap();
        assert_eq!(
            m,
            Mount::Tmpfs {
                guest: "/scratch".into(),
                size_mib: Some(64),
                mode: Some(0o1777),
                noexec: true,
                readonly: true
            }
        );
        assert!(matches!(
            Mount::parse_tmpfs("/t:size=1g").unwrap(),
            Mount::Tmpfs {
                size_mib: Some(1024),
                ..
            }
        ));
        assert!(matches!(
            Mount::parse_tmpfs("/t").unwrap(),
            Mount::Tmpfs { size_mib: None, .. }
        ));
        let err = Mount::parse_tmpfs("/t:fast").unwrap_err().to_string();
        assert!(err.contains("unknown option 'fast'"), "{err}");
        assert!(Mount::parse_tmpfs("/t:size=lots").is_err());
        assert!(Mount::parse_tmpfs("/t:mode=999").is_err());
    }

    #[test]
    fn disks_parse_with_their_access() {
        assert_eq!(
            Mount::parse_disk("/img/data.qcow2:/mnt/d:ro").unwrap(),
            Mount::Disk {
                image: "/img/data.qcow2".into(),
                guest: "/mnt/d".into(),
                readonly: true
            }
        );
        assert!(Mount::parse_disk("/img/a.raw").is_err());
        assert!(Mount::parse_disk("/img/a.raw:/proc").is_err());
    }

    #[test]
    fn two_mounts_on_one_path_are_refused() {
        let mounts = [
            Mount::parse_tmpfs("/data").unwrap(),
            Mount::parse_volume("/srv:/data/").unwrap(),
        ];
        let err = check_mounts(&mounts).unwrap_err().to_string();
        assert!(err.contains("two mounts on '/data'"), "{err}");
        assert!(check_mounts(&[Mount::parse_volume("./rel:/x").unwrap()]).is_err());
    }
}
