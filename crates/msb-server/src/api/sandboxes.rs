//! `/v1/sandboxes`: create (the builder's whole spec as JSON), list, get, start, stop,
//! kill, remove.

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::Shared;
use axum::extract::State;
use axum::http::StatusCode;
use microsandbox::{Microsandbox, Mount, NetworkSpec, Patch, PublishedPort, SandboxBuilder, SandboxInfo, Transport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(create_sandbox, list_sandboxes))
        .routes(routes!(get_sandbox, remove_sandbox))
        .routes(routes!(start_sandbox))
        .routes(routes!(stop_sandbox))
        .routes(routes!(kill_sandbox))
}

/// What to create: the settings of the SDK's `SandboxBuilder`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    /// Its name (generated when absent).
    pub name: Option<String>,
    /// The OCI image to boot (`python`, `registry/repo:tag`); this or `rootfs`.
    pub image: Option<String>,
    /// A host directory or disk image to boot instead of an image.
    pub rootfs: Option<String>,
    /// Virtual CPUs.
    pub cpus: Option<u32>,
    /// Memory, MiB.
    pub memory_mib: Option<u32>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of its processes.
    pub workdir: Option<String>,
    /// User its processes run as.
    pub user: Option<String>,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Its command (replaces the image's Cmd); runs in the background.
    pub command: Option<Vec<String>>,
    /// Its hostname (default: its name).
    pub hostname: Option<String>,
    /// The shell `exec`'s `shell` field runs (default `/bin/sh`).
    pub shell: Option<String>,
    /// Named scripts, placed under `/.msb/scripts`.
    #[serde(default)]
    pub scripts: BTreeMap<String, String>,
    /// Changes to its root before it boots (the serde form of `msb_types::Patch`).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub patches: Vec<Patch>,
    /// Mounts: binds, files, volumes, tmpfs, disks (the serde form of `msb_types::Mount`).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub mounts: Vec<Mount>,
    /// Its network: policy, DNS, TLS interception (the serde form of
    /// `msb_types::NetworkSpec`; secrets go in `secrets`).
    #[schema(value_type = Option<Object>)]
    pub network: Option<NetworkSpec>,
    /// No network interface at all.
    #[serde(default)]
    pub no_network: bool,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Stop after this many seconds without an exec or connection.
    pub idle_timeout_secs: Option<u64>,
    /// Stop after this many seconds whatever happens.
    pub max_duration_secs: Option<u64>,
    /// Size of the writable layer, MiB.
    pub upper_size_mib: Option<u32>,
    /// Removed when it stops.
    #[serde(default)]
    pub ephemeral: bool,
    /// Replace a sandbox of the same name.
    #[serde(default)]
    pub replace: bool,
    /// When its image is pulled: `if_missing` (default), `always`, `never`.
    pub pull_policy: Option<PullPolicyName>,
    /// Secrets: the guest sees a placeholder; the value is put in only on the way to the
    /// allowed hosts.
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
}

/// A published port.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// Host port.
    pub host: u16,
    /// Guest port.
    pub guest: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: PortProtocol,
    /// Host address to listen on (default 127.0.0.1).
    #[schema(value_type = Option<String>)]
    pub host_ip: Option<std::net::IpAddr>,
}

/// A port's transport.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// When an image is pulled.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicyName {
    /// Only when it is not in the local store.
    IfMissing,
    /// Every time.
    Always,
    /// Never.
    Never,
}

/// A secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// The environment variable that holds its placeholder in the guest.
    pub env: String,
    /// Its value (kept in the sandbox's 0600 secrets file only).
    #[schema(value_type = String)]
    pub value: zeroize::Zeroizing<String>,
    /// Hosts the value may be sent to (`api.example.com`, `*.example.com`).
    pub hosts: Vec<String>,
    /// The placeholder the guest sees (default: a random one).
    pub placeholder: Option<String>,
}

