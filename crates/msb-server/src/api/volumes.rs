//! `/v1/volumes`: named volumes that outlive sandboxes: list, create, get, remove.

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::Shared;
use axum::extract::State;
use axum::http::StatusCode;
use microsandbox::Volume;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_volumes, create_volume))
        .routes(routes!(get_volume, remove_volume))
}

/// A volume to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// Its name (letters, digits, `-`, `_`, `.`; as a sandbox's).
    pub name: String,
    /// A size limit in MiB (at least 16): the volume is then an ext4 filesystem of its own
    /// that one running sandbox at a time mounts read-write. Without: a host directory.
    pub quota_mib: Option<u32>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A volume as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeView {
    /// Its name.
    pub name: String,
    /// The host directory holding a directory volume's files.
    pub path: String,
    /// The size limit of a sized volume, bytes (absent: a directory volume, unlimited).
    pub quota_bytes: Option<u64>,
    /// Bytes its files take, measured now (absent when it could not be measured).
    pub used_bytes: Option<u64>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Created, seconds since the Unix epoch.
    pub created_at: i64,
    /// The sandboxes (in any state) that mount it.
    pub users: Vec<String>,
}

impl VolumeView {
    /// The view of `volume`, mounted by `users`; its usage is measured off the async
    /// threads (a directory volume's is a walk of its tree).
    async fn of(volume: Volume, users: Vec<String>) -> VolumeView {
        let measured = volume.clone();
        let used = tokio::task::spawn_blocking(move || measured.used_bytes().ok())
            .await
            .ok()
            .flatten();
        VolumeView {
            path: volume.path.display().to_string(),
            quota_bytes: volume.size_bytes(),
            used_bytes: used,
            name: volume.name,
            labels: volume.labels,
            created_at: volume.created_at,
            users,
        }
    }
}

/// A volume's name in a path.
#[derive(Debug, Deserialize, IntoParams)]
pub struct VolumeName {
    /// The volume.
    pub name: String,
}

/// Every volume, newest first.
#[utoipa::path(get, path = "/v1/volumes", tag = "volumes", responses((status = 200, body = Vec<VolumeView>)))]
async fn list_volumes(State(state): State<Shared>) -> ApiResult<Json<Vec<VolumeView>>> {
    let volumes = state.msb.volumes();
    let mut users = volumes.all_users().await?;
    let mut views = Vec::new();
    for v in volumes.list().await? {
        let mounted = users.remove(&v.name).unwrap_or_default();
        views.push(VolumeView::of(v, mounted).await);
    }
    Ok(Json(views))
}

/// Creates a volume.
#[utoipa::path(post, path = "/v1/volumes", tag = "volumes", request_body = CreateVolume,
    responses((status = 201, body = VolumeView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_volume(
    State(state): State<Shared>,
    Json(req): Json<CreateVolume>,
) -> ApiResult<(StatusCode, Json<VolumeView>)> {
    let mut builder = state.msb.volumes().builder(req.name);
    for (key, value) in req.labels {
        builder = builder.label(key, value);
    }
    if let Some(mib) = req.quota_mib {
        builder = builder.quota(mib);
    }
    let volume = builder.create().await?;
    Ok((StatusCode::CREATED, Json(VolumeView::of(volume, Vec::new()).await)))
}

/// One volume.
#[utoipa::path(get, path = "/v1/volumes/{name}", tag = "volumes", params(VolumeName),
    responses((status = 200, body = VolumeView), (status = 404, body = ErrorBody)))]
async fn get_volume(
    State(state): State<Shared>,
    Path(VolumeName { name }): Path<VolumeName>,
) -> ApiResult<Json<VolumeView>> {
    let volumes = state.msb.volumes();
    let volume = volumes.get(&name).await?;
    let users = volumes.users(&name).await?;
    Ok(Json(VolumeView::of(volume, users).await))
}

/// Whether a volume still mounted is removed.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveVolumeQuery {
    /// Remove it even while sandboxes mount it.
    #[serde(default)]
    pub force: bool,
}

/// Removes a volume and everything in it (refused while a sandbox mounts it, unless
/// `force`).
#[utoipa::path(delete, path = "/v1/volumes/{name}", tag = "volumes", params(VolumeName, RemoveVolumeQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_volume(
    State(state): State<Shared>,
    Path(VolumeName { name }): Path<VolumeName>,
    Query(q): Query<RemoveVolumeQuery>,
) -> ApiResult<StatusCode> {
    state.msb.volumes().remove(&name, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}
