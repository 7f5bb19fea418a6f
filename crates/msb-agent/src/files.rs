//! File operations for the host (`Message::Fs`): metadata and tree operations run on a
//! blocking thread as the asked-for user; a read streams the file as `Stdout` within the
//! host's credit, a write takes `Stdin` chunks and returns their credit once written.

use crate::session::{Active, Credit, Link};
use msb_protocol::fs::check_path;
use msb_protocol::tree::{pack, PackOptions};
use msb_protocol::{FsEntry, FsErrorKind, FsFailure, FsKind, FsOp, FsReply, FsRequest, Message, StreamKind, MAX_CHUNK};
use msb_types::{resolve_user, Identity};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use tokio::sync::mpsc;

type FsResult<T> = Result<T, FsFailure>;

/// Serves one file operation; the session ends with `FsDone` or `FsFailed`.
pub async fn run(link: Link, req: FsRequest, inbox: mpsc::UnboundedReceiver<Message>, _active: Active) {
    let end = match serve(&link, req, inbox).await {
        Ok(reply) => Message::FsDone(reply),
        Err(failure) => Message::FsFailed(failure),
    };
    link.send(end).await;
}

async fn serve(link: &Link, req: FsRequest, inbox: mpsc::UnboundedReceiver<Message>) -> FsResult<FsReply> {
    let who = identity(req.user.as_deref())?;
    match req.op {
        FsOp::Read { path } => {
            check_path(&path)?;
            let file = blocking(who, move || File::open(&path).map_err(|e| failure(&path, e))).await?;
            read_out(link, file, inbox).await?;
            Ok(FsReply::Done)
        }
        FsOp::Write { path, mode, parents } => {
            check_path(&path)?;
            let file = blocking(who, move || create(&path, mode, parents)).await?;
            write_in(link, file, inbox).await?;
            Ok(FsReply::Done)
        }
        FsOp::ReadTree { path, root, hard_links } => {
            check_path(&path)?;
            let (tar, packed) = io::pipe().map_err(|e| failure("making a pipe", e))?;
            let packer = std::thread::spawn(move || {
                acting(who, || {
                    pack(Path::new(&path), &root, PackOptions { hard_links }, packed)
                        .map(drop)
                        .map_err(|e| failure("packing", e))
                })
            });
            read_out(link, tar, inbox).await?;
            // The whole tar was read: the packer has returned, or is returning.
            packer
                .join()
                .unwrap_or_else(|_| Err(kind_failure(FsErrorKind::Other, "packing", "panicked")))?;
            Ok(FsReply::Done)
        }
        FsOp::WriteTree { dir, owners } => {
            check_path(&dir)?;
            let (tar, unpacked) = io::pipe().map_err(|e| failure("making a pipe", e))?;
            let unpacker = std::thread::spawn(move || acting(who, || unpack(tar, &dir, owners)));
            let received = write_in(link, unpacked, inbox).await;
            // The pipe's writing end is closed: the unpacker sees the end of the tar.
            let done = tokio::task::spawn_blocking(move || unpacker.join())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_else(|| Err(kind_failure(FsErrorKind::Other, "unpacking", "panicked")));
            // The unpacker's failure is the cause of a broken pipe, so it is the one told.
            done?;
            received?;
            Ok(FsReply::Done)
        }
        FsOp::Watch { path, recursive } => {
            check_path(&path)?;
            crate::watch::run(link, &path, recursive, who, inbox).await?;
            Ok(FsReply::Done)
        }
        op => blocking(who, move || one_shot(op)).await,
    }
}

