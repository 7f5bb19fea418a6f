//! `/v1/sandboxes/{name}/files`: a guest file's bytes, streamed out (`GET`) and in (`PUT`)
//! in bounded memory, under the agent's flow control. Neither side is buffered whole.
//!
//! An upload goes to a hidden file beside its target and is renamed over it only once the
//! whole body has arrived and the guest has closed the file: the SDK's `write_stream`
//! truncates its target in place, and a sink dropped without `close` leaves whatever had
//! arrived there, so a client that went away mid-body would leave a half file at the path.

use super::fs::{guest_path, FsEntryView, PathQuery};
use super::sandboxes::Named;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::Shared;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use microsandbox::{ErrorKind, FsEntry, FsKind, FsReadStream, FsWriteSink, Sandbox};
use serde::Deserialize;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    // Uploads stream to the guest and may be of any size: the JSON body limit is not theirs.
    OpenApiRouter::new().routes(routes!(read_file, write_file).layer(DefaultBodyLimit::disable()))
}

/// A guest file's bytes, as they are (no encoding).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
pub struct FileBytes(pub Vec<u8>);

/// How long cleaning up after a failed upload may take.
const CLEANUP_WITHIN: Duration = Duration::from_secs(60);

/// Streams a guest file's bytes.
#[utoipa::path(get, path = "/v1/sandboxes/{name}/files", tag = "files", params(Named, PathQuery),
    responses((status = 200, description = "the file's bytes", body = FileBytes, content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn read_file(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    download(&state, name, guest_path("path", &q.path)?).await
}

/// Streams the file at `path` (checked by [`guest_path`]) of sandbox `name`; an error
/// status when it cannot be read at all.
pub async fn download(state: &Shared, name: String, path: &str) -> ApiResult<Response> {
    // The first chunk is waited for here: a missing file or a directory is only known once
    // the guest tried to read it, and must be an error status, not a broken body.
    let (sb, stream, first) = state
        .with_sandbox(&name, |sb| async move {
            let mut stream = sb.fs().read_stream(path).await?;
            let first = stream.recv().await?;
            Ok((sb, stream, first))
        })
        .await?;
    let reading = Reading {
        _sb: sb,
        state: state.clone(),
        name,
        ended: first.is_none(),
        pending: first,
        stream,
    };
    let chunks = futures::stream::unfold(reading, |mut r| async move {
        let next = match r.pending.take() {
            Some(chunk) => Ok(Some(chunk)),
            None if r.ended => return None,
            None => r.stream.recv().await,
        };
        match next {
            Ok(Some(chunk)) => Some((Ok(bytes::Bytes::from(chunk)), r)),
            Ok(None) => {
                r.finished();
                None
            }
            Err(e) => {
                // The status is sent already: breaking the body off tells the client the
                // file did not arrive whole.
                tracing::warn!(error = %e, "reading a guest file failed midway");
                r.ended = true;
                Some((Err(std::io::Error::other(e.to_string())), r))
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// A guest file on its way out.
struct Reading {
    /// Keeps the connection the stream runs on open (it may not be the cached one).
    _sb: Sandbox,
    stream: FsReadStream,
    /// The chunk read before answering.
    pending: Option<Vec<u8>>,
    ended: bool,
    state: Shared,
    name: String,
}

/// A download the client abandoned leaves the guest's read session waiting for flow
/// credit, and file sessions have no cancel message: the kept connection is let go, so it
/// closes (ending its sessions) once the requests using it are done.
impl Reading {
    /// The whole file went out: nothing to let go of when this is dropped.
    fn finished(&mut self) {
        self.ended = true;
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        if !self.ended {
            self.state.forget(&self.name);
        }
    }
}

/// Where to write, and with what permissions.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WriteQuery {
    /// Absolute guest path of the file (no `..` components); missing parent directories
    /// are made.
    pub path: String,
    /// Permission bits in octal (`644`, `0755`); default: those of the file replaced, else
    /// 644.
    pub mode: Option<String>,
}

/// Writes a guest file from the streamed request body (any size; not held in memory). The
/// file appears at `path` whole or not at all; a file there is replaced (a symlink there
/// is replaced, not followed), and the new one is owned by root.
#[utoipa::path(put, path = "/v1/sandboxes/{name}/files", tag = "files", params(Named, WriteQuery),
    request_body(content = FileBytes, content_type = "application/octet-stream"),
    responses((status = 200, description = "the file as written", body = FsEntryView),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 507, body = ErrorBody)))]
async fn write_file(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Query(q): Query<WriteQuery>,
    body: Body,
) -> ApiResult<Json<FsEntryView>> {
    let path = guest_path("path", &q.path)?;
    let mode = q.mode.as_deref().map(parse_mode).transpose()?;
    Ok(Json(
        upload(&state, &name, path, mode, body.into_data_stream()).await?.into(),
    ))
}

/// Writes `data` to the file at `path` (checked by [`guest_path`]) of sandbox `name`,
/// whole or not at all, with `mode` (default: the replaced file's, else 644); answers
/// with the file as written.
pub async fn upload<E: std::fmt::Display>(
    state: &Shared,
    name: &str,
    path: &str,
    mode: Option<u32>,
    mut data: impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
) -> ApiResult<FsEntry> {
    let dir = parent_of_file(path)?;
    // What is there decides the default mode, and a directory is refused before the body
    // is read.
    let existing = state
        .with_sandbox(name, |sb| async move {
            match sb.fs().stat(path).await {
                Ok(entry) => Ok(Some(entry)),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?;
    let mode = match (mode, existing) {
        (_, Some(e)) if e.kind == FsKind::Dir => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "conflict",
                format!("{path} is a directory"),
            ))
        }
        (Some(mode), _) => mode,
        (None, Some(e)) if e.kind == FsKind::File => e.mode,
        (None, _) => 0o644,
    };
    let temp = format!("{dir}/.msb-upload-{}", microsandbox::random_hex(8)?);
    let temp_path = temp.as_str();
    let (sb, sink) = state
        .with_sandbox(name, |sb| async move {
            let sink = sb.fs().write_stream(temp_path, Some(mode)).await?;
            Ok((sb, sink))
        })
        .await?;
    let mut pending = Upload {
        sb,
        sink: Some(sink),
        temp,
        kept: false,
    };
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("the request body broke off: {e}")))?;
        let sink = pending
            .sink
            .as_mut()
            .ok_or_else(|| ApiError::internal("the upload is closed"))?;
        sink.write(&chunk).await?;
    }
    let sink = pending
        .sink
        .take()
        .ok_or_else(|| ApiError::internal("the upload is closed"))?;
    sink.close().await?;
    let fs = pending.sb.fs();
    // Set exactly: the guest's umask applied when the file was made.
    fs.chmod(&pending.temp, mode).await?;
    fs.rename(&pending.temp, path).await?;
    pending.kept = true;
    Ok(fs.stat(path).await?)
}

