//! envd's `filesystem.Filesystem` service over the SDK's file operations: Stat, ListDir
//! (to a depth), MakeDir, Move and Remove. Directory watchers answer `unimplemented`.

use super::connect::{unary, unimplemented, Code, ConnectError};
use super::envd::Envd;
use super::state::E2bShared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use microsandbox::{ErrorKind, FsEntry, FsKind, MicrosandboxError, SandboxFs};
use msb_envd::filesystem::*;

/// The deepest listing we walk (E2B's clients ask for 1 unless told otherwise).
const MAX_DEPTH: u32 = 32;
/// The most entries one listing returns.
const MAX_ENTRIES: usize = 100_000;

/// `Stat`.
pub async fn stat(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |request: StatRequest| async move {
        let envd = Envd::of(state, headers).await?;
        let path = envd.path(&request.path)?;
        let entry = entry_at(&envd.sandbox.fs(), &path).await?;
        Ok(StatResponse { entry: Some(entry) })
    })
    .await
}

/// `ListDir`: the entries below a directory, `depth` levels deep (at least one).
pub async fn list_dir(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |request: ListDirRequest| async move {
        let envd = Envd::of(state, headers).await?;
        let root = envd.path(&request.path)?;
        let fs = envd.sandbox.fs();
        if fs.stat(&root).await.map_err(fs_error)?.kind != FsKind::Dir {
            return Err(ConnectError::new(
                Code::InvalidArgument,
                format!("{root} is not a directory"),
            ));
        }
        let depth = request.depth.clamp(1, MAX_DEPTH);
        let mut entries = Vec::new();
        let mut level = vec![root];
        for _ in 0..depth {
            let mut next = Vec::new();
            for dir in level {
                for found in fs.list(&dir).await.map_err(fs_error)? {
                    let path = join(&dir, &found.name);
                    if found.kind == FsKind::Dir {
                        next.push(path.clone());
                    }
                    entries.push(entry_info(&fs, found, path).await);
                    if entries.len() > MAX_ENTRIES {
                        return Err(ConnectError::new(
                            Code::FailedPrecondition,
                            format!("the listing has more than {MAX_ENTRIES} entries; list less deep"),
                        ));
                    }
                }
            }
            level = next;
        }
        Ok(ListDirResponse { entries })
    })
    .await
}

/// `MakeDir`: a directory and its missing parents; `already_exists` when it is there.
pub async fn make_dir(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |request: MakeDirRequest| async move {
        let envd = Envd::of(state, headers).await?;
        let path = envd.path(&request.path)?;
        let fs = envd.sandbox.fs();
        if let Ok(existing) = fs.stat(&path).await {
            let what = if existing.kind == FsKind::Dir {
                "directory"
            } else {
                "file"
            };
            return Err(ConnectError::new(
                Code::AlreadyExists,
                format!("{what} {path} already exists"),
            ));
        }
        fs.mkdir(&path).await.map_err(fs_error)?;
        Ok(MakeDirResponse {
            entry: Some(entry_at(&fs, &path).await?),
        })
    })
    .await
}

/// `Move`: a rename; answers with the entry at its new path.
pub async fn rename(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |request: MoveRequest| async move {
        let envd = Envd::of(state, headers).await?;
        let (from, to) = (envd.path(&request.source)?, envd.path(&request.destination)?);
        let fs = envd.sandbox.fs();
        fs.rename(&from, &to).await.map_err(fs_error)?;
        Ok(MoveResponse {
            entry: Some(entry_at(&fs, &to).await?),
        })
    })
    .await
}

/// `Remove`: a file, or a directory with everything below it.
pub async fn remove(State(state): State<E2bShared>, headers: HeaderMap, body: Bytes) -> Response {
    let (state, headers) = (&state, &headers);
    unary(headers, &body, move |request: RemoveRequest| async move {
        let envd = Envd::of(state, headers).await?;
        let path = envd.path(&request.path)?;
        let fs = envd.sandbox.fs();
        match fs.stat(&path).await.map_err(fs_error)?.kind {
            FsKind::Dir => fs.remove_dir(&path).await,
            _ => fs.remove(&path).await,
        }
        .map_err(fs_error)?;
        Ok(RemoveResponse {})
    })
    .await
}

/// The watcher methods: not offered.
pub async fn watchers() -> Response {
    super::connect::error_response(unimplemented("filesystem watchers"))
}

/// The entry at `path`.
pub async fn entry_at(fs: &SandboxFs<'_>, path: &str) -> Result<EntryInfo, ConnectError> {
    let found = fs.stat(path).await.map_err(fs_error)?;
    Ok(entry_info(fs, found, path.to_string()).await)
}

async fn entry_info(fs: &SandboxFs<'_>, entry: FsEntry, path: String) -> EntryInfo {
    let symlink_target = match entry.kind {
        FsKind::Symlink => fs.read_link(&path).await.ok(),
        _ => None,
    };
    let kind = match entry.kind {
        FsKind::File => FileType::File,
        FsKind::Dir => FileType::Directory,
        FsKind::Symlink => FileType::Symlink,
        FsKind::Other => FileType::Unspecified,
    };
    let name = if entry.name.is_empty() {
        path.rsplit('/').next().unwrap_or_default().to_string()
    } else {
        entry.name.clone()
    };
    EntryInfo {
        name,
        r#type: kind as i32,
        size: i64::try_from(entry.size).unwrap_or(i64::MAX),
        mode: entry.mode | type_bits(entry.kind),
        permissions: permissions(entry.kind, entry.mode),
        owner: account(entry.uid),
        group: account(entry.gid),
        modified_time: Some(msb_envd::Timestamp {
            seconds: entry.modified_ns.div_euclid(1_000_000_000),
            nanos: entry.modified_ns.rem_euclid(1_000_000_000) as i32,
        }),
        symlink_target,
        metadata: Default::default(),
        path,
    }
}

/// `st_mode`'s type bits, as Go's `os.FileMode` would print them (envd reports those).
fn type_bits(kind: FsKind) -> u32 {
    match kind {
        FsKind::Dir => 0o040000,
        FsKind::Symlink => 0o120000,
        FsKind::File => 0o100000,
        FsKind::Other => 0,
    }
}

/// `ls -l`'s mode column.
fn permissions(kind: FsKind, mode: u32) -> String {
    let lead = match kind {
        FsKind::Dir => 'd',
        FsKind::Symlink => 'L',
        _ => '-',
    };
    let bits = "rwxrwxrwx"
        .chars()
        .enumerate()
        .map(|(i, c)| if mode & (0o400 >> i) != 0 { c } else { '-' });
    std::iter::once(lead).chain(bits).collect()
}

/// The name for a uid or gid: root for 0, else the number (our agent reports ids).
fn account(id: u32) -> String {
    if id == 0 {
        "root".into()
    } else {
        id.to_string()
    }
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// An SDK file error as envd's code.
pub fn fs_error(e: MicrosandboxError) -> ConnectError {
    let code = match e.kind() {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Conflict => Code::AlreadyExists,
        ErrorKind::Invalid => Code::InvalidArgument,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::Upstream | ErrorKind::Timeout => Code::Unavailable,
        ErrorKind::NoSpace | ErrorKind::Internal => Code::Internal,
    };
    ConnectError::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_like_ls() {
        assert_eq!(permissions(FsKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(permissions(FsKind::File, 0o640), "-rw-r-----");
    }
}
