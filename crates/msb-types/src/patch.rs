//! Patches: changes made to a sandbox's root filesystem before it boots.

use crate::{Field, SpecError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One change to the root filesystem, applied in order before the first boot.
///
/// Guest paths are absolute; missing parent directories are created (0755). Unless
/// `replace` is set, writing over a path that already exists in the rootfs is an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Patch {
    /// A text file (mode 0644 unless given).
    Text {
        /// Guest path.
        path: String,
        /// Contents.
        content: String,
        /// Permission bits.
        mode: Option<u32>,
        /// Allow overwriting an existing path.
        replace: bool,
    },
    /// A file with binary contents (mode 0644 unless given).
    File {
        /// Guest path.
        path: String,
        /// Contents.
        content: Vec<u8>,
        /// Permission bits.
        mode: Option<u32>,
        /// Allow overwriting an existing path.
        replace: bool,
    },
    /// A copy of a host file (the host file's permission bits unless `mode` is given).
    CopyFile {
        /// Host file.
        src: PathBuf,
        /// Guest path.
        dst: String,
        /// Permission bits.
        mode: Option<u32>,
        /// Allow overwriting an existing path.
        replace: bool,
    },
    /// A recursive copy of a host directory (regular files, directories, symlinks).
    CopyDir {
        /// Host directory.
        src: PathBuf,
        /// Guest path.
        dst: String,
        /// Allow overwriting an existing path.
        replace: bool,
    },
    /// A symbolic link at `link` pointing to `target` (stored verbatim).
    Symlink {
        /// What the link points to.
        target: String,
        /// Guest path of the link.
        link: String,
        /// Allow overwriting an existing path.
        replace: bool,
    },
    /// A directory (mode 0755 unless given); nothing happens if one is already there.
    Mkdir {
        /// Guest path.
        path: String,
        /// Permission bits.
        mode: Option<u32>,
    },
    /// Removes a path (recursively); nothing happens if it does not exist.
    Remove {
        /// Guest path.
        path: String,
    },
    /// Appends to an existing regular file.
    Append {
        /// Guest path.
        path: String,
        /// Text to append.
        content: String,
    },
}