/// Unpacks the tar `from` into directory `dir` (made with its parents): modes, mtimes,
/// symlinks and hard links as the tar says, owners only when asked. Directories are made
/// writable first and given their own mode and mtime last, deepest first, so a read-only
/// one still takes its entries and keeps its mtime.
fn unpack(from: impl Read, dir: &str, owners: bool) -> FsResult<()> {
    let mkdir = |path: &Path| {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| failure(&path.to_string_lossy(), e))
    };
    mkdir(Path::new(dir))?;
    let mut archive = tar::Archive::new(from);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(owners);
    archive.set_overwrite(true);
    let mut dirs = Vec::new();
    for entry in archive.entries().map_err(|e| unpack_failure(dir, e))? {
        let mut entry = entry.map_err(|e| unpack_failure(dir, e))?;
        if !entry.header().entry_type().is_dir() {
            entry.unpack_in(dir).map_err(|e| unpack_failure(dir, e))?;
            continue;
        }
        let name = entry.path().map_err(|e| unpack_failure(dir, e))?.into_owned();
        let mut path = Path::new(dir).to_path_buf();
        for part in name.components() {
            match part {
                std::path::Component::Normal(part) => path.push(part),
                std::path::Component::ParentDir => {
                    let why = "a name in the tar leads out of the directory";
                    return Err(kind_failure(FsErrorKind::InvalidPath, &name.to_string_lossy(), why));
                }
                _ => {}
            }
        }
        mkdir(&path)?;
        let h = entry.header();
        let owner = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        dirs.push((path, h.mode().unwrap_or(0o755), h.mtime().unwrap_or(0), owner));
    }
    for (path, mode, mtime, (uid, gid)) in dirs.iter().rev() {
        let shown = path.to_string_lossy();
        if owners {
            std::os::unix::fs::lchown(path, Some(*uid), Some(*gid)).map_err(|e| failure(&shown, e))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| failure(&shown, e))?;
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime);
        File::open(path)
            .and_then(|f| f.set_modified(at))
            .map_err(|e| failure(&shown, e))?;
    }
    Ok(())
}

/// A failure of the tar crate, classified by the OS error it wraps.
fn unpack_failure(dir: &str, e: io::Error) -> FsFailure {
    let errno = e
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|src| src.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
        .or(e.raw_os_error());
    FsFailure {
        kind: errno.map_or_else(|| FsErrorKind::of_io_kind(e.kind()), FsErrorKind::of_errno),
        message: format!("unpacking into {dir}: {e}"),
    }
}

/// Operations that are done in one step.
fn one_shot(op: FsOp) -> FsResult<FsReply> {
    match op {
        FsOp::Stat { path } => {
            check_path(&path)?;
            let meta = fs::symlink_metadata(&path).map_err(|e| failure(&path, e))?;
            Ok(FsReply::Entry(entry(last_name(&path), &meta)))
        }
        FsOp::List { path } => {
            check_path(&path)?;
            let fail = |e| failure(&path, e);
            let mut entries = Vec::new();
            for item in fs::read_dir(&path).map_err(fail)? {
                let item = item.map_err(fail)?;
                let meta = item.metadata().map_err(fail)?;
                entries.push(entry(item.file_name().to_string_lossy().into_owned(), &meta));
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(FsReply::Entries(entries))
        }
        FsOp::Mkdir { path, mode, parents } => {
            check_path(&path)?;
            let mut builder = fs::DirBuilder::new();
            builder.recursive(parents).mode(mode.unwrap_or(0o755) & 0o7777);
            builder.create(&path).map_err(|e| failure(&path, e))?;
            Ok(FsReply::Done)
        }
        FsOp::Remove { path } => {
            check_path(&path)?;
            let meta = fs::symlink_metadata(&path).map_err(|e| failure(&path, e))?;
            if meta.is_dir() {
                return Err(kind_failure(
                    FsErrorKind::IsADirectory,
                    &path,
                    "is a directory (remove_dir, or `msb fs rm -r`, removes one)",
                ));
            }
            fs::remove_file(&path).map_err(|e| failure(&path, e))?;
            Ok(FsReply::Done)
        }
        FsOp::RemoveDir { path } => {
            check_path(&path)?;
            let meta = fs::symlink_metadata(&path).map_err(|e| failure(&path, e))?;
            if !meta.is_dir() {
                return Err(kind_failure(FsErrorKind::NotADirectory, &path, "not a directory"));
            }
            // Symlinks inside are removed, never followed.
            fs::remove_dir_all(&path).map_err(|e| failure(&path, e))?;
            Ok(FsReply::Done)
        }
        FsOp::Rename { from, to } => {
            check_path(&from)?;
            check_path(&to)?;
            fs::rename(&from, &to).map_err(|e| failure(&format!("{from} -> {to}"), e))?;
            Ok(FsReply::Done)
        }
        FsOp::Copy { from, to } => {
            check_path(&from)?;
            check_path(&to)?;
            if fs::symlink_metadata(&to).is_ok() {
                return Err(kind_failure(FsErrorKind::AlreadyExists, &to, "the destination exists"));
            }
            copy_tree(Path::new(&from), Path::new(&to))?;
            Ok(FsReply::Done)
        }
        FsOp::Chmod { path, mode } => {
            check_path(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| failure(&path, e))?;
            Ok(FsReply::Done)
        }
        FsOp::ReadLink { path } => {
            check_path(&path)?;
            let target = fs::read_link(&path).map_err(|e| failure(&path, e))?;
            Ok(FsReply::Target(target.to_string_lossy().into_owned()))
        }
        FsOp::Symlink { target, link } => {
            check_path(&link)?;
            if target.is_empty() || target.contains('\0') {
                return Err(kind_failure(
                    FsErrorKind::InvalidPath,
                    &link,
                    "a symlink target must be non-empty text without NUL",
                ));
            }
            std::os::unix::fs::symlink(&target, &link).map_err(|e| failure(&link, e))?;
            Ok(FsReply::Done)
        }
        FsOp::Read { path }
        | FsOp::Write { path, .. }
        | FsOp::ReadTree { path, .. }
        | FsOp::WriteTree { dir: path, .. }
        | FsOp::Watch { path, .. } => Err(kind_failure(
            FsErrorKind::Other,
            &path,
            "a streamed operation cannot be done in one step",
        )),
    }
}

/// Opens `path` for writing, creating it (and with `parents` its missing directories).
fn create(path: &str, mode: Option<u32>, parents: bool) -> FsResult<File> {
    if parents {
        if let Some(dir) = Path::new(path).parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| failure(&dir.to_string_lossy(), e))?;
        }
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode.unwrap_or(0o644) & 0o7777)
        .open(path)
        .map_err(|e| failure(path, e))
}

