//! E2B's control plane: sandboxes created from templates (image aliases), got, listed,
//! killed, their timeouts set and refreshed. Authenticated by `X-API-Key` (the server's
//! token); errors are `{code, message}` with the HTTP status as the code.

use super::state::{deadline_in, E2bShared, END_AT_LABEL, METADATA_PREFIX, TEMPLATE_LABEL};
use crate::error::ApiError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use microsandbox::{ErrorKind, SandboxInfo, SandboxState};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The envd version we answer with. It decides what E2B's clients try: 0.5.7 has the
/// default user (0.4.0), `CloseStdin` (0.5.2) and raw uploads (0.5.7), and is below file
/// metadata (0.6.2), which clients then refuse themselves.
pub const ENVD_VERSION: &str = "0.5.7";
/// E2B's default sandbox timeout (seconds).
pub const DEFAULT_TIMEOUT: u64 = 300;
/// The longest timeout we accept (E2B's own ceiling): also every sandbox's hard limit,
/// enforced by its supervisor even when this server is gone.
pub const MAX_TIMEOUT: u64 = 24 * 60 * 60;

/// An error in the control plane's shape.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "code": status.as_u16(), "message": message.into() })),
    )
        .into_response()
}

fn from_api(e: ApiError) -> Response {
    error(e.status, e.message)
}

pub fn from_sdk(e: microsandbox::MicrosandboxError) -> Response {
    from_api(e.into())
}

pub fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("sandbox {id} was not found"))
}

/// A JSON body (an empty one is the default value); a malformed one is refused in the
/// control plane's error shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Default> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| error(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
    }
}

/// `POST /sandboxes`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSandbox {
    #[serde(rename = "templateID")]
    template_id: String,
    timeout: Option<u64>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    env_vars: BTreeMap<String, String>,
    #[serde(default)]
    auto_pause: bool,
    #[serde(rename = "allow_internet_access")]
    allow_internet_access: Option<bool>,
    #[serde(default)]
    volume_mounts: Vec<Value>,
    mcp: Option<Value>,
    network: Option<Value>,
    iam: Option<Value>,
}

/// `POST /sandboxes`: creates and starts a sandbox from a template.
pub async fn create(State(state): State<E2bShared>, JsonBody(req): JsonBody<NewSandbox>) -> Response {
    if req.template_id.is_empty() {
        return error(StatusCode::BAD_REQUEST, "templateID is required");
    }
    for (asked, feature) in [
        (req.auto_pause, "autoPause (pausing sandboxes)"),
        (!req.volume_mounts.is_empty(), "volumeMounts"),
        (req.mcp.is_some(), "mcp (MCP gateways)"),
        (has_content(&req.network), "network rules"),
        (has_content(&req.iam), "iam (workload tokens)"),
    ] {
        if asked {
            return unsupported(feature);
        }
    }
    let timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout > MAX_TIMEOUT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("timeout must be at most {MAX_TIMEOUT} seconds"),
        );
    }
    let id = match microsandbox::random_hex(10) {
        Ok(hex) => format!("i{hex}"),
        Err(e) => return from_sdk(e),
    };
    let end_at = deadline_in(timeout);
    let mut builder = state
        .app
        .msb
        .builder(&id)
        .image(state.image_of(&req.template_id))
        .envs(req.env_vars)
        .label(TEMPLATE_LABEL, &req.template_id)
        .label(END_AT_LABEL, unix(end_at).to_string())
        .labels(
            req.metadata
                .into_iter()
                .map(|(k, v)| (format!("{METADATA_PREFIX}{k}"), v)),
        )
        .max_duration(Duration::from_secs(MAX_TIMEOUT))
        .ephemeral();
    if req.allow_internet_access == Some(false) {
        builder = builder.no_network();
    }
    let sb = match builder.create_detached().await {
        Ok(sb) => sb,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return error(
                StatusCode::NOT_FOUND,
                format!("template {:?} was not found: {e}", req.template_id),
            )
        }
        Err(e) => return from_sdk(e),
    };
    state.app.keep(&sb);
    state.set_deadline(&id, end_at);
    (StatusCode::CREATED, Json(sandbox_json(&state, &id, &req.template_id))).into_response()
}

/// Whether an optional JSON value says anything (not absent, null or empty).
fn has_content(value: &Option<Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Object(map)) => map.values().any(|v| has_content(&Some(v.clone()))),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