/// Why a patch was rejected before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("patch path '{path}' {reason}")]
pub struct GuestPathError {
    /// The path as given (shortened).
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Longest name of one path component (ext4 and EROFS limit).
const MAX_NAME: usize = 255;

/// Splits an absolute guest path into its components, refusing anything that could name a
/// place outside the rootfs or not be stored: relative paths, `/` itself, `..`, NUL bytes,
/// components over 255 bytes. `.` and repeated slashes are dropped.
pub fn guest_path_components(path: &str) -> Result<Vec<&str>, GuestPathError> {
    let err = |reason| GuestPathError {
        path: path.chars().take(200).collect(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(err("must be absolute (start with '/')"));
    }
    if path.contains('\0') {
        return Err(err("contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(err("contains '..': patches cannot reach outside the rootfs")),
            p if p.len() > MAX_NAME => return Err(err("has a component longer than 255 bytes")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(err("names the root itself"));
    }
    Ok(parts)
}

impl Patch {
    /// A text file at `path` (0644, no replacing).
    pub fn text(path: impl Into<String>, content: impl Into<String>) -> Patch {
        Patch::Text {
            path: path.into(),
            content: content.into(),
            mode: None,
            replace: false,
        }
    }

    /// A directory at `path` (0755).
    pub fn mkdir(path: impl Into<String>) -> Patch {
        Patch::Mkdir {
            path: path.into(),
            mode: None,
        }
    }

    /// Removes `path`.
    pub fn remove(path: impl Into<String>) -> Patch {
        Patch::Remove { path: path.into() }
    }

    /// A symlink at `link` pointing to `target` (no replacing).
    pub fn symlink(target: impl Into<String>, link: impl Into<String>) -> Patch {
        Patch::Symlink {
            target: target.into(),
            link: link.into(),
            replace: false,
        }
    }

    /// Appends `content` to the file at `path`.
    pub fn append(path: impl Into<String>, content: impl Into<String>) -> Patch {
        Patch::Append {
            path: path.into(),
            content: content.into(),
        }
    }

    /// A copy of the host file `src` at `dst` (no replacing, the host file's mode).
    pub fn copy_file(src: impl Into<PathBuf>, dst: impl Into<String>) -> Patch {
        Patch::CopyFile {
            src: src.into(),
            dst: dst.into(),
            mode: None,
            replace: false,
        }
    }

    /// A copy of the host directory `src` at `dst` (no replacing).
    pub fn copy_dir(src: impl Into<PathBuf>, dst: impl Into<String>) -> Patch {
        Patch::CopyDir {
            src: src.into(),
            dst: dst.into(),
            replace: false,
        }
    }

    /// The guest path this patch changes.
    pub fn guest_path(&self) -> &str {
        match self {
            Patch::Text { path, .. }
            | Patch::File { path, .. }
            | Patch::Mkdir { path, .. }
            | Patch::Remove { path }
            | Patch::Append { path, .. } => path,
            Patch::CopyFile { dst, .. } | Patch::CopyDir { dst, .. } => dst,
            Patch::Symlink { link, .. } => link,
        }
    }

    /// The same patch with `replace` set (for variants that have it).
    pub fn replacing(mut self) -> Patch {
        match &mut self {
            Patch::Text { replace, .. }
            | Patch::File { replace, .. }
            | Patch::CopyFile { replace, .. }
            | Patch::CopyDir { replace, .. }
            | Patch::Symlink { replace, .. } => *replace = true,
            Patch::Mkdir { .. } | Patch::Remove { .. } | Patch::Append { .. } => {}
        }
        self
    }

    /// The same patch with permission bits `mode` (for variants that have one).
    pub fn with_mode(mut self, new: u32) -> Patch {
        match &mut self {
            Patch::Text { mode, .. }
            | Patch::File { mode, .. }
            | Patch::CopyFile { mode, .. }
            | Patch::Mkdir { mode, .. } => *mode = Some(new),
            Patch::CopyDir { .. } | Patch::Symlink { .. } | Patch::Remove { .. } | Patch::Append { .. } => {}
        }
        self
    }

    /// Checks what can be checked without looking at any filesystem: the guest path,
    /// permission bits, and a symlink target that is neither empty nor holds NUL.
    pub fn validate(&self) -> Result<(), SpecError> {
        let invalid = |problem: String| SpecError::new(Field::Patches, problem);
        guest_path_components(self.guest_path()).map_err(|e| invalid(e.to_string()))?;
        let mode = match self {
            Patch::Text { mode, .. }
            | Patch::File { mode, .. }
            | Patch::CopyFile { mode, .. }
            | Patch::Mkdir { mode, .. } => *mode,
            _ => None,
        };
        if let Some(m) = mode {
            if m > 0o7777 {
                return Err(invalid(format!(
                    "patch {}: mode {m:o} has bits beyond 7777 (give permission bits only)",
                    self.guest_path()
                )));
            }
        }
        if let Patch::Symlink { target, link, .. } = self {
            if target.is_empty() || target.contains('\0') || target.len() > 4095 {
                return Err(invalid(format!(
                    "symlink {link}: the target must be 1-4095 bytes without NUL"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_are_absolute_and_contained() {
        assert_eq!(
            guest_path_components("/etc//app/./x.conf").unwrap(),
            ["etc", "app", "x.conf"]
        );
        for bad in [
            "etc/x",
            "",
            "/",
            "//.",
            "/etc/../x",
            "/..",
            "/a\0b",
            &format!("/{}", "n".repeat(256)),
        ] {
            assert!(guest_path_components(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validate_checks_modes_and_targets() {
        assert!(Patch::text("/a", "x").with_mode(0o4755).validate().is_ok());
        assert!(Patch::text("/a", "x").with_mode(0o10644).validate().is_err());
        assert!(Patch::text("a", "x").validate().is_err());
        assert!(Patch::symlink("", "/l").validate().is_err());
        assert!(Patch::symlink("/etc", "/l").validate().is_ok());
        assert!(Patch::remove("/x/../../etc").validate().is_err());
    }

    #[test]
    fn replacing_and_mode_apply_where_they_exist() {
        assert!(matches!(
            Patch::text("/a", "").replacing(),
            Patch::Text { replace: true, .. }
        ));
        assert_eq!(Patch::remove("/a").replacing(), Patch::remove("/a"));
        assert!(matches!(
            Patch::mkdir("/d").with_mode(0o700),
            Patch::Mkdir { mode: Some(0o700), .. }
        ));
    }
}
