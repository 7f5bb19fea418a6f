//! The sandbox's network: published ports bound before the VM boots, then the userspace
//! stack serving the guest's link for as long as the supervisor runs.

use crate::{Error, Result};
use msb_boot::NetworkPlan;
use msb_net::dns::{self, Interceptor, Pins};
use msb_net::intercept::Interception;
use msb_net::policy::Policy;
use msb_net::stack::{self, BoundPorts, PortError, StackConfig};
use msb_protocol::NetworkCounters;
use msb_store::{SandboxState, Store};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// A running stack's counters.
#[derive(Debug)]
pub struct Network {
    stack: Arc<stack::Counters>,
    dns: Arc<Interceptor>,
    /// The runtime of the stack's thread, to run work on that thread.
    thread: tokio::runtime::Handle,
}

/// Binds the published ports of `plan`; a port another sandbox holds is reported with
/// that sandbox's name.
pub fn bind_ports(plan: &NetworkPlan, store: &Store) -> Result<BoundPorts> {
    stack::bind_ports(&plan.spec.ports).map_err(|e| match &e {
        PortError::InUse {
            ip, port, transport, ..
        } => match holder_of(store, *ip, *port) {
            Some(name) => Error::Network(format!(
                "host port {port}/{transport} on {ip} is taken by sandbox '{name}': publish another host port, or stop '{name}'"
            )),
            None => Error::Network(e.to_string()),
        },
        PortError::Bind { .. } => Error::Network(e.to_string()),
    })
}

/// The running sandbox that publishes host port `port` on `ip` (or on all addresses).
fn holder_of(store: &Store, ip: IpAddr, port: u16) -> Option<String> {
    let running = store.list_sandboxes().ok()?;
    running
        .into_iter()
        .filter(|r| r.state == SandboxState::Running)
        .find(|r| {
            r.spec::<msb_types::SandboxSpec>().is_ok_and(|spec| {
                spec.network.ports.iter().any(|p| {
                    p.host_port == port && (p.host_ip == ip || p.host_ip.is_unspecified() || ip.is_unspecified())
                })
            })
        })
        .map(|r| r.name)
}

/// Raises this process's open-file soft limit to its hard limit: every relayed flow holds a
/// host socket, and a soft limit of 1024 would refuse flows below `max_connections`.
fn lift_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("cannot raise the open-file limit: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// Starts the stack for the guest's link `link`, serving `ports`, intercepting TLS as
/// `interception` says.
pub fn start(
    plan: &NetworkPlan,
    link: UnixStream,
    ports: BoundPorts,
    interception: Option<Arc<Interception>>,
) -> Result<Network> {
    lift_file_limit();
    let gateway = IpAddr::V4(plan.gateway_ip);
    let policy = Arc::new(Policy::new(plan.spec.policy.clone(), gateway));
    let pins = Arc::new(Pins::default());
    let dns = Arc::new(
        Interceptor::new(&plan.spec.dns, gateway, policy.clone(), pins.clone())
            .map_err(Error::io("setting up the sandbox's DNS"))?,
    );
    let config = StackConfig {
        guest_ip: plan.guest_ip,
        gateway_ip: plan.gateway_ip,
        guest_mac: plan.guest_mac,
        gateway_mac: plan.gateway_mac,
        mtu: usize::from(plan.mtu),
        max_connections: plan.spec.max_connections,
        ..StackConfig::default()
    };
    let counters = Arc::new(stack::Counters::default());
    let running = stack::run(
        link,
        config,
        policy,
        dns.clone(),
        pins,
        ports,
        counters.clone(),
        interception,
    );
    // Its own thread and runtime: the guest's packets never wait behind the supervisor's
    // other work (sessions, metrics, the store), and the stack may use a core of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the network stack's runtime"))?;
    let thread = runtime.handle().clone();
    std::thread::Builder::new()
        .name("msb-net".into())
        .spawn(move || {
            if let Err(e) = runtime.block_on(running) {
                tracing::error!("the sandbox's network stopped: {e}");
            }
        })
        .map_err(Error::io("starting the network stack's thread"))?;
    Ok(Network {
        stack: counters,
        dns,
        thread,
    })
}

impl Network {
    /// Confines the stack's thread under Landlock `ruleset` (see `crate::landlock`);
    /// returns the thread's id.
    pub async fn confine(&self, ruleset: std::os::fd::OwnedFd) -> std::result::Result<u32, String> {
        let on_thread = self.thread.spawn(async move {
            msb_vmm::landlock::restrict_thread(std::os::fd::AsRawFd::as_raw_fd(&ruleset))
                .map(|()| crate::landlock::thread_id())
                .map_err(|e| format!("the network's thread: {e}"))
        });
        on_thread.await.map_err(|e| format!("the network's thread: {e}"))?
    }

    /// The counters now.
    pub fn counters(&self) -> NetworkCounters {
        let s = self.stack.snapshot();
        let d: dns::CounterSnapshot = self.dns.counters().snapshot();
        NetworkCounters {
            bytes_out: s.bytes_in,
            bytes_in: s.bytes_out,
            packets_out: s.packets_in,
            packets_in: s.packets_out,
            flows_open: s.flows_open,
            frames_dropped: s.frames_dropped,
            published_accepts: s.published_accepts,
            denied_policy: s.denied_policy,
            denied_limit: s.denied_max_connections,
            upstream_failed: s.upstream_refused + s.upstream_unreachable,
            dns_queries: d.queries,
            dns_denied: d.blocked,
            dns_rebinding_dropped: d.rebinding_dropped,
            dns_failed: d.upstream_failures + d.shed,
        }
    }
}
