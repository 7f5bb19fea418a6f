//! File operations in the guest: what the host asks (`Message::Fs`), and how the agent
//! answers. File contents travel as `Stdin` (host → guest, a write) and `Stdout` (guest →
//! host, a read) under the same credit flow control as a process's streams; a session ends
//! with `FsDone` or `FsFailed`.

use serde::{Deserialize, Serialize};

/// A file operation, as the sandbox's user or as `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsRequest {
    /// What to do.
    pub op: FsOp,
    /// `uid[:gid]` or `name[:group]` to act as; root when absent.
    pub user: Option<String>,
}

/// The operations. Paths are absolute guest paths; none of them follows a symlink in its
/// last component unless it says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsOp {
    /// The entry at `path` itself (lstat).
    Stat {
        /// The path.
        path: String,
    },
    /// The entries of directory `path`, without `.` and `..`, sorted by name.
    List {
        /// The directory.
        path: String,
    },
    /// The contents of file `path` (following symlinks, as `cat`), streamed as `Stdout`.
    Read {
        /// The file.
        path: String,
    },
    /// Creates or truncates file `path` and writes what arrives as `Stdin` until `StdinEof`.
    Write {
        /// The file.
        path: String,
        /// Permission bits of a new file (default 0644; an existing file keeps its own).
        mode: Option<u32>,
        /// Create missing parent directories (0755).
        parents: bool,
    },
    /// Creates directory `path`.
    Mkdir {
        /// The directory.
        path: String,
        /// Permission bits (default 0755).
        mode: Option<u32>,
        /// Create missing parents too, and accept an existing directory (`mkdir -p`).
        parents: bool,
    },
    /// Removes a file, symlink or other non-directory.
    Remove {
        /// The entry.
        path: String,
    },
    /// Removes a directory and everything below it (symlinks inside are removed, never
    /// followed).
    RemoveDir {
        /// The directory.
        path: String,
    },
    /// Renames `from` to `to` (replacing a file at `to`, as rename(2)).
    Rename {
        /// Old path.
        from: String,
        /// New path.
        to: String,
    },
    /// Copies file or tree `from` to `to` inside the guest (modes, symlinks as symlinks).
    Copy {
        /// Source.
        from: String,
        /// Destination; must not exist.
        to: String,
    },
    /// Sets the permission bits of `path` (following symlinks, as chmod(1)).
    Chmod {
        /// The entry.
        path: String,
        /// The bits (up to 0o7777).
        mode: u32,
    },
    /// The target of symlink `path`.
    ReadLink {
        /// The symlink.
        path: String,
    },
    /// Creates symlink `link` pointing at `target` (any text).
    Symlink {
        /// What the link points at.
        target: String,
        /// The new link.
        link: String,
    },
    /// Packs the file or tree at `path` as a tar (see [`crate::tree`]), streamed as
    /// `Stdout`; its first entry is named `root`.
    ReadTree {
        /// The file or tree.
        path: String,
        /// The name of the first entry (`.`: entries relative to `path`).
        root: String,
        /// Pack a file met again under another name as a hard link.
        hard_links: bool,
    },
    /// Unpacks the tar arriving as `Stdin` (until `StdinEof`) into directory `dir`,
    /// created with its missing parents: modes, mtimes, symlinks and hard links kept.
    WriteTree {
        /// Where the entries land.
        dir: String,
        /// Keep the owners the tar names (else the acting user owns everything).
        owners: bool,
    },
    /// Reports changes below `path` as `FsEvent`s (each charged [`FsEvent::cost`] bytes of
    /// stdout credit) until the host sends `StdinEof`.
    Watch {
        /// The directory (or file) watched.
        path: String,
        /// Watch every directory below it too, including ones made later.
        recursive: bool,
    },
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsEvent {
    /// What happened.
    pub kind: FsEventKind,
    /// The entry it happened to (absolute guest path).
    pub path: String,
    /// Whether the entry is a directory.
    pub is_dir: bool,
}

impl FsEvent {
    /// What the event costs of its session's output window, so that a guest cannot flood
    /// the host with events any more than with output.
    pub fn cost(&self) -> u32 {
        32 + self.path.len() as u32
    }
}

/// Kinds of changes (those of E2B's watcher, plus overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsEventKind {
    /// Created, or moved in.
    Create,
    /// Contents written.
    Write,
    /// Removed.
    Remove,
    /// Renamed or moved away (the old name).
    Rename,
    /// Permissions, owner or times changed.
    Chmod,
    /// The guest's kernel dropped events (its queue overflowed): some changes were missed.
    Overflow,
}

impl std::fmt::Display for FsEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FsEventKind::Create => "create",
            FsEventKind::Write => "write",
            FsEventKind::Remove => "remove",
            FsEventKind::Rename => "rename",
            FsEventKind::Chmod => "chmod",
            FsEventKind::Overflow => "overflow",
        })
    }
}

