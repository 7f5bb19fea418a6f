//! DNS at the gateway: the guest's queries answered through the upstream resolver, policed
//! (blocked and denied names get NXDOMAIN), cleaned (rebinding answers dropped, AAAA empty),
//! and every answered address pinned to its name for the policy's domain rules.

use crate::policy::Policy;
use msb_types::DnsSpec;
use std::net::IpAddr;
use std::sync::Arc;

/// Which names this sandbox's DNS answered with which address, each kept at least a minute.
#[derive(Debug, Default)]
pub struct Pins {}

impl Pins {
    /// Names pinned to `ip` now (lower case, no trailing dot).
    pub fn names(&self, ip: IpAddr) -> Vec<String> {
        let _ = ip;
        unimplemented!("filled in by the DNS work")
    }
}

/// The gateway's DNS service for one sandbox.
#[derive(Debug)]
pub struct Interceptor {
    pins: Arc<Pins>,
}

impl Interceptor {
    /// DNS for a sandbox with `spec` whose gateway (`host.microsandbox.internal`) is
    /// `gateway`, policing names with `policy`, pinning into `pins`.
    pub fn new(spec: &DnsSpec, gateway: IpAddr, policy: Arc<Policy>, pins: Arc<Pins>) -> std::io::Result<Interceptor> {
        let _ = (spec, policy, gateway);
        Ok(Interceptor { pins })
    }

    /// The reply to one query message (a UDP payload, or a TCP message without its length
    /// prefix); `None` when nothing should be sent back (not a query at all).
    pub async fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let _ = (query, &self.pins);
        unimplemented!("filled in by the DNS work")
    }
}
