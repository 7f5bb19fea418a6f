//! A closed network for network tests: no packet of a test ever leaves this machine.
//!
//! [`NetWorld::create`] makes two network namespaces joined by one veth pair and nothing
//! else:
//!
//! ```text
//!   SBX (the sandbox runs here)                 WORLD (every server lives here)
//!   lo 127.0.0.1 ── "host" stand-in             veth-sbx 192.0.2.1/30
//!   veth-world 192.0.2.2/30 ◀──── veth ────▶             203.0.113.10  "internet"
//!   default via 192.0.2.1                                203.0.113.11  "internet-2"
//!   /etc/netns/SBX/resolv.conf:                          203.0.113.53  DNS
//!     nameserver 203.0.113.53                            10.20.0.10    "lan"
//!                                                        169.254.169.254 "metadata"
//! ```
//!
//! WORLD has no uplink, no default route and forwarding off, so a packet SBX sends to any
//! other address ends in WORLD (answered by "host unreachable"). Run the sandbox with
//! [`NetWorld::wrap`] or [`NetWorld::command`] (`ip netns exec SBX …`, which also bind-mounts
//! the namespace's resolv.conf over `/etc/resolv.conf`, so the supervisor's upstream DNS is
//! the world's).
//!
//! The servers are tasks of a tokio runtime inside the test process: their sockets are made
//! by a short-lived thread that has `setns(2)`-ed into the namespace (a socket stays in the
//! namespace it was made in, whichever thread uses it later). So the request log is plain
//! shared memory the test reads directly, and nothing is left running when the world is
//! dropped. Services (on every WORLD address, and on 127.0.0.1 in SBX as "the host"):
//!
//! | port | service |
//! |---|---|
//! | 80/tcp | HTTP/1.1: `GET /` JSON about the request, `GET /bytes/N` N pattern bytes, `POST /echo` the body back, other `POST`s JSON with the body's length and SHA-256 |
//! | 443/tcp | the same over TLS (self-signed, [`NetWorld::tls_cert_pem`]); the JSON says the SNI |
//! | 3128/tcp | HTTP CONNECT proxy: a tunnel to port 443 of any name ends in the TLS server above |
//! | 7/udp | echo |
//! | 9/tcp | sink: reads to EOF, answers the byte count (u64, big-endian) |
//! | 19/tcp | source: reads a u64 big-endian N, sends N pattern bytes, waits for the client to close |
//! | 53/udp+tcp | DNS, on 203.0.113.53 only (WORLD) — see [`Zone`] |
//!
//! Cleanup: dropping the world stops its servers, kills whatever still runs in its
//! namespaces (only the test's own processes can be there), deletes both namespaces (the
//! veth goes with them) and the resolv.conf. Worlds of dead test processes (killed before
//! their Drop ran) are swept by the next `create`.

mod dns;
mod http;
mod servers;

pub use dns::{query as dns_query, DnsAnswer, Zone};
pub use servers::{pattern_byte, pattern_fill, pattern_sha256, server_name, Event, Hit, Service};

