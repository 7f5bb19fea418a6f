//! `/v1/sandboxes/{name}/metrics` and `/v1/metrics`: resource use now, as the SDK measures
//! it (over a quarter of a second).

use super::sandboxes::Named;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::Shared;
use axum::extract::State;
use microsandbox::{NetworkCounters, SandboxMetrics};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(sandbox_metrics))
        .routes(routes!(all_metrics))
}

/// A sandbox's resource use.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricsView {
    /// Guest CPU use, percent of one CPU.
    pub cpu_percent: f32,
    /// Guest memory in use (total minus available), bytes.
    pub memory_used_bytes: u64,
    /// Guest memory configured, bytes.
    pub memory_limit_bytes: u64,
    /// Used bytes of the root filesystem (an image root: its writable layer).
    pub disk_used_bytes: u64,
    /// Size of the root filesystem, bytes.
    pub disk_total_bytes: u64,
    /// Bytes the guest received over its network interface.
    pub net_rx_bytes: u64,
    /// Bytes the guest sent.
    pub net_tx_bytes: u64,
    /// Resident memory of the VM's host processes, bytes.
    pub host_rss_bytes: u64,
    /// Host CPU use of those processes, percent of one CPU.
    pub host_cpu_percent: f32,
    /// Seconds since the sandbox started.
    pub uptime_secs: u64,
    /// Bytes the guest read from its disks since boot.
    pub disk_read_bytes: u64,
    /// Bytes the guest wrote to its disks since boot.
    pub disk_write_bytes: u64,
    /// When it was measured, RFC 3339 (UTC).
    pub timestamp: String,
    /// What its network stack carried and refused (absent without a network).
    pub network: Option<NetworkView>,
}

/// What a sandbox's network stack has carried and refused since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NetworkView {
    /// Bytes of frames from the guest.
    pub bytes_out: u64,
    /// Bytes of frames to the guest.
    pub bytes_in: u64,
    /// Frames from the guest.
    pub packets_out: u64,
    /// Frames to the guest.
    pub packets_in: u64,
    /// Flows (TCP connections, UDP associations) open now.
    pub flows_open: u64,
    /// Frames from the guest dropped as malformed or of a kind the stack does not serve.
    pub frames_dropped: u64,
    /// Connections accepted on published ports and let in.
    pub published_accepts: u64,
    /// Flows the policy refused.
    pub denied_policy: u64,
    /// Flows refused because the sandbox had its maximum open.
    pub denied_limit: u64,
    /// Flows the upstream refused or could not be reached.
    pub upstream_failed: u64,
    /// DNS queries the gateway answered.
    pub dns_queries: u64,
    /// DNS queries answered NXDOMAIN because the name is blocked or denied.
    pub dns_denied: u64,
    /// Addresses dropped from DNS answers as rebinding attempts.
    pub dns_rebinding_dropped: u64,
    /// DNS queries answered SERVFAIL because the upstream failed or was overloaded.
    pub dns_failed: u64,
}

impl From<SandboxMetrics> for MetricsView {
    fn from(m: SandboxMetrics) -> MetricsView {
        let since_epoch = m.timestamp.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        MetricsView {
            cpu_percent: m.cpu_percent,
            memory_used_bytes: m.memory_used_bytes,
            memory_limit_bytes: m.memory_limit_bytes,
            disk_used_bytes: m.disk_used_bytes,
            disk_total_bytes: m.disk_total_bytes,
            net_rx_bytes: m.net_rx_bytes,
            net_tx_bytes: m.net_tx_bytes,
            host_rss_bytes: m.host_rss_bytes,
            host_cpu_percent: m.host_cpu_percent,
            uptime_secs: m.uptime.as_secs(),
            disk_read_bytes: m.disk_read_bytes,
            disk_write_bytes: m.disk_write_bytes,
            timestamp: super::fs::rfc3339(i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX), 0),
            network: m.network.map(NetworkView::from),
        }
    }
}

impl From<NetworkCounters> for NetworkView {
    fn from(n: NetworkCounters) -> NetworkView {
        NetworkView {
            bytes_out: n.bytes_out,
            bytes_in: n.bytes_in,
            packets_out: n.packets_out,
            packets_in: n.packets_in,
            flows_open: n.flows_open,
            frames_dropped: n.frames_dropped,
            published_accepts: n.published_accepts,
            denied_policy: n.denied_policy,
            denied_limit: n.denied_limit,
            upstream_failed: n.upstream_failed,
            dns_queries: n.dns_queries,
            dns_denied: n.dns_denied,
            dns_rebinding_dropped: n.dns_rebinding_dropped,
            dns_failed: n.dns_failed,
        }
    }
}

/// A running sandbox's resource use now.
#[utoipa::path(get, path = "/v1/sandboxes/{name}/metrics", tag = "metrics", params(Named),
    responses((status = 200, body = MetricsView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn sandbox_metrics(
    State(state): State<Shared>,
    Path(Named { name }): Path<Named>,
) -> ApiResult<Json<MetricsView>> {
    let m = state
        .with_sandbox(&name, |sb| async move { sb.metrics().await })
        .await?;
    Ok(Json(m.into()))
}

/// The resource use of every running sandbox, by name (one that stops meanwhile is left
/// out).
#[utoipa::path(get, path = "/v1/metrics", tag = "metrics",
    responses((status = 200, body = BTreeMap<String, MetricsView>)))]
async fn all_metrics(State(state): State<Shared>) -> ApiResult<Json<BTreeMap<String, MetricsView>>> {
    let all = state.msb.all_metrics().await?;
    Ok(Json(all.into_iter().map(|(name, m)| (name, m.into())).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn metrics_keep_every_number_and_say_the_time_in_rfc3339() {
        let m = SandboxMetrics {
            cpu_percent: 12.5,
            memory_used_bytes: 1,
            memory_limit_bytes: 2,
            disk_used_bytes: 3,
            disk_total_bytes: 4,
            net_rx_bytes: 5,
            net_tx_bytes: 6,
            host_rss_bytes: 7,
            host_cpu_percent: 8.0,
            uptime: Duration::from_millis(9_999),
            disk_read_bytes: 10,
            disk_write_bytes: 11,
            timestamp: UNIX_EPOCH + Duration::from_secs(86_400),
            network: Some(NetworkCounters {
                dns_failed: 12,
                ..NetworkCounters::default()
            }),
        };
        let view = MetricsView::from(m);
        assert_eq!(view.uptime_secs, 9);
        assert_eq!(view.timestamp, "1970-01-02T00:00:00Z");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["network"]["dns_failed"], 12);
        assert_eq!(json["disk_write_bytes"], 11);
    }
}
