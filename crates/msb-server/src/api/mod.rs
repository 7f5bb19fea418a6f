//! The REST resources, one module per resource.

pub mod exec;
pub mod health;
pub mod sandboxes;

use crate::state::Shared;
use utoipa_axum::router::OpenApiRouter;

/// Every `/v1` route (all behind the token).
pub fn v1() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().merge(sandboxes::routes()).merge(exec::routes())
}