/// The directory part of `path`, which must name a file (not end in `/`, `.` or be `/`).
fn parent_of_file(path: &str) -> ApiResult<&str> {
    match path.rsplit_once('/') {
        Some((dir, file)) if !file.is_empty() && file != "." => Ok(dir),
        _ => Err(ApiError::invalid(format!("'path' must name a file, not {path:?}"))),
    }
}

/// Octal permission bits (`644`, `0755`, `0o600`).
fn parse_mode(text: &str) -> ApiResult<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 && !digits.is_empty() && !digits.starts_with('+') => Ok(mode),
        _ => Err(ApiError::invalid(format!(
            "'mode' must be octal permission bits such as 644 or 0755, not {text:?}"
        ))),
    }
}

/// An upload in progress; unless kept, its hidden file is closed and removed when dropped
/// (by an error, or by the client going away, which drops the handler).
struct Upload {
    sb: Sandbox,
    sink: Option<FsWriteSink>,
    temp: String,
    kept: bool,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let (sb, sink, temp) = (self.sb.clone(), self.sink.take(), std::mem::take(&mut self.temp));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let cleanup = async {
                // A sink dropped unclosed would keep the guest's write session (and its
                // open file) waiting for more: end it, then remove what it wrote.
                if let Some(sink) = sink {
                    let _ = sink.close().await;
                }
                if let Err(e) = sb.fs().remove(&temp).await {
                    tracing::warn!(error = %e, file = %temp, "removing an unfinished upload failed");
                }
            };
            if tokio::time::timeout(CLEANUP_WITHIN, cleanup).await.is_err() {
                tracing::warn!("cleaning up an unfinished upload timed out");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_permission_bits() {
        assert_eq!(parse_mode("644").unwrap(), 0o644);
        assert_eq!(parse_mode("0755").unwrap(), 0o755);
        assert_eq!(parse_mode("0o600").unwrap(), 0o600);
        assert_eq!(parse_mode("4755").unwrap(), 0o4755);
        for bad in ["", "8", "rw-r--r--", "17777", "+644", "0o", "-1"] {
            let e = parse_mode(bad).unwrap_err();
            assert_eq!(e.kind, "invalid", "{bad:?}");
        }
    }

    #[test]
    fn an_upload_must_name_a_file() {
        assert_eq!(parent_of_file("/x").unwrap(), "");
        assert_eq!(parent_of_file("/tmp/a/b.txt").unwrap(), "/tmp/a");
        for bad in ["/", "/tmp/", "/tmp/."] {
            assert!(parent_of_file(bad).is_err(), "{bad:?}");
        }
    }
}
