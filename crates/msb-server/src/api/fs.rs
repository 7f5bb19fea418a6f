//! `/v1/sandboxes/{name}/fs/…`: list, stat, mkdir, remove and rename guest paths through
//! the SDK's `sandbox.fs()`. The file contents themselves stream through `files.rs`.
//!
//! Paths come from clients and are checked here before the guest sees them: absolute, no
//! NUL, no `..`. The agent resolves them inside the guest, so a path cannot leave the
//! sandbox anyway; refusing `..` makes a traversal attempt a clear 422 instead of a
//! surprise inside the guest.

use super::sandboxes::Named;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::Shared;
use axum::extract::State;
use axum::http::StatusCode;
use microsandbox::{FsEntry, FsKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_dir))
        .routes(routes!(stat_path))
        .routes(routes!(make_dir))
        .routes(routes!(remove_path))
        .routes(routes!(rename_path))
}

/// The longest guest path accepted (Linux's `PATH_MAX`, with its NUL).
const PATH_MAX: usize = 4096;

/// `path` when it is usable as a guest path: absolute, without NUL or `..` components, and
/// shorter than `PATH_MAX`; else a 422 naming `field`.
pub fn guest_path<'a>(field: &str, path: &'a str) -> ApiResult<&'a str> {
    let refuse = |why: &str| Err(ApiError::invalid(format!("'{field}' {why}")));
    if !path.starts_with('/') {
        return refuse(&format!(
            "must be an absolute guest path (starting with '/'), not {path:?}"
        ));
    }
    if path.contains('\0') {
        return refuse("cannot hold a NUL byte");
    }
    if path.len() >= PATH_MAX {
        return refuse(&format!("is longer than {} bytes", PATH_MAX - 1));
    }
    if path.split('/').any(|part| part == "..") {
        return refuse(&format!(
            "cannot hold '..' components: give the path without them, not {path:?}"
        ));
    }
    Ok(path)
}

/// A guest path in the query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// An absolute guest path (no `..` components).
    pub path: String,
}

