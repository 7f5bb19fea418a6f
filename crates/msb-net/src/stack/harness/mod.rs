//! The frame harness: the real stack ([`run`](crate::stack::run)) on its own runtime, and a
//! smoltcp [`Guest`] on the other end of a real stream socketpair with QEMU's framing, so
//! tests and benchmarks open flows exactly as a guest would. Built with feature `harness`.

mod bench;
pub mod frames;
mod guest;
mod https_bench;
mod link;
pub mod tls;

pub use bench::{download, upload, Throughput};
pub use guest::Guest;
pub use https_bench::{https, HttpsBench, HttpsFigures};
pub use link::Seen;

use crate::dns::{Interceptor, Pins};
use crate::intercept::Interception;
use crate::policy::Policy;
use crate::stack::{bind_ports, run, Counters, CountersSnapshot, Engine, StackConfig};
use msb_types::{Action, Destination, Direction, DnsSpec, Group, NetPolicy, PortRange, Protocol, PublishedPort, Rule};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// What the stack under test is given.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// The sandbox policy.
    pub policy: NetPolicy,
    /// DNS settings.
    pub dns: DnsSpec,
    /// Published ports (host port 0 picks a free one; see [`Harness::port_addrs`]).
    pub ports: Vec<PublishedPort>,
    /// Flows open at once.
    pub max_connections: u32,
    /// TLS interception and secret substitution.
    pub intercept: Option<Arc<Interception>>,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            policy: NetPolicy::none(),
            dns: DnsSpec::default(),
            ports: Vec::new(),
            max_connections: msb_types::DEFAULT_MAX_CONNECTIONS,
            intercept: None,
        }
    }
}

/// A running stack and the guest wired to it.
#[derive(Debug)]
pub struct Harness {
    /// The guest end.
    pub guest: Guest,
    /// The link's addresses.
    pub config: StackConfig,
    counters: Arc<Counters>,
    port_addrs: Vec<SocketAddr>,
    stack: JoinHandle<io::Result<()>>,
    runtime: Option<Runtime>,
}

impl Harness {
    /// Binds the published ports, starts the stack on a two-thread runtime and a guest on it.
    pub fn start(options: HarnessOptions) -> io::Result<Harness> {
        let config = StackConfig {
            max_connections: options.max_connections,
            ..StackConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let gateway = IpAddr::V4(config.gateway_ip);
        let policy = Arc::new(Policy::new(options.policy, gateway));
        let pins = Arc::new(Pins::default());
        let dns = Arc::new(Interceptor::new(&options.dns, gateway, policy.clone(), pins.clone())?);
        let ports = bind_ports(&options.ports).map_err(io::Error::other)?;
        let port_addrs = ports.local_addrs();
        let counters = Arc::new(Counters::default());
        let (stack_end, guest_end) = UnixStream::pair()?;
        let stack = {
            let _entered = runtime.enter();
            let task = run(
                stack_end,
                config.clone(),
                policy,
                dns,
                pins,
                ports,
                counters.clone(),
                options.intercept,
            );
            runtime.spawn(task)
        };
        let guest = Guest::new(guest_end, &config)?;
        Ok(Harness {
            guest,
            config,
            counters,
            port_addrs,
            stack,
            runtime: Some(runtime),
        })
    }

    /// The runtime the stack runs on, for servers and clients on the host side.
    pub fn runtime(&self) -> &Runtime {
        // Only `Drop` takes it.
        self.runtime
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime lives as long as the harness"))
    }

    /// The stack's counters now.
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// Where each published port is bound on the host, in order.
    pub fn port_addrs(&self) -> &[SocketAddr] {
        &self.port_addrs
    }

    /// Whether the stack is still running.
    pub fn stack_running(&self) -> bool {
        !self.stack.is_finished()
    }

    /// The gateway's `port`, as the guest dials it.
    pub fn gateway(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.config.gateway_ip, port)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.guest.shutdown();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A rule allowing the guest to reach the host's `port` through the gateway over `protocol`.
pub fn host_rule(protocol: Protocol, port: u16) -> Rule {
    Rule {
        action: Action::Allow,
        direction: Direction::Egress,
        destination: Destination::Group(Group::Host),
        protocols: vec![protocol],
        ports: vec![PortRange {
            first: port,
            last: port,
        }],
    }
}

/// A policy denying everything but `rules`.
pub fn only(rules: Vec<Rule>) -> NetPolicy {
    NetPolicy {
        default_egress: Action::Deny,
        default_ingress: Action::Allow,
        rules,
    }
}

/// The engine alone, driven by hand: the default configuration, `policy`, no published
/// ports, no interception, its clock starting at `now`.
pub fn bare_engine(policy: NetPolicy, now: Instant) -> Engine {
    let cfg = StackConfig::default();
    let policy = Arc::new(Policy::new(policy, IpAddr::V4(cfg.gateway_ip)));
    Engine::new(
        cfg,
        policy,
        Arc::new(Pins::default()),
        Arc::new(Counters::default()),
        Vec::new(),
        None,
        now,
    )
}
