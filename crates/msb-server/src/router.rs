//! The whole application: routes, the OpenAPI document, the token check, body limits.

use crate::error::ApiError;
use crate::state::Shared;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// The largest JSON body accepted (file uploads stream and are not limited by this).
pub const JSON_BODY_LIMIT: usize = 16 << 20;

/// The OpenAPI document of every route.
pub fn openapi() -> OpenApi {
    split().1
}

/// The routes of the API with their OpenAPI document.
fn split() -> (Router<Shared>, OpenApi) {
    let (protected, mut api) = OpenApiRouter::new().merge(crate::api::v1()).split_for_parts();
    let (open, open_api) = crate::api::health::routes().split_for_parts();
    api.merge(open_api);
    api.info.title = "microsandbox".into();
    api.info.description = Some("msb serve: sandboxes, exec, files, images and volumes over HTTP".into());
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.license = None;
    api.info.contact = None;
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    api.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    (open.merge(protected), api)
}

/// The application over `state`.
pub fn app(state: Shared) -> Router {
    let (routes, api) = split();
    let document = serde_json::to_string_pretty(&api).unwrap_or_default();
    let protected = routes
        .merge(crate::mcp::router(state.clone()))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/json")], document) }),
        );
    protected
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(state)
}

/// Refuses a request without the token, whatever it asks for.
async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/health" || authorized(&state, request.headers()) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// 404 for a path that is no route, after the same token check as the rest.
async fn not_found(State(state): State<Shared>, request: Request) -> Response {
    if !authorized(&state, request.headers()) {
        return ApiError::unauthorized().into_response();
    }
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
}

/// 405 for a route that exists with other methods, after the same token check (the
/// open routes excepted), in the API's error shape.
async fn method_not_allowed(State(state): State<Shared>, request: Request) -> Response {
    let open = matches!(request.uri().path(), "/health" | "/openapi.json");
    if !open && !authorized(&state, request.headers()) {
        return ApiError::unauthorized().into_response();
    }
    let message = format!("{} is not a method of this route", request.method());
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    )
    .into_response()
}

/// Whether `headers` carry the server's token (always, for a server without one).
pub fn authorized(state: &Shared, headers: &axum::http::HeaderMap) -> bool {
    let Some(expected) = state.token.as_deref() else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    crate::token::matches(expected, given.trim())
}