impl std::fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSpec")
            .field("env", &self.env)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl CreateSandbox {
    /// The SDK builder these settings describe.
    pub fn builder(self, msb: &Microsandbox) -> ApiResult<SandboxBuilder> {
        let name = match self.name {
            Some(name) => name,
            None => microsandbox::generate_name()?,
        };
        let mut b = msb.builder(name);
        b = match (self.image, self.rootfs) {
            (Some(image), None) => b.image(image),
            (None, Some(path)) => b.rootfs(path),
            _ => return Err(ApiError::invalid("give exactly one of 'image' and 'rootfs'")),
        };
        if let Some(n) = self.cpus {
            b = b.cpus(n);
        }
        if let Some(mib) = self.memory_mib {
            b = b.memory(mib);
        }
        b = b.envs(self.env);
        if let Some(dir) = self.workdir {
            b = b.workdir(dir);
        }
        if let Some(user) = self.user {
            b = b.user(user);
        }
        if let Some(argv) = self.entrypoint {
            b = b.entrypoint(argv);
        }
        if let Some(args) = self.command {
            b = b.command(args);
        }
        if let Some(host) = self.hostname {
            b = b.hostname(host);
        }
        if let Some(shell) = self.shell {
            b = b.shell(shell);
        }
        b = b.scripts(self.scripts).labels(self.labels);
        for patch in self.patches {
            b = b.add_patch(patch);
        }
        for mount in self.mounts {
            b = b.mount(mount);
        }
        if let Some(network) = self.network {
            if !network.secrets.is_empty() {
                return Err(ApiError::invalid(
                    "secrets go in the top-level 'secrets' field, with their values",
                ));
            }
            b = b.network(network);
        }
        if self.no_network {
            b = b.no_network();
        }
        for port in self.ports {
            let transport = match port.protocol {
                PortProtocol::Tcp => Transport::Tcp,
                PortProtocol::Udp => Transport::Udp,
            };
            let mut published = PublishedPort::new(port.host, port.guest, transport);
            if let Some(ip) = port.host_ip {
                published.host_ip = ip;
            }
            b = b.publish(published);
        }
        if let Some(secs) = self.idle_timeout_secs {
            b = b.idle_timeout(Duration::from_secs(secs));
        }
        if let Some(secs) = self.max_duration_secs {
            b = b.max_duration(Duration::from_secs(secs));
        }
        if let Some(mib) = self.upper_size_mib {
            b = b.upper_size(mib);
        }
        if self.ephemeral {
            b = b.ephemeral();
        }
        if self.replace {
            b = b.replace();
        }
        if let Some(policy) = self.pull_policy {
            b = b.pull_policy(match policy {
                PullPolicyName::IfMissing => microsandbox::image::PullPolicy::IfMissing,
                PullPolicyName::Always => microsandbox::image::PullPolicy::Always,
                PullPolicyName::Never => microsandbox::image::PullPolicy::Never,
            });
        }
        for secret in self.secrets {
            b = b.secret(|mut s| {
                s = s.env(secret.env).value(secret.value.as_str());
                for host in secret.hosts {
                    s = s.allow_host(host);
                }
                match secret.placeholder {
                    Some(p) => s.placeholder(p),
                    None => s,
                }
            });
        }
        Ok(b)
    }
}

/// A sandbox as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxView {
    /// Its name.
    pub name: String,
    /// `created`, `running`, `stopped` or `crashed`.
    pub state: String,
    /// The image reference, or the rootfs path.
    pub source: String,
    /// Created, seconds since the Unix epoch.
    pub created_at: i64,
    /// Last started.
    pub started_at: Option<i64>,
    /// Last stopped or found crashed.
    pub stopped_at: Option<i64>,
    /// Exit code of its command, when it had one and it ended.
    pub exit_code: Option<i32>,
    /// Why the last run ended.
    pub exit_reason: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The whole spec it was created with.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

impl SandboxView {
    /// The view of `info`.
    pub fn of(info: SandboxInfo) -> ApiResult<SandboxView> {
        Ok(SandboxView {
            source: info.source(),
            state: info.state.as_str().to_lowercase(),
            spec: serde_json::to_value(&info.spec).map_err(|e| ApiError::internal(e.to_string()))?,
            labels: info.spec.labels.clone().into_iter().collect(),
            name: info.name,
            created_at: info.created_at,
            started_at: info.started_at,
            stopped_at: info.stopped_at,
            exit_code: info.exit_code,
            exit_reason: info.exit_reason,
        })
    }
}

