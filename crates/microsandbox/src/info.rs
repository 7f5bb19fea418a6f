//! What is known about a sandbox: its stored state and spec, and its measured resource use.

use msb_store::{SandboxRecord, SandboxState};
use msb_types::{RootSpec, SandboxSpec};
use serde::Serialize;
use std::time::Duration;

/// A sandbox as the state store knows it (reconciled with its supervisor's liveness).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxInfo {
    /// Name.
    pub name: String,
    /// Where it is in its life.
    pub state: SandboxState,
    /// What it was created with.
    pub spec: SandboxSpec,
    /// Pid of its supervisor while running.
    pub supervisor_pid: Option<u32>,
    /// Pid of its VMM while running.
    pub vmm_pid: Option<u32>,
    /// Created, seconds since the Unix epoch.
    pub created_at: i64,
    /// Last changed (state, spec), seconds since the Unix epoch.
    pub updated_at: i64,
    /// Last started.
    pub started_at: Option<i64>,
    /// Last stopped or found crashed.
    pub stopped_at: Option<i64>,
    /// Exit code of its command, when it had one and it ended.
    pub exit_code: Option<i32>,
    /// Why the last run ended.
    pub exit_reason: Option<String>,
}

impl SandboxInfo {
    pub(crate) fn from_record(record: SandboxRecord) -> crate::MicrosandboxResult<SandboxInfo> {
        let spec: SandboxSpec = record.spec()?;
        Ok(SandboxInfo {
            name: record.name,
            state: record.state,
            spec,
            supervisor_pid: record.supervisor_pid,
            vmm_pid: record.vmm_pid,
            created_at: record.created_at,
            updated_at: record.updated_at,
            started_at: record.started_at,
            stopped_at: record.stopped_at,
            exit_code: record.exit_code,
            exit_reason: record.exit_reason,
        })
    }

    /// What the sandbox boots from, for listings: the image reference, or the path.
    pub fn source(&self) -> String {
        match &self.spec.root {
            RootSpec::Oci(reference) => reference.clone(),
            RootSpec::Bind(dir) => dir.display().to_string(),
            RootSpec::DiskImage { path, .. } => path.display().to_string(),
        }
    }
}

/// A sandbox's resource use, measured over a quarter of a second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SandboxMetrics {
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
    /// Bytes sent over the network.
    pub net_tx_bytes: u64,
    /// Resident memory of the VM's host processes, bytes.
    pub host_rss_bytes: u64,
    /// Host CPU use of those processes, percent of one CPU.
    pub host_cpu_percent: f32,
    /// Time since the sandbox started (whole seconds in JSON, as `uptime_secs`).
    #[serde(rename = "uptime_secs", serialize_with = "whole_seconds")]
    pub uptime: Duration,
    /// Bytes the guest read from its disks since boot.
    pub disk_read_bytes: u64,
    /// Bytes the guest wrote to its disks since boot.
    pub disk_write_bytes: u64,
    /// When it was measured (RFC 3339 in JSON).
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: std::time::SystemTime,
    /// What its network stack carried and refused, when it has a network.
    pub network: Option<msb_protocol::NetworkCounters>,
}

fn whole_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn rfc3339<S: serde::Serializer>(t: &std::time::SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string())
}

impl From<msb_protocol::SandboxMetrics> for SandboxMetrics {
    fn from(m: msb_protocol::SandboxMetrics) -> Self {
        let g = m.guest;
        SandboxMetrics {
            cpu_percent: m.guest_cpu_permille as f32 / 10.0,
            memory_used_bytes: g.memory_total.saturating_sub(g.memory_available),
            memory_limit_bytes: m.memory_limit,
            disk_used_bytes: g.disk_used,
            disk_total_bytes: g.disk_total,
            net_rx_bytes: g.net_rx,
            net_tx_bytes: g.net_tx,
            host_rss_bytes: m.host_rss,
            host_cpu_percent: m.host_cpu_permille as f32 / 10.0,
            uptime: Duration::from_millis(m.uptime_ms),
            disk_read_bytes: g.disk_read,
            disk_write_bytes: g.disk_written,
            timestamp: std::time::SystemTime::now(),
            network: m.network,
        }
    }
}