use servers::Log;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The "internet" stand-in (public, TEST-NET-3).
pub const INTERNET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// A second public address, for "another IP" and "two names share one IP" cases.
pub const INTERNET_2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
/// A private (RFC 1918) server: the "LAN" stand-in.
pub const LAN: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 10);
/// The cloud metadata address.
pub const METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The world's DNS server (UDP and TCP port 53); SBX's resolv.conf names it.
pub const DNS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 53);
/// Where the "host" stand-in listens inside SBX (what the sandbox's gateway maps to).
pub const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// SBX's end of the veth.
pub const SBX_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// WORLD's end of the veth: SBX's default gateway.
pub const WORLD_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Every server address in WORLD (the veth's own address aside).
pub const WORLD_SERVERS: [Ipv4Addr; 5] = [INTERNET, INTERNET_2, LAN, METADATA, DNS];

/// HTTP echo port.
pub const HTTP_PORT: u16 = 80;
/// TLS (HTTP over TLS) port.
pub const HTTPS_PORT: u16 = 443;
/// HTTP CONNECT proxy port.
pub const PROXY_PORT: u16 = 3128;
/// UDP echo port.
pub const UDP_ECHO_PORT: u16 = 7;
/// Sink port: reads to EOF, answers the count.
pub const SINK_PORT: u16 = 9;
/// Source port: sends as many pattern bytes as asked.
pub const SOURCE_PORT: u16 = 19;
/// DNS port.
pub const DNS_PORT: u16 = 53;

/// Names of the two veth ends (each in its own namespace, so parallel worlds share them).
const SBX_IF: &str = "veth-world";
const WORLD_IF: &str = "veth-sbx";
/// Every namespace of ours starts with this, then `<pid>-<n>`; the sweep relies on it.
const PREFIX: &str = "msbnet-";
/// Bounds every wait on `ip` and on server start-up.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// One closed test network: namespaces SBX and WORLD, their servers, and the request log.
#[derive(Debug)]
pub struct NetWorld {
    sbx: String,
    world: String,
    /// The servers' runtime; `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    log: Log,
    zone: Arc<Mutex<Zone>>,
    tls_cert_pem: String,
    /// Holds `tls-cert.pem`; removed on drop.
    dir: tempfile::TempDir,
}

impl NetWorld {
    /// A fresh world, or `None` (after saying why) when not root: namespaces need root.
    /// With `MSB_REQUIRE_ROOT=1` (CI) not being root fails the test instead; as root, any
    /// failure to build the world fails it.
    pub fn create() -> Option<NetWorld> {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("MSB_REQUIRE_ROOT").as_deref() != Ok("1"),
                "MSB_REQUIRE_ROOT=1 but not running as root: network namespaces need root"
            );
            eprintln!("skipping: the network test world needs root (MSB_REQUIRE_ROOT=1 turns this into a failure)");
            return None;
        }
        Some(NetWorld::try_create().expect("creating the network test world"))
    }

    /// A fresh world; an error when it cannot be built (not root, no `ip`, …).
    pub fn try_create() -> io::Result<NetWorld> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        sweep_stale();
        let id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new().prefix("msb-networld-").tempdir()?;
        let mut w = NetWorld {
            sbx: format!("{id}-sbx"),
            world: format!("{id}-world"),
            rt: None,
            log: Log::default(),
            zone: Arc::new(Mutex::new(Zone::fixture())),
            tls_cert_pem: String::new(),
            dir,
        };
        // From here on, Drop undoes whatever part was built.
        w.build_links()?;
        w.start_servers()?;
        Ok(w)
    }

    fn build_links(&mut self) -> io::Result<()> {
        let (sbx, world) = (self.sbx.as_str(), self.world.as_str());
        // resolv.conf first: it must be there before anything runs in SBX.
        let etc = resolv_dir(sbx);
        std::fs::create_dir_all(&etc)?;
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {DNS}\n"))?;
        ip(&["netns", "add", sbx])?;
        ip(&["netns", "add", world])?;
        // Created straight inside the namespaces: the pair never exists in ours.
        ip(&[
            "link", "add", SBX_IF, "netns", sbx, "type", "veth", "peer", "name", WORLD_IF, "netns", world,
        ])?;
        let sbx_cidr = format!("{SBX_ADDR}/30");
        let world_cidr = format!("{WORLD_ADDR}/30");
        let via = WORLD_ADDR.to_string();
        ip(&["-n", sbx, "link", "set", "lo", "up"])?;
        ip(&["-n", sbx, "addr", "add", &sbx_cidr, "dev", SBX_IF])?;
        ip(&["-n", sbx, "link", "set", SBX_IF, "up"])?;
        ip(&["-n", world, "link", "set", "lo", "up"])?;
        ip(&["-n", world, "addr", "add", &world_cidr, "dev", WORLD_IF])?;
        for a in WORLD_SERVERS {
            ip(&["-n", world, "addr", "add", &format!("{a}/32"), "dev", WORLD_IF])?;
        }
        ip(&["-n", world, "link", "set", WORLD_IF, "up"])?;
        // Everything SBX sends goes to WORLD, which has nowhere to send it on.
        ip(&["-n", sbx, "route", "add", "default", "via", &via, "dev", SBX_IF])?;
        // WORLD refuses any other destination at once (ICMP unreachable) instead of
        // dropping it in silence, so a connect to a non-world address fails fast rather
        // than timing out. Forwarding has to be on for the route to be consulted; there is
        // still nowhere to forward to.
        self.in_world(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?;
        ip(&["-n", world, "route", "add", "unreachable", "default"])?;
        Ok(())
    }

    fn start_servers(&mut self) -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("networld")
            .enable_all()
            .build()?;
        let tls = http::tls_config()?;
        self.tls_cert_pem = tls.cert_pem.clone();
        std::fs::write(self.tls_cert_path(), &self.tls_cert_pem)?;
        let world_std = self.in_world(|| servers::bind_all(Ipv4Addr::UNSPECIFIED, &WORLD_SERVERS, Some(DNS)))?;
        let host_std = self.in_sbx(|| servers::bind_all(HOST, &[HOST], None))?;
        {
            let _entered = rt.enter();
            for (side, sockets) in [(Side::World, world_std), (Side::Sbx, host_std)] {
                servers::spawn_all(sockets, side, &self.log, &self.zone, &tls.config)?;
            }
        }
        self.rt = Some(rt);
        Ok(())
    }

    /// The namespace the sandbox runs in.
    pub fn sbx(&self) -> &str {
        &self.sbx
    }

    /// The namespace the servers live in.
    pub fn world(&self) -> &str {
        &self.world
    }

    /// `ip netns exec SBX program`: a command that runs inside SBX.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.sbx]).arg(program);
        cmd
    }

    /// `ip netns exec WORLD program`: a command that runs beside the servers.
    pub fn world_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.world]).arg(program);
        cmd
    }

    /// `cmd` (program, arguments, environment changes and working directory) run inside SBX
    /// instead. Stdio settings cannot be read back from a `Command`: set them on the result.
    pub fn wrap(&self, cmd: Command) -> Command {
        let mut out = self.command(cmd.get_program());
        out.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => out.env(k, v),
                None => out.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            out.current_dir(dir);
        }
        out
    }

    /// Runs `f` on a thread inside SBX: the sockets it makes (clients, or extra servers)
    /// belong to SBX for their whole life.
    pub fn in_sbx<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        in_netns(&self.sbx, f)
    }

    /// Runs `f` on a thread inside WORLD (see [`NetWorld::in_sbx`]).
    pub fn in_world<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        in_netns(&self.world, f)
    }

    /// Every request the servers have seen so far, oldest first.
    pub fn hits(&self) -> Vec<Hit> {
        self.log.snapshot()
    }

    /// The hits on server address `ip` (any port, any service).
    pub fn hits_at(&self, ip: Ipv4Addr) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.local.ip() == IpAddr::V4(ip))
            .collect()
    }

    /// True when anything (a TCP handshake, a datagram, a query) ever reached `ip`.
    pub fn saw(&self, ip: Ipv4Addr) -> bool {
        !self.hits_at(ip).is_empty()
    }

    /// The DNS queries seen so far, as (lower-case name, type) pairs.
    pub fn dns_queries(&self) -> Vec<(String, String)> {
        self.hits()
            .into_iter()
            .filter_map(|h| match h.event {
                Event::DnsQuery { name, qtype, .. } => Some((name, qtype)),
                _ => None,
            })
            .collect()
    }

    /// Forgets every hit so far.
    pub fn clear_log(&self) {
        self.log.clear();
    }

    /// Waits (at most `timeout`) for a hit matching `pred`: servers log as they go, so a
    /// hit can land just after the client saw its answer.
    pub fn wait_for_hit(&self, timeout: Duration, pred: impl Fn(&Hit) -> bool) -> Option<Hit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(h) = self.hits().into_iter().find(|h| pred(h)) {
                return Some(h);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Adds (or replaces) the A record `name` → `ip` with `ttl`; `*.suffix` is a wildcard.
    pub fn dns_set(&self, name: &str, ip: Ipv4Addr, ttl: u32) {
        self.zone.lock().unwrap().set(name, ip, ttl);
    }

    /// Removes `name` from the zone (it becomes NXDOMAIN).
    pub fn dns_remove(&self, name: &str) {
        self.zone.lock().unwrap().remove(name);
    }

    /// The DNS server's address (also in SBX's resolv.conf), for `--dns-nameserver`.
    pub fn dns_server(&self) -> SocketAddr {
        SocketAddr::from((DNS, DNS_PORT))
    }

    /// The TLS server's self-signed certificate (PEM): the trust anchor a client needs.
    pub fn tls_cert_pem(&self) -> &str {
        &self.tls_cert_pem
    }

    /// A file holding [`NetWorld::tls_cert_pem`] (for `curl --cacert`).
    pub fn tls_cert_path(&self) -> PathBuf {
        self.dir.path().join("tls-cert.pem")
    }
}