/// `POST /sandboxes/{id}/connect`: the sandbox, to connect to, resumed if it was paused
/// (201); a running one's timeout is extended to the one given, as E2B does (200).
pub async fn connect(
    State(state): State<E2bShared>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Timeout>,
) -> Response {
    let info = match e2b_sandbox(&state, &id).await {
        Ok(info) => info,
        Err(_) if super::paused::paused(&state, &id).is_some() => {
            return super::paused::resume(&state, &id, body.timeout).await
        }
        Err(response) => return response,
    };
    if let Some(timeout) = body.timeout {
        let wanted = deadline_in(timeout.min(MAX_TIMEOUT));
        if state.deadline(&id).is_none_or(|at| at < wanted) {
            state.set_deadline(&id, wanted);
        }
    }
    let template = info.spec.labels.get(TEMPLATE_LABEL).cloned().unwrap_or_default();
    (StatusCode::OK, Json(sandbox_json(&state, &id, &template))).into_response()
}

pub fn sandbox_json(state: &E2bShared, id: &str, template: &str) -> Value {
    json!({
        "sandboxID": id,
        "templateID": template,
        "clientID": "microsandbox",
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": state.access_token(id),
        "trafficAccessToken": null,
        "domain": null,
    })
}

/// `GET /sandboxes/{id}`.
pub async fn get(State(state): State<E2bShared>, Path(id): Path<String>) -> Response {
    let mut detail = match e2b_sandbox(&state, &id).await {
        Ok(info) => listed(&state, &info),
        Err(response) => match super::paused::paused(&state, &id) {
            Some(snapshot) => listed_paused(&snapshot),
            None => return response,
        },
    };
    detail["envdAccessToken"] = json!(state.access_token(&id));
    Json(detail).into_response()
}

/// The query of the lists.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// `k=v&k2=v2`: only sandboxes with this metadata.
    metadata: Option<String>,
    /// Only sandboxes in these states (`running`, `paused`), comma-separated.
    state: Option<String>,
    /// At most this many.
    limit: Option<usize>,
    /// Where the previous page ended.
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

/// `GET /v2/sandboxes` and `GET /sandboxes`: the running sandboxes made here, a page at a
/// time (`x-next-token` names the next page).
pub async fn list(State(state): State<E2bShared>, Query(q): Query<ListQuery>) -> Response {
    let all = match state.app.msb.list().await {
        Ok(all) => all,
        Err(e) => return from_sdk(e),
    };
    let wanted: Vec<(String, String)> = match q.metadata.as_deref().map(parse_metadata_filter).transpose() {
        Ok(filter) => filter.unwrap_or_default(),
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let states: Vec<&str> = q.state.as_deref().map(|s| s.split(',').collect()).unwrap_or_default();
    let running = all
        .iter()
        .filter(|info| is_e2b_running(&state, info))
        .filter(|_| states.is_empty() || states.contains(&"running"))
        .map(|info| (&info.spec, listed(&state, info)));
    let paused_ones = super::paused::all_paused(&state);
    let paused = paused_ones
        .iter()
        .filter(|_| states.is_empty() || states.contains(&"paused"))
        .map(|snapshot| (&snapshot.spec, listed_paused(snapshot)));
    let mut rows: Vec<Value> = running
        .chain(paused)
        .filter(|(spec, _)| {
            wanted
                .iter()
                .all(|(k, v)| spec.labels.get(&format!("{METADATA_PREFIX}{k}")) == Some(v))
        })
        .map(|(_, row)| row)
        .collect();
    rows.sort_by(|a, b| a["sandboxID"].as_str().cmp(&b["sandboxID"].as_str()));
    let start = match q.next_token.as_deref().map(str::parse::<usize>).transpose() {
        Ok(start) => start.unwrap_or(0),
        Err(_) => return error(StatusCode::BAD_REQUEST, "nextToken is not one this server gave"),
    };
    let limit = q.limit.unwrap_or(usize::MAX).max(1);
    let end = start.saturating_add(limit).min(rows.len());
    let page: Vec<Value> = rows.get(start.min(end)..end).unwrap_or_default().to_vec();
    let mut response = Json(page).into_response();
    if end < rows.len() {
        if let Ok(token) = HeaderValue::from_str(&end.to_string()) {
            response.headers_mut().insert("x-next-token", token);
        }
    }
    response
}

/// `k=v&k2=v2` (each part URL-encoded) as pairs.
fn parse_metadata_filter(text: &str) -> Result<Vec<(String, String)>, String> {
    if let Some(part) = text.split('&').find(|part| !part.is_empty() && !part.contains('=')) {
        return Err(format!("metadata filter part {part:?} is not key=value"));
    }
    Ok(form_urlencoded::parse(text.as_bytes()).into_owned().collect())
}

/// A running sandbox as E2B's lists show it.
fn listed(state: &E2bShared, info: &SandboxInfo) -> Value {
    let started = info.started_at.unwrap_or(info.created_at);
    let end_at = state
        .deadline(&info.name)
        .map(unix)
        .or_else(|| info.spec.labels.get(END_AT_LABEL).and_then(|v| v.parse().ok()))
        .unwrap_or(started);
    row(&info.spec, started, end_at, "running")
}

/// A paused sandbox (its snapshot) as E2B's lists show it: it has no end.
fn listed_paused(snapshot: &microsandbox::SnapshotInfo) -> Value {
    let mut row = row(&snapshot.spec, snapshot.created_at, snapshot.created_at, "paused");
    row["sandboxID"] = json!(snapshot.sandbox);
    row
}

/// The row of sandbox `spec` in `state`, started and ending when said.
fn row(spec: &microsandbox::SandboxSpec, started: i64, end_at: i64, state: &str) -> Value {
    let labels = &spec.labels;
    let metadata: BTreeMap<&str, &String> = labels
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(METADATA_PREFIX).map(|k| (k, v)))
        .collect();
    json!({
        "sandboxID": spec.name,
        "templateID": labels.get(TEMPLATE_LABEL),
        "clientID": "microsandbox",
        "startedAt": rfc3339(started),
        "endAt": rfc3339(end_at),
        "cpuCount": spec.resources.cpus,
        "memoryMB": spec.resources.memory_mib,
        "diskSizeMB": spec.upper_size_mib,
        "state": state,
        "envdVersion": ENVD_VERSION,
        "metadata": metadata,
    })
}

