//! An E2B-compatible endpoint (`msb serve --e2b-listen`): E2B's control plane and its
//! in-sandbox service (envd) on one listener, so programs written for E2B's SDKs run here
//! unchanged with `E2B_API_URL` and `E2B_SANDBOX_URL` pointing at it. Requests for a
//! sandbox's envd name it in `E2b-Sandbox-Id`. No E2B code runs in the guest: every
//! operation goes to our agent through the SDK, so any image works.

mod connect;
mod control;
mod envd;
mod files;
mod filesystem;
mod paused;
mod process;
mod process_table;
mod state;

pub use state::{E2bShared, E2bState};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header carrying the API key.
const API_KEY_HEADER: &str = "x-api-key";

/// The endpoint's application over `state`; its deadline keeper runs from here on.
pub fn app(state: E2bShared) -> Router {
    tokio::spawn(keep_deadlines(state.clone()));
    let control = Router::new()
        .route("/sandboxes", post(control::create).get(control::list))
        .route("/v2/sandboxes", post(control::create).get(control::list))
        .route("/sandboxes/{id}", get(control::get).delete(control::kill))
        .route("/sandboxes/{id}/timeout", post(control::set_timeout))
        .route("/sandboxes/{id}/connect", post(control::connect))
        .route("/v2/sandboxes/{id}/connect", post(control::connect))
        .route("/sandboxes/{id}/refreshes", post(control::refresh))
        .route("/sandboxes/{id}/pause", post(paused::pause))
        .route("/sandboxes/{id}/resume", post(paused::resume_call))
        .route("/sandboxes/{id}/fork", post(paused::fork))
        .fallback(unsupported)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_api_key));
    let rpc = Router::new()
        .route("/process.Process/Start", post(process::start))
        .route("/process.Process/Connect", post(process::connect))
        .route("/process.Process/List", post(process::list))
        .route("/process.Process/SendSignal", post(process::send_signal))
        .route("/process.Process/SendInput", post(process::send_input))
        .route("/process.Process/CloseStdin", post(process::close_stdin))
        .route("/process.Process/Update", post(process::pty_update))
        .route("/process.Process/StreamInput", post(process::stream_input))
        .route("/filesystem.Filesystem/Stat", post(filesystem::stat))
        .route("/filesystem.Filesystem/ListDir", post(filesystem::list_dir))
        .route("/filesystem.Filesystem/MakeDir", post(filesystem::make_dir))
        .route("/filesystem.Filesystem/Move", post(filesystem::rename))
        .route("/filesystem.Filesystem/Remove", post(filesystem::remove))
        .route("/filesystem.Filesystem/WatchDir", post(filesystem::watchers))
        .route("/filesystem.Filesystem/CreateWatcher", post(filesystem::watchers))
        .route("/filesystem.Filesystem/GetWatcherEvents", post(filesystem::watchers))
        .route("/filesystem.Filesystem/RemoveWatcher", post(filesystem::watchers))
        .layer(DefaultBodyLimit::max(connect::MAX_REQUEST));
    let files = Router::new()
        .route("/files", get(files::download).post(files::upload))
        // Uploads stream to the guest and may be of any size.
        .layer(DefaultBodyLimit::disable());
    control
        .merge(rpc)
        .merge(files)
        .route("/health", get(health))
        .with_state(state)
}

/// The control plane's gate: the server's token in `X-API-Key`.
async fn require_api_key(State(state): State<E2bShared>, request: Request, next: Next) -> Response {
    match api_key_refusal(&state, request.headers()) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    }
}

/// The server's token in the form E2B's clients accept as an API key (`e2b_` and hex; older
/// clients refuse anything else): `e2b_` in place of `msbt_`. Either form is accepted.
pub fn api_key(token: &str) -> String {
    format!("e2b_{}", token.strip_prefix("msbt_").unwrap_or(token))
}

/// The 401 for a request without the API key; `None` when it has it (or none is needed).
fn api_key_refusal(state: &E2bShared, headers: &HeaderMap) -> Option<Response> {
    let expected = state.app.token.as_deref()?;
    let given = headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    if crate::token::matches(expected, given) || crate::token::matches(&api_key(expected), given) {
        None
    } else {
        Some(control::error(
            StatusCode::UNAUTHORIZED,
            "invalid or missing API key (X-API-Key)",
        ))
    }
}

/// `GET /health`: the endpoint's, or with `E2b-Sandbox-Id` that sandbox's envd's (502 in
/// E2B's words when the sandbox is gone, so clients know it was killed).
async fn health(State(state): State<E2bShared>, headers: HeaderMap) -> Response {
    let Some(id) = headers.get(envd::SANDBOX_HEADER).and_then(|v| v.to_str().ok()) else {
        return axum::Json(serde_json::json!({ "message": "healthy" })).into_response();
    };
    match state.sandbox(id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => control::error(StatusCode::BAD_GATEWAY, e.message),
    }
}

/// What the control plane does not offer, named (after the API key check).
async fn unsupported(State(state): State<E2bShared>, request: Request) -> Response {
    if let Some(refusal) = api_key_refusal(&state, request.headers()) {
        return refusal;
    }
    let path = request.uri().path();
    let feature = FEATURES
        .iter()
        .find(|(marker, _)| path.split('/').any(|part| part == *marker))
        .map(|(_, feature)| *feature);
    match feature {
        Some(feature) => control::unsupported(feature),
        None => control::error(StatusCode::NOT_FOUND, format!("no route {} {path}", request.method())),
    }
}

/// A known path with another method (after the API key check).
async fn method_not_allowed(State(state): State<E2bShared>, request: Request) -> Response {
    if let Some(refusal) = api_key_refusal(&state, request.headers()) {
        return refusal;
    }
    let message = format!("{} is not a method of {}", request.method(), request.uri().path());
    control::error(StatusCode::METHOD_NOT_ALLOWED, message)
}

/// Path segments of E2B's API outside our subset, and the feature each belongs to.
const FEATURES: &[(&str, &str)] = &[
    ("pause", "pausing sandboxes"),
    ("resume", "resuming paused sandboxes"),
    ("snapshots", "snapshots"),
    ("fork", "forking sandboxes"),
    ("templates", "template builds"),
    ("builds", "template builds"),
    ("volumes", "volumes"),
    ("secrets", "secrets"),
    ("metrics", "sandbox metrics"),
    ("logs", "sandbox logs"),
    ("network", "changing a sandbox's network"),
    ("teams", "teams"),
    ("access-tokens", "access tokens"),
    ("api-keys", "API keys"),
];

/// Kills each sandbox made here when its timeout passes, checking every second. Sandboxes
/// made by an earlier server get the deadline they were made with.
async fn keep_deadlines(state: E2bShared) {
    if let Ok(all) = state.app.msb.list().await {
        for info in all {
            let end_at = info
                .spec
                .labels
                .get(state::END_AT_LABEL)
                .and_then(|v| v.parse::<u64>().ok());
            if let (Some(end_at), None) = (end_at, state.deadline(&info.name)) {
                state.set_deadline(&info.name, UNIX_EPOCH + Duration::from_secs(end_at));
            }
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for id in state.expired(SystemTime::now()) {
            match state.kill(&id).await {
                Ok(()) => tracing::info!(sandbox = %id, "killed an E2B sandbox whose timeout passed"),
                Err(e) => tracing::warn!(sandbox = %id, error = %e, "killing an E2B sandbox whose timeout passed"),
            }
        }
    }
}
