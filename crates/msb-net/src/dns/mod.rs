//! DNS at the gateway: the guest's queries answered through the upstream resolver, policed
//! (blocked and denied names get NXDOMAIN), cleaned (rebinding answers dropped, AAAA empty),
//! and every answered address pinned to its name for the policy's domain rules.
//!
//! What the guest sees:
//! - `host.microsandbox.internal` is the gateway (A, TTL 60); other names under
//!   `microsandbox.internal` do not exist.
//! - Blocked and policy-denied names, and names whose CNAME chain passes through one, are
//!   NXDOMAIN at once. Never REFUSED: glibc retries REFUSED for seconds.
//! - AAAA, SVCB and HTTPS questions get an empty NOERROR at once (the guest has no IPv6;
//!   SVCB/HTTPS hints would bypass pins and ECH would hide the TLS name), and such records
//!   are removed from forwarded answers.
//! - With rebinding protection, A records for private, shared, loopback, link-local,
//!   "this network", multicast and broadcast addresses are removed and the rest of the answer
//!   kept; an answer left with no address is an empty NOERROR ("no address for this name").
//! - When no upstream server answers in time: SERVFAIL.

mod blocklist;
mod counters;
mod pins;
mod upstream;
pub mod wire;

pub use counters::{CounterSnapshot, Counters};
pub use pins::{Pins, MAX_PINS, MIN_PIN};

use crate::policy::Policy;
use crate::ratelimit::RateLimit;
use blocklist::Blocklist;
use counters::Count;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use msb_types::{suffix_matches, DnsSpec};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use upstream::Upstream;
use wire::{GuestQuery, Parsed, Transport};

/// The gateway's name in the guest.
pub const GATEWAY_NAME: &str = "host.microsandbox.internal";
/// The zone of the gateway's name: nothing else in it exists.
const LOCAL_ZONE: &str = "microsandbox.internal";
/// TTL of the gateway's address record.
const LOCAL_TTL: u32 = 60;
/// Upstream queries one sandbox may have waiting at once; past this, SERVFAIL, so a guest
/// cannot tie up sockets and memory without bound.
pub const MAX_OUTSTANDING: usize = 256;

/// Whether the policy denies a name; behind a seam so tests can decide without a policy.
struct NameCheck(Box<dyn Fn(&str) -> bool + Send + Sync>);

impl fmt::Debug for NameCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NameCheck")
    }
}

/// The gateway's DNS service for one sandbox.
#[derive(Debug)]
pub struct Interceptor {
    gateway: IpAddr,
    blocklist: Blocklist,
    policy_denies: NameCheck,
    rebind_protection: bool,
    upstream: Upstream,
    pins: Arc<Pins>,
    outstanding: Semaphore,
    counters: Counters,
    /// Denials logged: a few a second (the guest chooses how many it causes).
    denials: std::sync::Mutex<RateLimit>,
}

impl Interceptor {
    /// DNS for a sandbox with `spec` whose gateway (`host.microsandbox.internal`) is
    /// `gateway`, policing names with `policy`, pinning into `pins`.
    pub fn new(spec: &DnsSpec, gateway: IpAddr, policy: Arc<Policy>, pins: Arc<Pins>) -> std::io::Result<Interceptor> {
        let check = NameCheck(Box::new(move |name| policy.denies_name(name)));
        Interceptor::with_name_check(spec, gateway, check, pins)
    }

    /// [`Interceptor::new`] with the policy's name check given directly.
    fn with_name_check(
        spec: &DnsSpec,
        gateway: IpAddr,
        policy_denies: NameCheck,
        pins: Arc<Pins>,
    ) -> std::io::Result<Interceptor> {
        Ok(Interceptor {
            gateway,
            blocklist: Blocklist::new(&spec.blocked_domains, &spec.blocked_suffixes),
            policy_denies,
            rebind_protection: spec.rebind_protection,
            upstream: Upstream::new(spec)?,
            pins,
            outstanding: Semaphore::new(MAX_OUTSTANDING),
            counters: Counters::default(),
            denials: std::sync::Mutex::new(RateLimit::new(5, 5)),
        })
    }