/// A sandbox's name in a path.
#[derive(Debug, Deserialize, IntoParams)]
pub struct Named {
    /// The sandbox.
    pub name: String,
}

/// Creates a sandbox and starts it (it runs on after the request, and the server).
#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", request_body = CreateSandbox,
    responses((status = 201, body = SandboxView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_sandbox(
    State(state): State<Shared>,
    Json(req): Json<CreateSandbox>,
) -> ApiResult<(StatusCode, Json<SandboxView>)> {
    let sb = req.builder(&state.msb)?.create_detached().await?;
    state.keep(&sb);
    Ok((StatusCode::CREATED, Json(SandboxView::of(sb.info().await?)?)))
}

/// Every sandbox.
#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes", responses((status = 200, body = Vec<SandboxView>)))]
async fn list_sandboxes(State(state): State<Shared>) -> ApiResult<Json<Vec<SandboxView>>> {
    let all = state.msb.list().await?;
    Ok(Json(all.into_iter().map(SandboxView::of).collect::<ApiResult<_>>()?))
}

/// One sandbox.
#[utoipa::path(get, path = "/v1/sandboxes/{name}", tag = "sandboxes", params(Named),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody)))]
async fn get_sandbox(State(state): State<Shared>, Path(Named { name }): Path<Named>) -> ApiResult<Json<SandboxView>> {
    Ok(Json(SandboxView::of(state.msb.get(&name).await?)?))
}

/// Starts a stopped sandbox.
#[utoipa::path(post, path = "/v1/sandboxes/{name}/start", tag = "sandboxes", params(Named),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_sandbox(State(state): State<Shared>, Path(Named { name }): Path<Named>) -> ApiResult<Json<SandboxView>> {
    state.forget(&name);
    let sb = state.msb.start_detached(&name).await?;
    state.keep(&sb);
    Ok(Json(SandboxView::of(sb.info().await?)?))
}

/// How long a stop waits.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Seconds the sandbox's processes get after the stop signal before it is killed
    /// (default 10).
    pub timeout_secs: Option<u64>,
}

/// Stops a sandbox: its stop signal, then a kill after the grace period.
#[utoipa::path(post, path = "/v1/sandboxes/{name}/stop", tag = "sandboxes", params(Named),
    request_body(content = Option<StopRequest>),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody)))]
async fn stop_sandbox(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    body: Option<Json<StopRequest>>,
) -> ApiResult<Json<SandboxView>> {
    let grace = Duration::from_secs(body.and_then(|Json(b)| b.timeout_secs).unwrap_or(10).min(3600));
    let before = state.msb.get(&name).await?;
    state.forget(&name);
    state.msb.stop(&name, grace).await?;
    after_stop(&state, before).await
}

/// Kills a sandbox at once.
#[utoipa::path(post, path = "/v1/sandboxes/{name}/kill", tag = "sandboxes", params(Named),
    responses((status = 200, body = SandboxView), (status = 404, body = ErrorBody)))]
async fn kill_sandbox(State(state): State<Shared>, Path(Named { name }): Path<Named>) -> ApiResult<Json<SandboxView>> {
    let before = state.msb.get(&name).await?;
    state.forget(&name);
    state.msb.kill(&name).await?;
    after_stop(&state, before).await
}

/// The sandbox after a stop: its record now, or (an ephemeral one, removed as it stopped)
/// its record from before, marked `removed`.
async fn after_stop(state: &Shared, before: SandboxInfo) -> ApiResult<Json<SandboxView>> {
    match state.msb.get(&before.name).await {
        Ok(info) => Ok(Json(SandboxView::of(info)?)),
        Err(microsandbox::MicrosandboxError::SandboxNotFound(_)) => {
            let mut view = SandboxView::of(before)?;
            view.state = "removed".into();
            Ok(Json(view))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a remove stops a running sandbox first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Stop it first if it runs.
    #[serde(default)]
    pub force: bool,
}

/// Removes a sandbox and everything it stored.
#[utoipa::path(delete, path = "/v1/sandboxes/{name}", tag = "sandboxes", params(Named, RemoveQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_sandbox(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    state.forget(&name);
    state.msb.remove(&name, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}