/// What a guest filesystem entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FsKindView {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed by stat or list).
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// A guest file, directory or link, as stat and list answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FsEntryView {
    /// Its name (the last component of its path; `/` for the root).
    pub name: String,
    /// What it is.
    pub kind: FsKindView,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`), as a number.
    pub mode: u32,
    /// The same bits in octal text (`0644`).
    pub mode_octal: String,
    /// Owner's uid in the guest.
    pub uid: u32,
    /// Group's gid in the guest.
    pub gid: u32,
    /// Last modification, RFC 3339 (UTC).
    pub modified: String,
    /// Last modification, nanoseconds since the Unix epoch.
    pub modified_ns: i64,
    /// Number of hard links.
    pub nlink: u64,
}

impl From<FsEntry> for FsEntryView {
    fn from(e: FsEntry) -> FsEntryView {
        FsEntryView {
            kind: match e.kind {
                FsKind::File => FsKindView::File,
                FsKind::Dir => FsKindView::Dir,
                FsKind::Symlink => FsKindView::Symlink,
                FsKind::Other => FsKindView::Other,
            },
            size: e.size,
            mode: e.mode,
            mode_octal: format!("{:04o}", e.mode),
            uid: e.uid,
            gid: e.gid,
            modified: rfc3339(e.modified_ns.div_euclid(NANOS), e.modified_ns.rem_euclid(NANOS) as u32),
            modified_ns: e.modified_ns,
            nlink: e.nlink,
            name: e.name,
        }
    }
}

const NANOS: i64 = 1_000_000_000;

/// `secs` (+ `nanos`) since the Unix epoch as RFC 3339 UTC; the fraction only when nonzero.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    let fraction = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}")
    };
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{fraction}Z")
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The entries of a guest directory, sorted by name.
#[utoipa::path(get, path = "/v1/sandboxes/{name}/fs/list", tag = "files", params(Named, PathQuery),
    responses((status = 200, body = Vec<FsEntryView>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_dir(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Json<Vec<FsEntryView>>> {
    let path = guest_path("path", &q.path)?;
    let entries = state
        .with_sandbox(&name, |sb| async move { sb.fs().list(path).await })
        .await?;
    Ok(Json(entries.into_iter().map(FsEntryView::from).collect()))
}

/// The entry at a guest path itself (a symlink is not followed).
#[utoipa::path(get, path = "/v1/sandboxes/{name}/fs/stat", tag = "files", params(Named, PathQuery),
    responses((status = 200, body = FsEntryView), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn stat_path(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Json<FsEntryView>> {
    let path = guest_path("path", &q.path)?;
    let entry = state
        .with_sandbox(&name, |sb| async move { sb.fs().stat(path).await })
        .await?;
    Ok(Json(entry.into()))
}

/// A directory to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    /// Absolute guest path; missing parents are made too (mode 0755).
    pub path: String,
}

/// Makes a guest directory and its missing parents (`mkdir -p`).
#[utoipa::path(post, path = "/v1/sandboxes/{name}/fs/mkdir", tag = "files", params(Named), request_body = MkdirRequest,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 507, body = ErrorBody)))]
async fn make_dir(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Json(req): Json<MkdirRequest>,
) -> ApiResult<StatusCode> {
    let path = guest_path("path", &req.path)?;
    state
        .with_sandbox(&name, |sb| async move { sb.fs().mkdir(path).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A path to remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// Absolute guest path.
    pub path: String,
    /// A directory and everything below it (without: only a file, symlink or other
    /// non-directory is removed; a directory is a 409).
    #[serde(default)]
    pub recursive: bool,
}

/// Removes a guest file, or with `recursive` a directory tree (symlinks in it are removed,
/// never followed).
#[utoipa::path(post, path = "/v1/sandboxes/{name}/fs/remove", tag = "files", params(Named), request_body = RemoveRequest,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_path(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Json(req): Json<RemoveRequest>,
) -> ApiResult<StatusCode> {
    let path = guest_path("path", &req.path)?;
    if path.trim_end_matches('/').is_empty() {
        return Err(ApiError::invalid("'path' is the guest's root, which is not removed"));
    }
    let recursive = req.recursive;
    state
        .with_sandbox(&name, |sb| async move {
            if recursive {
                sb.fs().remove_dir(path).await
            } else {
                sb.fs().remove(path).await
            }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A rename.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// Absolute guest path of what to rename.
    pub from: String,
    /// Its new absolute guest path (an existing file there is replaced, as rename(2) does).
    pub to: String,
}

/// Renames (moves) a guest path within its filesystem.
#[utoipa::path(post, path = "/v1/sandboxes/{name}/fs/rename", tag = "files", params(Named), request_body = RenameRequest,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn rename_path(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Json(req): Json<RenameRequest>,
) -> ApiResult<StatusCode> {
    let from = guest_path("from", &req.from)?;
    let to = guest_path("to", &req.to)?;
    state
        .with_sandbox(&name, |sb| async move { sb.fs().rename(from, to).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_relative_and_nul_paths_are_refused_with_the_field_named() {
        for bad in [
            "../../etc/passwd",
            "etc/passwd",
            "",
            "/tmp/../../etc/passwd",
            "/a/..",
            "/a\0b",
        ] {
            let e = guest_path("to", bad).unwrap_err();
            assert_eq!(
                (e.status, e.kind),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
                "{bad:?}"
            );
            assert!(e.message.starts_with("'to' "), "{}", e.message);
        }
        assert!(guest_path("path", &format!("/{}", "a".repeat(PATH_MAX))).is_err());
        for good in ["/", "/etc/passwd", "/a/..b/c..", "/tmp/./x", "/a b/ü"] {
            assert_eq!(guest_path("path", good).unwrap(), good);
        }
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_709_251_199, 0), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800, 0), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn entries_show_kind_mode_and_time() {
        let entry = FsEntry {
            name: "x".into(),
            kind: FsKind::Symlink,
            size: 3,
            mode: 0o4755,
            uid: 1,
            gid: 2,
            modified_ns: 1_500_000_000,
            nlink: 1,
        };
        let view = FsEntryView::from(entry);
        assert_eq!(view.kind, FsKindView::Symlink);
        assert_eq!(view.mode_octal, "4755");
        assert_eq!(view.modified, "1970-01-01T00:00:01.500000000Z");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["kind"], "symlink");
    }
}
