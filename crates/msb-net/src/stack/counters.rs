//! What the stack has done, as atomics the supervisor can read while it runs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one sandbox's stack; the stack writes them, anyone may [`snapshot`](Counters::snapshot).
#[derive(Debug, Default)]
pub struct Counters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    frames_dropped: AtomicU64,
    flows_open: AtomicU64,
    denied_policy: AtomicU64,
    denied_max_connections: AtomicU64,
    upstream_refused: AtomicU64,
    upstream_unreachable: AtomicU64,
    published_accepts: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Frame bytes from the guest.
    pub bytes_in: u64,
    /// Frame bytes to the guest.
    pub bytes_out: u64,
    /// Frames from the guest.
    pub packets_in: u64,
    /// Frames to the guest.
    pub packets_out: u64,
    /// Frames from the guest that were malformed or of a kind the stack does not serve.
    pub frames_dropped: u64,
    /// TCP and UDP flows open now (held, sniffing, relaying, published).
    pub flows_open: u64,
    /// Flows the policy refused.
    pub denied_policy: u64,
    /// Flows refused because `max_connections` were open.
    pub denied_max_connections: u64,
    /// Flows whose upstream refused the connection.
    pub upstream_refused: u64,
    /// Flows whose upstream could not be reached in time.
    pub upstream_unreachable: u64,
    /// Connections accepted on published TCP ports and let through.
    pub published_accepts: u64,
}

/// One counter to bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    DeniedPolicy,
    DeniedMaxConnections,
    UpstreamRefused,
    UpstreamUnreachable,
    PublishedAccept,
    FrameDropped,
}

impl Counters {
    /// Reads every counter (each atomically; the set is not one transaction).
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            packets_in: get(&self.packets_in),
            packets_out: get(&self.packets_out),
            frames_dropped: get(&self.frames_dropped),
            flows_open: get(&self.flows_open),
            denied_policy: get(&self.denied_policy),
            denied_max_connections: get(&self.denied_max_connections),
            upstream_refused: get(&self.upstream_refused),
            upstream_unreachable: get(&self.upstream_unreachable),
            published_accepts: get(&self.published_accepts),
        }
    }

    pub(crate) fn bump(&self, which: Count) {
        let counter = match which {
            Count::DeniedPolicy => &self.denied_policy,
            Count::DeniedMaxConnections => &self.denied_max_connections,
            Count::UpstreamRefused => &self.upstream_refused,
            Count::UpstreamUnreachable => &self.upstream_unreachable,
            Count::PublishedAccept => &self.published_accepts,
            Count::FrameDropped => &self.frames_dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds traffic counted locally over one batch (one atomic add per batch, not per frame).
    pub(crate) fn add_traffic(&self, traffic: &Traffic) {
        self.bytes_in.fetch_add(traffic.bytes_in, Ordering::Relaxed);
        self.packets_in.fetch_add(traffic.packets_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(traffic.bytes_out, Ordering::Relaxed);
        self.packets_out.fetch_add(traffic.packets_out, Ordering::Relaxed);
    }

    pub(crate) fn set_flows_open(&self, n: usize) {
        self.flows_open.store(n as u64, Ordering::Relaxed);
    }
}

/// Frame traffic counted by the engine between flushes into [`Counters`].
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) bytes_in: u64,
    pub(crate) packets_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) packets_out: u64,
}

impl Traffic {
    pub(crate) fn take(&mut self) -> Traffic {
        std::mem::take(self)
    }
}