/// Streams `file` (a file, or a pipe from a packer) to the host as `Stdout` chunks, each sent only within granted credit.
async fn read_out(
    link: &Link,
    file: impl Read + Send + 'static,
    mut inbox: mpsc::UnboundedReceiver<Message>,
) -> FsResult<()> {
    let credit = Credit::default();
    let window = credit.semaphore(StreamKind::Stdout);
    let ended = window.clone();
    let granted = tokio::task::spawn_local(async move {
        while let Some(msg) = inbox.recv().await {
            if let Message::Signal(_) = msg {
                // The host gave up on the read (its client went away): stop waiting for
                // credit that will never come.
                ended.close();
                return;
            }
            credit.apply(&msg);
        }
    });
    let (chunks, mut rx) = mpsc::channel::<io::Result<Vec<u8>>>(4);
    // Reading happens on a thread of its own, a few chunks ahead of the sending.
    std::thread::spawn(move || {
        let mut file = file;
        loop {
            let mut buf = vec![0u8; MAX_CHUNK];
            let chunk = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(buf)
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if chunks.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    let result = async {
        while let Some(chunk) = rx.recv().await {
            let data = chunk.map_err(|e| failure("reading", e))?;
            let permits = window
                .acquire_many(data.len() as u32)
                .await
                .map_err(|_| kind_failure(FsErrorKind::Other, "reading", "the session ended"))?;
            permits.forget();
            if !link.send(Message::Stdout(data)).await {
                return Err(kind_failure(FsErrorKind::Other, "reading", "the host went away"));
            }
        }
        Ok(())
    }
    .await;
    granted.abort();
    result
}

/// Writes the host's `Stdin` chunks into `file` until `StdinEof`, granting credit for each
/// once it is written.
async fn write_in(
    link: &Link,
    file: impl Write + Send + 'static,
    mut inbox: mpsc::UnboundedReceiver<Message>,
) -> FsResult<()> {
    let mut file = Some(file);
    loop {
        match inbox.recv().await {
            Some(Message::Stdin(data)) => {
                let bytes = data.len() as u32;
                let Some(mut f) = file.take() else {
                    return Err(kind_failure(FsErrorKind::Other, "writing", "an earlier write failed"));
                };
                let (f, written) = tokio::task::spawn_blocking(move || {
                    let written = f.write_all(&data);
                    (f, written)
                })
                .await
                .map_err(|e| kind_failure(FsErrorKind::Other, "writing", &e.to_string()))?;
                written.map_err(|e| failure("writing", e))?;
                file = Some(f);
                link.send(Message::Credit {
                    stream: StreamKind::Stdin,
                    bytes,
                })
                .await;
            }
            Some(Message::StdinEof) => break,
            Some(Message::Signal(_)) => {
                return Err(kind_failure(
                    FsErrorKind::Other,
                    "writing",
                    "the host gave up mid-write",
                ));
            }
            Some(_) => {}
            None => {
                return Err(kind_failure(
                    FsErrorKind::Other,
                    "writing",
                    "the host went away mid-write",
                ))
            }
        }
    }
    Ok(())
}

/// Copies file or tree `from` to `to`: modes kept, symlinks copied as symlinks.
fn copy_tree(from: &Path, to: &Path) -> FsResult<()> {
    let name = |p: &Path| p.to_string_lossy().into_owned();
    let meta = fs::symlink_metadata(from).map_err(|e| failure(&name(from), e))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(from).map_err(|e| failure(&name(from), e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| failure(&name(to), e))?;
    } else if kind.is_dir() {
        fs::DirBuilder::new()
            .mode(meta.mode() & 0o7777)
            .create(to)
            .map_err(|e| failure(&name(to), e))?;
        for item in fs::read_dir(from).map_err(|e| failure(&name(from), e))? {
            let item = item.map_err(|e| failure(&name(from), e))?;
            copy_tree(&item.path(), &to.join(item.file_name()))?;
        }
    } else if kind.is_file() {
        fs::copy(from, to).map_err(|e| failure(&name(to), e))?;
    } else {
        return Err(kind_failure(
            FsErrorKind::Other,
            &name(from),
            "only files, directories and symlinks are copied",
        ));
    }
    Ok(())
}

fn entry(name: String, meta: &fs::Metadata) -> FsEntry {
    let t = meta.file_type();
    let kind = if t.is_symlink() {
        FsKind::Symlink
    } else if t.is_dir() {
        FsKind::Dir
    } else if t.is_file() {
        FsKind::File
    } else {
        FsKind::Other
    };
    FsEntry {
        name,
        kind,
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        modified_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        nlink: meta.nlink(),
    }
}

fn last_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned())
}

/// The failure of an operation on `what`, classified by its OS error.
pub(crate) fn failure(what: &str, e: io::Error) -> FsFailure {
    FsFailure::of_io(what, &e)
}

fn kind_failure(kind: FsErrorKind, what: &str, why: &str) -> FsFailure {
    FsFailure {
        kind,
        message: format!("{what}: {why}"),
    }
}

/// Who an operation acts as: root unless `user` names someone in the guest.
fn identity(user: Option<&str>) -> FsResult<Option<Identity>> {
    let Some(user) = user else { return Ok(None) };
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    let id = resolve_user(user, &passwd, &group)
        .map_err(|e| kind_failure(FsErrorKind::InvalidPath, user, &e.to_string()))?;
    Ok((id.uid != 0).then_some(id))
}

/// Runs `op` on a blocking thread, as `who` for filesystem permission checks.
async fn blocking<T: Send + 'static>(
    who: Option<Identity>,
    op: impl FnOnce() -> FsResult<T> + Send + 'static,
) -> FsResult<T> {
    tokio::task::spawn_blocking(move || acting(who, op))
        .await
        .map_err(|e| kind_failure(FsErrorKind::Other, "the operation", &e.to_string()))?
}

/// Runs `op` on this thread as `who` (root when `None`).
pub(crate) fn acting<T>(who: Option<Identity>, op: impl FnOnce() -> FsResult<T>) -> FsResult<T> {
    match who {
        None => op(),
        Some(id) => as_user(&id, op),
    }
}

/// Runs `op` with this thread's filesystem identity (fsuid, fsgid, groups) set to `id`,
/// and root's again afterwards. Linux keeps these per thread when set by raw system calls,
/// so other threads of the agent keep acting as root.
fn as_user<T>(id: &Identity, op: impl FnOnce() -> FsResult<T>) -> FsResult<T> {
    let set = |uid: u32, gid: u32, groups: &[u32]| {
        // SAFETY: raw per-thread credential calls with valid arguments; `groups` outlives
        // the call.
        unsafe {
            libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr());
            libc::syscall(libc::SYS_setfsgid, gid);
            libc::syscall(libc::SYS_setfsuid, uid);
        }
    };
    set(id.uid, id.gid, &id.groups);
    let result = op();
    set(0, 0, &[]);
    result
}