impl FsOp {
    /// The operation's name and its paths, for logs.
    pub fn describe(&self) -> String {
        match self {
            FsOp::Stat { path } => format!("stat {path}"),
            FsOp::List { path } => format!("list {path}"),
            FsOp::Read { path } => format!("read {path}"),
            FsOp::Write { path, .. } => format!("write {path}"),
            FsOp::Mkdir { path, .. } => format!("mkdir {path}"),
            FsOp::Remove { path } => format!("remove {path}"),
            FsOp::RemoveDir { path } => format!("remove-dir {path}"),
            FsOp::Rename { from, to } => format!("rename {from} {to}"),
            FsOp::Copy { from, to } => format!("copy {from} {to}"),
            FsOp::Chmod { path, mode } => format!("chmod {mode:o} {path}"),
            FsOp::ReadLink { path } => format!("readlink {path}"),
            FsOp::Symlink { target, link } => format!("symlink {target} {link}"),
            FsOp::ReadTree { path, .. } => format!("read-tree {path}"),
            FsOp::WriteTree { dir, .. } => format!("write-tree {dir}"),
            FsOp::Watch { path, .. } => format!("watch {path}"),
        }
    }
}

/// What a finished operation answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsReply {
    /// Done; nothing to report (or the data was streamed before).
    Done,
    /// The entry asked about.
    Entry(FsEntry),
    /// The directory's entries.
    Entries(Vec<FsEntry>),
    /// A symlink's target.
    Target(String),
}

/// One directory entry or the entry at a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsEntry {
    /// Its name (the last component of its path).
    pub name: String,
    /// What it is.
    pub kind: FsKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last modification, nanoseconds since the Unix epoch.
    pub modified_ns: i64,
    /// Number of hard links.
    pub nlink: u64,
}

/// Kinds of filesystem entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsFailure {
    /// The class of the failure, for programs to match.
    pub kind: FsErrorKind,
    /// What happened, for people (names the path).
    pub message: String,
}

/// Classes of failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsErrorKind {
    /// Nothing at the path (or a parent is missing).
    NotFound,
    /// A directory where a file was expected.
    IsADirectory,
    /// A non-directory where a directory was expected.
    NotADirectory,
    /// Not allowed.
    PermissionDenied,
    /// Something is already there.
    AlreadyExists,
    /// The directory is not empty.
    NotEmpty,
    /// The filesystem is full (or a quota is reached).
    NoSpace,
    /// The filesystem is read-only.
    ReadOnly,
    /// The path or an argument is not acceptable (relative, NUL, too long …).
    InvalidPath,
    /// Anything else.
    Other,
}

impl std::fmt::Display for FsErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FsErrorKind::NotFound => "not found",
            FsErrorKind::IsADirectory => "is a directory",
            FsErrorKind::NotADirectory => "not a directory",
            FsErrorKind::PermissionDenied => "permission denied",
            FsErrorKind::AlreadyExists => "already exists",
            FsErrorKind::NotEmpty => "directory not empty",
            FsErrorKind::NoSpace => "no space left",
            FsErrorKind::ReadOnly => "read-only filesystem",
            FsErrorKind::InvalidPath => "invalid path",
            FsErrorKind::Other => "failed",
        })
    }
}

impl FsErrorKind {
    /// The class of an OS error number.
    pub fn of_errno(errno: i32) -> FsErrorKind {
        match errno {
            // A symlink where a directory was expected (`O_NOFOLLOW`, too many levels).
            libc::ELOOP => FsErrorKind::NotADirectory,
            e => FsErrorKind::of_io_kind(std::io::Error::from_raw_os_error(e).kind()),
        }
    }

    /// The class of an error by its kind (also for errors that lost their number on the
    /// way, wrapped with a message).
    pub fn of_io_kind(kind: std::io::ErrorKind) -> FsErrorKind {
        use std::io::ErrorKind as K;
        match kind {
            K::NotFound => FsErrorKind::NotFound,
            K::IsADirectory => FsErrorKind::IsADirectory,
            K::NotADirectory => FsErrorKind::NotADirectory,
            K::PermissionDenied => FsErrorKind::PermissionDenied,
            K::AlreadyExists => FsErrorKind::AlreadyExists,
            K::DirectoryNotEmpty => FsErrorKind::NotEmpty,
            K::StorageFull | K::QuotaExceeded => FsErrorKind::NoSpace,
            K::ReadOnlyFilesystem => FsErrorKind::ReadOnly,
            K::InvalidInput | K::InvalidFilename => FsErrorKind::InvalidPath,
            _ => FsErrorKind::Other,
        }
    }
}

impl FsFailure {
    /// The failure of an operation on `what`, classified by its OS error.
    pub fn of_io(what: &str, e: &std::io::Error) -> FsFailure {
        FsFailure {
            kind: e
                .raw_os_error()
                .map_or_else(|| FsErrorKind::of_io_kind(e.kind()), FsErrorKind::of_errno),
            message: format!("{what}: {e}"),
        }
    }
}

/// Checks a guest path as the agent will read it: absolute, no NUL, at most `PATH_MAX`.
/// (`..` is allowed: the guest resolves it in its own filesystem, where it cannot leave.)
pub fn check_path(path: &str) -> Result<(), FsFailure> {
    let bad = |why: &str| FsFailure {
        kind: FsErrorKind::InvalidPath,
        message: format!("{path:?}: {why}"),
    };
    if !path.starts_with('/') {
        return Err(bad("a guest path must be absolute"));
    }
    if path.contains('\0') {
        return Err(bad("a path cannot hold a NUL byte"));
    }
    if path.len() >= 4096 {
        return Err(bad("longer than PATH_MAX"));
    }
    Ok(())
}