/// `DELETE /sandboxes/{id}`: kills the sandbox; nothing of it remains.
pub async fn kill(State(state): State<E2bShared>, Path(id): Path<String>) -> Response {
    if let Err(response) = e2b_sandbox(&state, &id).await {
        return match super::paused::paused(&state, &id) {
            Some(_) => super::paused::remove(&state, &id),
            None => response,
        };
    }
    match state.kill(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_sdk(e),
    }
}

/// The body of `timeout` (where it is required) and `connect`.
#[derive(Debug, Default, Deserialize)]
pub struct Timeout {
    timeout: Option<u64>,
}

/// `POST /sandboxes/{id}/timeout`: the sandbox is killed this many seconds from now.
pub async fn set_timeout(
    State(state): State<E2bShared>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Timeout>,
) -> Response {
    if let Err(response) = e2b_sandbox(&state, &id).await {
        return response;
    }
    let Some(timeout) = body.timeout else {
        return error(StatusCode::BAD_REQUEST, "timeout is required");
    };
    if timeout > MAX_TIMEOUT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("timeout must be at most {MAX_TIMEOUT} seconds"),
        );
    }
    state.set_deadline(&id, deadline_in(timeout));
    StatusCode::NO_CONTENT.into_response()
}

/// The body of `refreshes`.
#[derive(Debug, Default, Deserialize)]
pub struct Refresh {
    duration: Option<u64>,
}

/// `POST /sandboxes/{id}/refreshes`: keeps the sandbox alive `duration` more seconds.
pub async fn refresh(
    State(state): State<E2bShared>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Refresh>,
) -> Response {
    if let Err(response) = e2b_sandbox(&state, &id).await {
        return response;
    }
    let duration = body.duration.unwrap_or(60).min(MAX_TIMEOUT);
    state.set_deadline(&id, deadline_in(duration));
    StatusCode::NO_CONTENT.into_response()
}

/// The record of the running E2B sandbox `id`, or the 404 to answer.
pub async fn e2b_sandbox(state: &E2bShared, id: &str) -> Result<SandboxInfo, Response> {
    match state.app.msb.get(id).await {
        Ok(info) if is_e2b_running(state, &info) => Ok(info),
        Ok(_) => Err(not_found(id)),
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::Invalid => Err(not_found(id)),
        Err(e) => Err(from_sdk(e)),
    }
}

/// Whether `info` is a running sandbox made through this endpoint and not being killed.
fn is_e2b_running(state: &E2bShared, info: &SandboxInfo) -> bool {
    info.spec.labels.contains_key(TEMPLATE_LABEL) && info.state == SandboxState::Running && !state.is_dying(&info.name)
}

/// The answer to what the endpoint does not offer.
pub fn unsupported(feature: &str) -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        format!("{feature}: not supported by microsandbox's E2B-compatible endpoint"),
    )
}

/// Seconds since the Unix epoch.
pub fn unix(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn rfc3339(unix_secs: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_371_200), "2026-12-04T08:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn metadata_filters_are_decoded_pairs() {
        assert_eq!(
            parse_metadata_filter("user%3Dx=a+b&k=v%26w").unwrap(),
            vec![
                ("user=x".to_string(), "a b".to_string()),
                ("k".to_string(), "v&w".to_string())
            ]
        );
        assert!(parse_metadata_filter("novalue").is_err());
    }
}
