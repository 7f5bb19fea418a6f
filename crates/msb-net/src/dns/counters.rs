//! What a sandbox's DNS has done, counted for its metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running counts of a sandbox's DNS traffic.
#[derive(Debug, Default)]
pub struct Counters {
    queries: AtomicU64,
    answered_locally: AtomicU64,
    blocked: AtomicU64,
    rebinding_dropped: AtomicU64,
    upstream_failures: AtomicU64,
    shed: AtomicU64,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Messages the guest sent (malformed ones included).
    pub queries: u64,
    /// Replies made without the upstream: the gateway's name, AAAA/SVCB/HTTPS, FORMERR, NOTIMP.
    pub answered_locally: u64,
    /// Names answered NXDOMAIN because the blocklist or the policy denies them.
    pub blocked: u64,
    /// A records dropped from upstream answers as rebinding attempts.
    pub rebinding_dropped: u64,
    /// Queries answered SERVFAIL because no upstream server answered in time.
    pub upstream_failures: u64,
    /// Queries answered SERVFAIL because too many were already waiting on the upstream.
    pub shed: u64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    Queries,
    AnsweredLocally,
    Blocked,
    RebindingDropped,
    UpstreamFailures,
    Shed,
}

impl Counters {
    /// Adds `n` to `which`.
    pub(crate) fn add(&self, which: Count, n: u64) {
        let counter = match which {
            Count::Queries => &self.queries,
            Count::AnsweredLocally => &self.answered_locally,
            Count::Blocked => &self.blocked,
            Count::RebindingDropped => &self.rebinding_dropped,
            Count::UpstreamFailures => &self.upstream_failures,
            Count::Shed => &self.shed,
        };
        // Independent statistics: no ordering with other memory is needed.
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            queries: get(&self.queries),
            answered_locally: get(&self.answered_locally),
            blocked: get(&self.blocked),
            rebinding_dropped: get(&self.rebinding_dropped),
            upstream_failures: get(&self.upstream_failures),
            shed: get(&self.shed),
        }
    }
}
