//! `/v1/images`: pull (progress streamed as NDJSON or SSE), list, inspect, remove.

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::state::Shared;
use axum::extract::State;
use microsandbox::{ImageInfo, ImageRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod pull;

pub use pull::PullEvent;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_images, remove_image))
        .routes(routes!(inspect_image))
        .routes(routes!(pull::pull_image))
}

/// An image as listings show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageSummary {
    /// Its reference, canonical (`docker.io/library/python:latest`).
    pub reference: String,
    /// Digest of its platform manifest.
    pub manifest_digest: String,
    /// Digest of its config blob.
    pub config_digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// How many layers it has.
    pub layers: usize,
    /// Bytes its layers take in the store.
    pub size_bytes: u64,
    /// When it was stored, seconds since the Unix epoch.
    pub created_at: i64,
}

impl From<ImageInfo> for ImageSummary {
    fn from(i: ImageInfo) -> ImageSummary {
        let r = i.record;
        ImageSummary {
            platform: r.platform.to_string(),
            layers: r.layers.len(),
            size_bytes: i.size_bytes,
            reference: r.reference,
            manifest_digest: r.manifest_digest,
            config_digest: r.config_digest,
            created_at: r.created_at,
        }
    }
}

/// An image's whole record: its config and layers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageDetail {
    /// Its reference, canonical.
    pub reference: String,
    /// Digest of its platform manifest.
    pub manifest_digest: String,
    /// Digest of its config blob.
    pub config_digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// When it was stored, seconds since the Unix epoch.
    pub created_at: i64,
    /// What a sandbox takes from its config.
    pub config: ImageConfigView,
    /// Its layers, bottom first.
    pub layers: Vec<LayerView>,
}

/// The parts of an image config a sandbox uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageConfigView {
    /// `KEY=VALUE` items, in image order.
    pub env: Vec<String>,
    /// `ENTRYPOINT`, if set.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`, if set.
    pub cmd: Option<Vec<String>>,
    /// `WORKDIR`, if set.
    pub working_dir: Option<String>,
    /// `USER`, if set.
    pub user: Option<String>,
    /// Exposed ports (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`, if set.
    pub stop_signal: Option<String>,
}

/// One stored layer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LayerView {
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Digest of the blob as the registry serves it.
    pub blob_digest: String,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob, bytes.
    pub compressed_size: u64,
    /// Size of the filesystem image made from it, bytes.
    pub erofs_size: u64,
}

impl From<ImageRecord> for ImageDetail {
    fn from(r: ImageRecord) -> ImageDetail {
        let c = r.config;
        ImageDetail {
            platform: r.platform.to_string(),
            reference: r.reference,
            manifest_digest: r.manifest_digest,
            config_digest: r.config_digest,
            created_at: r.created_at,
            config: ImageConfigView {
                env: c.env,
                entrypoint: c.entrypoint,
                cmd: c.cmd,
                working_dir: c.working_dir,
                user: c.user,
                exposed_ports: c.exposed_ports,
                labels: c.labels,
                stop_signal: c.stop_signal,
            },
            layers: r
                .layers
                .into_iter()
                .map(|l| LayerView {
                    diff_id: l.diff_id,
                    blob_digest: l.blob_digest,
                    media_type: l.media_type,
                    compressed_size: l.compressed_size,
                    erofs_size: l.erofs_size,
                })
                .collect(),
        }
    }
}

/// Every stored image, newest first.
#[utoipa::path(get, path = "/v1/images", tag = "images", responses((status = 200, body = Vec<ImageSummary>)))]
async fn list_images(State(state): State<Shared>) -> ApiResult<Json<Vec<ImageSummary>>> {
    let all = state.msb.images().list().await?;
    Ok(Json(all.into_iter().map(ImageSummary::from).collect()))
}

/// An image reference in the query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReferenceQuery {
    /// The image (`python`, `registry/repo:tag`, `repo@sha256:…`).
    pub reference: String,
}

/// One stored image's record.
#[utoipa::path(get, path = "/v1/images/inspect", tag = "images", params(ReferenceQuery),
    responses((status = 200, body = ImageDetail), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn inspect_image(State(state): State<Shared>, Query(q): Query<ReferenceQuery>) -> ApiResult<Json<ImageDetail>> {
    Ok(Json(state.msb.images().inspect(&q.reference).await?.into()))
}

/// Which image to remove.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveImageQuery {
    /// The image.
    pub reference: String,
    /// Remove it even while sandboxes made from it exist (their layers stay until they go).
    #[serde(default)]
    pub force: bool,
}

/// What a removal did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedImage {
    /// The image removed, canonical.
    pub reference: String,
    /// Layer files deleted (those no other image or sandbox uses).
    pub layers_deleted: usize,
}

/// Removes a stored image.
#[utoipa::path(delete, path = "/v1/images", tag = "images", params(RemoveImageQuery),
    responses((status = 200, body = RemovedImage), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn remove_image(State(state): State<Shared>, Query(q): Query<RemoveImageQuery>) -> ApiResult<Json<RemovedImage>> {
    let reference = microsandbox::image::canonical(&q.reference)?;
    let layers_deleted = state.msb.images().remove(&q.reference, q.force).await?;
    Ok(Json(RemovedImage {
        reference,
        layers_deleted,
    }))
}
