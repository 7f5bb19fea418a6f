//! E2B's pause, resume and fork, on msb's snapshots and forks. A paused sandbox is a
//! snapshot named after it (see [`paused_name`]) and no sandbox: `pause` saves it whole
//! and removes it; `connect` (or the older `resume`) creates it again from the snapshot,
//! under its own id, where it stood (processes, memory, files), and drops the snapshot.
//! Paused sandboxes have no deadline, as on E2B. `fork` makes copies that go on from where
//! the sandbox stands, each a new E2B sandbox with the same template and metadata.

use super::control::{error, from_sdk, not_found, sandbox_json, JsonBody, DEFAULT_TIMEOUT, MAX_TIMEOUT};
use super::state::{deadline_in, E2bShared, TEMPLATE_LABEL};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use microsandbox::{ErrorKind, SnapshotInfo};
use serde::Deserialize;
use serde_json::{json, Value};

/// How the snapshots that stand for paused sandboxes are named: this, then the id.
const PAUSED_PREFIX: &str = "e2b-paused-";
/// The most copies one fork makes.
const MAX_FORKS: u32 = 16;
/// How long a fork's copies live unless told (E2B's default for forks).
const FORK_TIMEOUT: u64 = 15;

/// The snapshot that stands for paused sandbox `id`.
fn paused_name(id: &str) -> String {
    format!("{PAUSED_PREFIX}{id}")
}

/// The snapshot of paused sandbox `id`, if it is paused (made through this endpoint).
pub fn paused(state: &E2bShared, id: &str) -> Option<SnapshotInfo> {
    let info = state.app.msb.snapshots().get(&paused_name(id)).ok()?;
    info.spec.labels.contains_key(TEMPLATE_LABEL).then_some(info)
}

/// Every paused sandbox made through this endpoint.
pub fn all_paused(state: &E2bShared) -> Vec<SnapshotInfo> {
    let all = state.app.msb.snapshots().list().unwrap_or_default();
    all.into_iter()
        .filter(|s| s.name.strip_prefix(PAUSED_PREFIX) == Some(s.sandbox.as_str()))
        .filter(|s| s.spec.labels.contains_key(TEMPLATE_LABEL))
        .collect()
}

/// `POST /sandboxes/{id}/pause`: saves the sandbox whole and removes it; 409 if it is
/// paused already.
pub async fn pause(State(state): State<E2bShared>, Path(id): Path<String>) -> Response {
    if paused(&state, &id).is_some() {
        return error(StatusCode::CONFLICT, format!("sandbox {id} is already paused"));
    }
    if let Err(response) = super::control::e2b_sandbox(&state, &id).await {
        return response;
    }
    if let Err(e) = state.app.msb.snapshots().create(&id, &paused_name(&id)).await {
        return from_sdk(e);
    }
    match state.kill(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_sdk(e),
    }
}

/// The body of `resume` (E2B's older call) and `connect`.
#[derive(Debug, Default, Deserialize)]
pub struct Resume {
    timeout: Option<u64>,
}

/// `POST /sandboxes/{id}/resume`: resumes a paused sandbox; 409 if it runs.
pub async fn resume_call(
    State(state): State<E2bShared>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Resume>,
) -> Response {
    if super::control::e2b_sandbox(&state, &id).await.is_ok() {
        return error(StatusCode::CONFLICT, format!("sandbox {id} is already running"));
    }
    resume(&state, &id, body.timeout).await
}

/// Resumes paused sandbox `id` to live `timeout` seconds (E2B's default if `None`):
/// 201 and the sandbox, or 404 where it is not paused.
pub async fn resume(state: &E2bShared, id: &str, timeout: Option<u64>) -> Response {
    let Some(snapshot) = paused(state, id) else {
        return not_found(id);
    };
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout > MAX_TIMEOUT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("timeout must be at most {MAX_TIMEOUT} seconds"),
        );
    }
    let created = state
        .app
        .msb
        .builder(id)
        .from_snapshot(&snapshot.name)
        .create_detached()
        .await;
    let sb = match created {
        Ok(sb) => sb,
        // A resume that raced this one won: the sandbox runs.
        Err(e) if e.kind() == ErrorKind::Conflict => return running(state, id).await,
        Err(e) => return from_sdk(e),
    };
    state.app.keep(&sb);
    state.set_deadline(id, deadline_in(timeout));
    if let Err(e) = state.app.msb.snapshots().remove(&snapshot.name) {
        tracing::warn!("sandbox {id} resumed, but its pause snapshot stays: {e}");
    }
    let template = snapshot.spec.labels.get(TEMPLATE_LABEL).cloned().unwrap_or_default();
    (StatusCode::CREATED, Json(sandbox_json(state, id, &template))).into_response()
}

/// 200 and running sandbox `id`, or 404.
async fn running(state: &E2bShared, id: &str) -> Response {
    match super::control::e2b_sandbox(state, id).await {
        Ok(info) => {
            let template = info.spec.labels.get(TEMPLATE_LABEL).cloned().unwrap_or_default();
            (StatusCode::OK, Json(sandbox_json(state, id, &template))).into_response()
        }
        Err(response) => response,
    }
}

/// `DELETE` of a paused sandbox: its snapshot goes.
pub fn remove(state: &E2bShared, id: &str) -> Response {
    match state.app.msb.snapshots().remove(&paused_name(id)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) if e.kind() == ErrorKind::NotFound => not_found(id),
        Err(e) => from_sdk(e),
    }
}

/// The body of `fork`.
#[derive(Debug, Default, Deserialize)]
pub struct Fork {
    timeout: Option<u64>,
    count: Option<u32>,
}

/// `POST /sandboxes/{id}/fork`: `count` copies of the running sandbox, which pauses for
/// the save alone; 201 and one `{sandbox}` a copy. The copies start together or not at
/// all (then the whole call fails).
pub async fn fork(State(state): State<E2bShared>, Path(id): Path<String>, JsonBody(body): JsonBody<Fork>) -> Response {
    let info = match super::control::e2b_sandbox(&state, &id).await {
        Ok(info) => info,
        Err(response) => return response,
    };
    let count = body.count.unwrap_or(1);
    let timeout = body.timeout.unwrap_or(FORK_TIMEOUT);
    if !(1..=MAX_FORKS).contains(&count) || timeout > MAX_TIMEOUT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("count must be 1 to {MAX_FORKS}, timeout at most {MAX_TIMEOUT} seconds"),
        );
    }
    let mut copies = Vec::new();
    for _ in 0..count {
        match microsandbox::random_hex(10) {
            Ok(hex) => copies.push(format!("i{hex}")),
            Err(e) => return from_sdk(e),
        }
    }
    if let Err(e) = state.app.msb.fork(&id, &copies).await {
        return from_sdk(e);
    }
    let template = info.spec.labels.get(TEMPLATE_LABEL).cloned().unwrap_or_default();
    let results: Vec<Value> = copies
        .iter()
        .map(|copy| {
            state.set_deadline(copy, deadline_in(timeout));
            json!({ "sandbox": sandbox_json(&state, copy, &template) })
        })
        .collect();
    (StatusCode::CREATED, Json(results)).into_response()
}