impl Drop for NetWorld {
    fn drop(&mut self) {
        // Servers first: their sockets hold WORLD (and SBX) alive.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        for ns in [&self.sbx, &self.world] {
            kill_all_in(ns);
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(resolv_dir(&self.sbx));
    }
}

/// Which namespace a server socket lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// WORLD: the remote servers.
    World,
    /// SBX: the host stand-in on 127.0.0.1.
    Sbx,
}

/// `/etc/netns/NAME`: what `ip netns exec NAME` bind-mounts over `/etc`'s files.
fn resolv_dir(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// Runs `ip ARGS`, bounded by [`STEP_TIMEOUT`]; an error carries its stderr.
fn ip(args: &[&str]) -> io::Result<()> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting `ip` (package iproute2): {e}")))?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!("`ip {}` hung", args.join(" "))));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = io::Read::read_to_string(&mut e, &mut err);
    }
    Err(io::Error::other(format!(
        "`ip {}` failed: {}",
        args.join(" "),
        err.trim()
    )))
}

/// Runs `f` on a new thread that has joined network namespace `ns` (`/run/netns/NS`).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let path = Path::new("/run/netns").join(ns);
    std::thread::scope(|s| {
        s.spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
            // SAFETY: setns(2) on a descriptor we own; CLONE_NEWNET changes only this thread's
            // network namespace, and this thread ends with `f`.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .map_err(|_| io::Error::other("a thread inside the namespace panicked"))?
    })
}

/// SIGKILLs every process inside namespace `ns` (`ip netns pids`): all started by this
/// world's test (sandboxes, their QEMUs, clients) and left behind by a failure.
fn kill_all_in(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            // SAFETY: kill(2) on a pid just listed as living in our namespace; the worst case
            // is a signal to a process that has already gone.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Deletes namespaces (and resolv.conf dirs) of worlds whose test process is gone.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        kill_all_in(&name);
        let _ = ip(&["netns", "del", &name]);
        let _ = std::fs::remove_dir_all(resolv_dir(&name));
    }
}
