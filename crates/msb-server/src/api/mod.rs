//! The REST resources, one module per resource.

pub mod attach;
pub mod exec;
pub mod files;
pub mod fs;
pub mod health;
pub mod images;
pub mod logs;
pub mod metrics;
pub mod sandboxes;
pub mod volumes;

use crate::state::Shared;
use utoipa_axum::router::OpenApiRouter;

/// Every `/v1` route (all behind the token).
pub fn v1() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .merge(sandboxes::routes())
        .merge(exec::routes())
        .merge(fs::routes())
        .merge(files::routes())
        .merge(images::routes())
        .merge(volumes::routes())
        .merge(metrics::routes())
        .merge(logs::routes())
        .merge(attach::routes())
}
