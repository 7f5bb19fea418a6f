//! envd's `/files`: `GET` streams a file out, `POST` writes files in, from a raw body
//! (`application/octet-stream`) or a multipart form (one part per file). Both go through
//! the front door's own streaming download and whole-or-nothing upload
//! ([`crate::api::files`]); only the request and error shapes are envd's.

use super::connect::ConnectError;
use super::envd::Envd;
use super::state::E2bShared;
use crate::error::ApiError;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

/// The query of both methods.
#[derive(Debug, Deserialize)]
pub struct FilesQuery {
    /// The file (relative paths start at the user's home); for a multipart upload, each
    /// part's file name names its file instead when this is absent.
    path: Option<String>,
    /// The user (older clients send it here rather than in `Authorization`).
    username: Option<String>,
}

/// `GET /files?path=`: the file's bytes.
pub async fn download(State(state): State<E2bShared>, headers: HeaderMap, Query(q): Query<FilesQuery>) -> Response {
    let result = async {
        let envd = envd(&state, &headers, &q).await?;
        let path = envd
            .path(q.path.as_deref().unwrap_or_default())
            .map_err(connect_error)?;
        crate::api::files::download(&state.app, envd.id, checked(&path)?).await
    };
    result.await.unwrap_or_else(envd_error)
}

/// `POST /files?path=`: writes the body (raw or multipart) and answers with what it wrote.
pub async fn upload(State(state): State<E2bShared>, Query(q): Query<FilesQuery>, request: Request) -> Response {
    let headers = request.headers().clone();
    let result = async {
        if headers.get(header::CONTENT_ENCODING).is_some_and(|v| v != "identity") {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "unimplemented",
                "compressed uploads: not supported by microsandbox's E2B-compatible endpoint",
            ));
        }
        let envd = envd(&state, &headers, &q).await?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut written = Vec::new();
        if content_type.starts_with("multipart/form-data") {
            let mut form = Multipart::from_request(request, &())
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?;
            while let Some(field) = form
                .next_field()
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?
            {
                let named = field.file_name().map(str::to_string);
                let target = match (&q.path, named) {
                    (Some(path), _) if written.is_empty() => path.clone(),
                    (_, Some(name)) => name,
                    _ => {
                        return Err(ApiError::bad_request(
                            "a multipart part names no file (and no ?path= was given)",
                        ))
                    }
                };
                written.push(write(&state, &envd, &target, field).await?);
            }
        } else {
            let target = q
                .path
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("missing ?path="))?;
            written.push(write(&state, &envd, target, request.into_body().into_data_stream()).await?);
        }
        Ok(Json(written).into_response())
    };
    result.await.unwrap_or_else(envd_error)
}

async fn write<E: std::fmt::Display>(
    state: &E2bShared,
    envd: &Envd,
    target: &str,
    data: impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
) -> Result<serde_json::Value, ApiError> {
    let path = envd.path(target).map_err(connect_error)?;
    if let Some((dir, _)) = path.rsplit_once('/').filter(|(dir, _)| !dir.is_empty()) {
        // E2B makes the file's missing parents.
        envd.sandbox.fs().mkdir(dir).await?;
    }
    let entry = crate::api::files::upload(&state.app, &envd.id, checked(&path)?, None, data).await?;
    Ok(serde_json::json!({ "name": entry.name, "type": "file", "path": path }))
}

async fn envd(state: &E2bShared, headers: &HeaderMap, q: &FilesQuery) -> Result<Envd, ApiError> {
    let mut envd = Envd::of(state, headers).await.map_err(connect_error)?;
    if envd.user.is_none() {
        let plain = |u: &String| !u.is_empty() && u.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        envd.user = q.username.clone().filter(plain);
    }
    Ok(envd)
}

fn checked(path: &str) -> Result<&str, ApiError> {
    crate::api::fs::guest_path("path", path)
}

fn connect_error(e: ConnectError) -> ApiError {
    ApiError::new(super::connect::status_of(e.code), "envd", e.message)
}

/// envd's error shape: `{"code": <HTTP status>, "message": …}`.
fn envd_error(e: ApiError) -> Response {
    let body = serde_json::json!({ "code": e.status.as_u16(), "message": e.message });
    (e.status, Json(body)).into_response()
}