    /// This sandbox's DNS counts.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The reply to one query message (a UDP payload, or a TCP message without its length
    /// prefix); `None` when nothing should be sent back (not a query at all). The reply fits
    /// the UDP size the query advertises (512 without EDNS), else it is a bare truncated
    /// reply and the guest asks again over TCP, where [`Interceptor::answer_tcp`] answers.
    pub async fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        self.answer_over(query, Transport::Udp).await
    }

    /// [`Interceptor::answer`] for a query that came over TCP: replies up to 64 KiB.
    pub async fn answer_tcp(&self, query: &[u8]) -> Option<Vec<u8>> {
        self.answer_over(query, Transport::Tcp).await
    }

    /// The reply to `query`, sized for `transport`.
    async fn answer_over(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.counters.add(Count::Queries, 1);
        let query = match wire::parse_query(query) {
            Parsed::Ignore => return None,
            Parsed::Reply(reply) => {
                self.counters.add(Count::AnsweredLocally, 1);
                return Some(reply);
            }
            Parsed::Query(query) => query,
        };
        let reply = match self.answer_locally(&query) {
            Some(reply) => reply,
            None => self.forward(&query).await,
        };
        Some(query.finish(&reply, transport))
    }

    /// The reply when the gateway answers `query` itself, `None` when the upstream must.
    fn answer_locally(&self, query: &GuestQuery) -> Option<Message> {
        let name = query.name();
        let reply = if name == GATEWAY_NAME {
            match (query.query_type(), self.gateway) {
                (RecordType::A, IpAddr::V4(gateway)) if query.is_internet() => {
                    self.pins.pin(self.gateway, &[GATEWAY_NAME.to_string()], LOCAL_TTL);
                    query.reply_a(gateway, LOCAL_TTL)
                }
                _ => query.reply(ResponseCode::NoError),
            }
        } else if suffix_matches(name, LOCAL_ZONE) {
            query.reply(ResponseCode::NXDomain)
        } else if let Some(reason) = self.refusal(name) {
            self.deny(name, reason);
            return Some(query.reply(ResponseCode::NXDomain));
        } else if wire::is_withheld(query.query_type()) {
            query.reply(ResponseCode::NoError)
        } else if !query.is_internet() {
            query.reply(ResponseCode::NotImp)
        } else {
            return None;
        };
        self.counters.add(Count::AnsweredLocally, 1);
        Some(reply)
    }

    /// The upstream's answer to `query`, cleaned, its addresses pinned; SERVFAIL when there
    /// is none or too many queries are already waiting.
    async fn forward(&self, query: &GuestQuery) -> Message {
        let Ok(_slot) = self.outstanding.try_acquire() else {
            self.counters.add(Count::Shed, 1);
            return query.reply(ResponseCode::ServFail);
        };
        let upstream = match self.upstream.ask(query).await {
            Ok(upstream) => upstream,
            Err(e) => {
                self.counters.add(Count::UpstreamFailures, 1);
                tracing::debug!(name = ?query.name(), error = %e, "DNS query failed upstream: SERVFAIL");
                return query.reply(ResponseCode::ServFail);
            }
        };
        let cleaned = wire::clean_reply(query, upstream, self.rebind_protection, &|n| self.refusal(n).is_some());
        self.counters
            .add(Count::RebindingDropped, cleaned.rebinding_dropped as u64);
        if let Some(name) = &cleaned.refused_name {
            self.deny(name, self.refusal(name).unwrap_or("policy"));
            return query.reply(ResponseCode::NXDomain);
        }
        for (ip, ttl) in &cleaned.addresses {
            self.pins.pin(IpAddr::V4(*ip), &cleaned.names, *ttl);
        }
        cleaned.reply
    }

    /// Why `name` must not resolve, if it must not.
    fn refusal(&self, name: &str) -> Option<&'static str> {
        if self.blocklist.blocks(name) {
            Some("blocklist")
        } else if (self.policy_denies.0)(name) {
            Some("policy")
        } else {
            None
        }
    }

    /// Counts a denial of `name` and logs it, a few lines a second at most.
    fn deny(&self, name: &str, reason: &str) {
        self.counters.add(Count::Blocked, 1);
        let admitted = self.denials.lock().map(|mut limit| limit.admit(Instant::now()));
        if let Ok(Some(suppressed)) = admitted {
            tracing::info!(name = ?name, reason, suppressed, "DNS name denied: NXDOMAIN");
        }
    }
}

#[cfg(test)]
mod tests;
