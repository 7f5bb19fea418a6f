//! The world's servers and their request log: binding, accept loops, UDP echo, sink and
//! source (HTTP and TLS are in `http.rs`, DNS in `dns.rs`).

use super::{dns, http, Side, Zone, HTTPS_PORT, HTTP_PORT, PROXY_PORT, SINK_PORT, SOURCE_PORT, UDP_ECHO_PORT};
use sha2::{Digest, Sha256};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A connection that sends nothing for this long is dropped.
pub(super) const IDLE: Duration = Duration::from_secs(60);
/// The log stops growing here (a connect-rate loop must not eat the machine).
const LOG_LIMIT: usize = 200_000;
/// The pattern repeats every 251 bytes (a prime, so misplaced chunks never line up).
const PERIOD: u64 = 251;
/// One write's worth of pattern, a whole number of periods.
const BLOCK: usize = 251 * 256;

/// Which server saw something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// HTTP on port 80.
    Http,
    /// HTTP over TLS on port 443.
    Https,
    /// UDP echo on port 7.
    UdpEcho,
    /// The sink on port 9.
    Sink,
    /// The source on port 19.
    Source,
    /// DNS on port 53 (UDP or TCP).
    Dns,
    /// An HTTP CONNECT proxy on port 3128.
    Proxy,
}

/// What a server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A TCP handshake completed (logged before anything is read).
    Connected,
    /// A TLS ClientHello, with the SNI it carried.
    TlsHello {
        /// The server name asked for, if any.
        sni: Option<String>,
    },
    /// A whole HTTP request (logged before the answer is sent).
    Http {
        /// `GET`, `POST`, …
        method: String,
        /// The request target, e.g. `/bytes/10`.
        path: String,
        /// The `Host` header.
        host: Option<String>,
        /// Every header, names lower-cased, in order.
        headers: Vec<(String, String)>,
        /// The body's length.
        body_len: u64,
        /// The body's SHA-256, hex.
        body_sha256: String,
        /// The body's first 64 KiB.
        body_start: Vec<u8>,
    },
    /// A UDP datagram of `len` bytes (echoed back).
    Datagram {
        /// Payload length.
        len: usize,
    },
    /// A DNS query.
    DnsQuery {
        /// The name asked for, lower case, no trailing dot.
        name: String,
        /// Its type (`A`, `AAAA`, …).
        qtype: String,
        /// Whether it came over TCP.
        tcp: bool,
    },
    /// The sink read `bytes` to EOF.
    Sunk {
        /// How many.
        bytes: u64,
    },
    /// The source was asked for `bytes`.
    Sourced {
        /// How many.
        bytes: u64,
    },
    /// The client closed its end after the source sent all `bytes` (so they were delivered).
    SourceDone {
        /// How many.
        bytes: u64,
    },
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The namespace of the server: WORLD, or SBX for the host stand-in.
    pub side: Side,
    /// The server.
    pub service: Service,
    /// The address the client reached (which stand-in: see [`server_name`]).
    pub local: SocketAddr,
    /// The client's address as the server saw it.
    pub peer: SocketAddr,
    /// What happened.
    pub event: Event,
    /// When the server logged it (host clock: timings of a guest's traffic taken here do
    /// not depend on the guest's clock).
    pub at: std::time::Instant,
}

/// The stand-in an address belongs to: `internet`, `internet-2`, `lan`, `metadata`, `dns`,
/// `host` (127.0.0.1 in SBX) or `world` (anything else in WORLD).
pub fn server_name(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(a) if a == super::INTERNET => "internet",
        IpAddr::V4(a) if a == super::INTERNET_2 => "internet-2",
        IpAddr::V4(a) if a == super::LAN => "lan",
        IpAddr::V4(a) if a == super::METADATA => "metadata",
        IpAddr::V4(a) if a == super::DNS => "dns",
        IpAddr::V4(a) if a.is_loopback() => "host",
        _ => "world",
    }
}

/// The shared request log.
#[derive(Debug, Clone, Default)]
pub(super) struct Log(Arc<Mutex<Vec<Hit>>>);

impl Log {
    pub(super) fn push(&self, hit: Hit) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < LOG_LIMIT {
            v.push(hit);
        }
    }

    pub(super) fn snapshot(&self) -> Vec<Hit> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Byte `i` of the data `/bytes/N` and the source send.
pub fn pattern_byte(i: u64) -> u8 {
    (i % PERIOD) as u8
}

/// Fills `buf` with the pattern bytes starting at offset `start`.
pub fn pattern_fill(start: u64, buf: &mut [u8]) {
    for (i, b) in (start..).zip(buf.iter_mut()) {
        *b = pattern_byte(i);
    }
}

/// The SHA-256 (hex) of the first `n` pattern bytes: what `/bytes/N` hashes to.
pub fn pattern_sha256(n: u64) -> String {
    let block = pattern_block();
    let mut h = Sha256::new();
    let mut done = 0u64;
    while done < n {
        let take = (n - done).min(BLOCK as u64) as usize;
        h.update(&block[..take]);
        done += take as u64;
    }
    hex(&h.finalize())
}

fn pattern_block() -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    pattern_fill(0, &mut b);
    b
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sockets of one side, made inside its namespace.
pub(super) struct Sockets {
    http: TcpListener,
    https: TcpListener,
    proxy: TcpListener,
    udp_echo: Vec<UdpSocket>,
    sink: TcpListener,
    source: TcpListener,
    dns: Option<(UdpSocket, TcpListener)>,
}

/// Binds the TCP services on `addr`, UDP echo on each of `udp_addrs` and DNS on `dns` if
/// given. Run inside the namespace.
///
/// UDP is bound per address, not on 0.0.0.0: a reply must leave from the address the
/// datagram was sent to (a wildcard socket's reply takes the route's source address), and
/// the log must say which stand-in was reached.
pub(super) fn bind_all(addr: Ipv4Addr, udp_addrs: &[Ipv4Addr], dns: Option<Ipv4Addr>) -> io::Result<Sockets> {
    let tcp = |ip: Ipv4Addr, port: u16| {
        TcpListener::bind((ip, port)).map_err(|e| io::Error::new(e.kind(), format!("binding {ip}:{port}/tcp: {e}")))
    };
    let udp = |ip: Ipv4Addr, port: u16| {
        UdpSocket::bind((ip, port)).map_err(|e| io::Error::new(e.kind(), format!("binding {ip}:{port}/udp: {e}")))
    };
    Ok(Sockets {
        http: tcp(addr, HTTP_PORT)?,
        https: tcp(addr, HTTPS_PORT)?,
        proxy: tcp(addr, PROXY_PORT)?,
        udp_echo: udp_addrs
            .iter()
            .map(|a| udp(*a, UDP_ECHO_PORT))
            .collect::<io::Result<_>>()?,
        sink: tcp(addr, SINK_PORT)?,
        source: tcp(addr, SOURCE_PORT)?,
        dns: match dns {
            Some(d) => Some((udp(d, super::DNS_PORT)?, tcp(d, super::DNS_PORT)?)),
            None => None,
        },
    })
}

/// What a connection handler needs to know about where it runs.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub side: Side,
    pub log: Log,
}

impl Ctx {
    pub(super) fn hit(&self, service: Service, local: SocketAddr, peer: SocketAddr, event: Event) {
        self.log.push(Hit {
            side: self.side,
            service,
            local,
            peer,
            event,
            at: std::time::Instant::now(),
        });
    }
}

/// Starts every server of `s` on the current tokio runtime.
pub(super) fn spawn_all(
    s: Sockets,
    side: Side,
    log: &Log,
    zone: &Arc<Mutex<Zone>>,
    tls: &Arc<rustls::ServerConfig>,
) -> io::Result<()> {
    let ctx = Ctx { side, log: log.clone() };
    let http = tokio_listener(s.http)?;
    let https = tokio_listener(s.https)?;
    let proxy = tokio_listener(s.proxy)?;
    let sink = tokio_listener(s.sink)?;
    let source = tokio_listener(s.source)?;
    let acceptor = tls.clone();
    accept_loop(http, ctx.clone(), Service::Http, |s, c, l, p| async move {
        http::serve_http(s, &c, Service::Http, l, p, None).await
    });
    accept_loop(https, ctx.clone(), Service::Https, move |s, c, l, p| {
        let config = acceptor.clone();
        async move { http::serve_tls(s, &c, l, p, config).await }
    });
    let acceptor = tls.clone();
    accept_loop(proxy, ctx.clone(), Service::Proxy, move |s, c, l, p| {
        let config = acceptor.clone();
        async move { http::serve_proxy(s, &c, l, p, config).await }
    });
    accept_loop(sink, ctx.clone(), Service::Sink, |s, c, l, p| async move {
        serve_sink(s, &c, l, p).await
    });
    accept_loop(source, ctx.clone(), Service::Source, |s, c, l, p| async move {
        serve_source(s, &c, l, p).await
    });
    for u in s.udp_echo {
        u.set_nonblocking(true)?;
        tokio::spawn(udp_echo(tokio::net::UdpSocket::from_std(u)?, ctx.clone()));
    }
    if let Some((u, t)) = s.dns {
        u.set_nonblocking(true)?;
        let u = tokio::net::UdpSocket::from_std(u)?;
        tokio::spawn(dns::serve_udp(u, ctx.clone(), zone.clone()));
        let t = tokio_listener(t)?;
        let zone = zone.clone();
        accept_loop(t, ctx, Service::Dns, move |s, c, l, p| {
            let zone = zone.clone();
            async move { dns::serve_tcp(s, &c, l, p, zone).await }
        });
    }
    Ok(())
}

fn tokio_listener(l: TcpListener) -> io::Result<tokio::net::TcpListener> {
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

/// Accepts forever; each connection is logged as [`Event::Connected`], then handled by `f`
/// on a task of its own (its errors only end that connection).
fn accept_loop<F, Fut>(listener: tokio::net::TcpListener, ctx: Ctx, service: Service, f: F)
where
    F: Fn(tokio::net::TcpStream, Ctx, SocketAddr, SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                // EMFILE and the like: back off rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(local) = stream.local_addr() else { continue };
            ctx.hit(service, local, peer, Event::Connected);
            let _ = stream.set_nodelay(true);
            tokio::spawn(f(stream, ctx.clone(), local, peer));
        }
    });
}

/// One read, failing with `TimedOut` after [`IDLE`] of silence.
pub(super) async fn read_some<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    tokio::time::timeout(IDLE, r.read(buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer idle"))?
}

/// `read_exact`, bounded by [`IDLE`] overall.
pub(super) async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<()> {
    tokio::time::timeout(IDLE, r.read_exact(buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer idle"))?
        .map(drop)
}

async fn udp_echo(sock: tokio::net::UdpSocket, ctx: Ctx) {
    let Ok(local) = sock.local_addr() else { return };
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        ctx.hit(Service::UdpEcho, local, peer, Event::Datagram { len: n });
        let _ = sock.send_to(&buf[..n], peer).await;
    }
}

async fn serve_sink(mut s: tokio::net::TcpStream, ctx: &Ctx, local: SocketAddr, peer: SocketAddr) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match read_some(&mut s, &mut buf).await? {
            0 => break,
            n => total += n as u64,
        }
    }
    ctx.hit(Service::Sink, local, peer, Event::Sunk { bytes: total });
    s.write_all(&total.to_be_bytes()).await?;
    s.shutdown().await
}

async fn serve_source(mut s: tokio::net::TcpStream, ctx: &Ctx, local: SocketAddr, peer: SocketAddr) -> io::Result<()> {
    let mut n = [0u8; 8];
    read_exact(&mut s, &mut n).await?;
    let n = u64::from_be_bytes(n);
    ctx.hit(Service::Source, local, peer, Event::Sourced { bytes: n });
    write_pattern(&mut s, n).await?;
    s.shutdown().await?;
    // The client closes once it has read everything: that is when the data was delivered.
    let mut buf = [0u8; 1024];
    while read_some(&mut s, &mut buf).await? > 0 {}
    ctx.hit(Service::Source, local, peer, Event::SourceDone { bytes: n });
    Ok(())
}

/// Writes the first `n` pattern bytes.
pub(super) async fn write_pattern<W: AsyncWrite + Unpin>(w: &mut W, n: u64) -> io::Result<()> {
    let block = pattern_block();
    let mut sent = 0u64;
    while sent < n {
        let start = (sent % PERIOD) as usize;
        let take = ((n - sent) as usize).min(BLOCK - start);
        tokio::time::timeout(IDLE, w.write_all(&block[start..start + take]))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading"))??;
        sent += take as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_hash_matches_the_bytes() {
        for n in [0u64, 1, 250, 251, 252, BLOCK as u64 + 7, 3 * BLOCK as u64] {
            let mut b = vec![0u8; n as usize];
            pattern_fill(0, &mut b);
            assert_eq!(pattern_sha256(n), hex(&Sha256::digest(&b)), "n={n}");
        }
    }

    #[tokio::test]
    async fn pattern_writes_line_up_across_blocks() {
        let mut out = Vec::new();
        let n = 2 * BLOCK as u64 + 100;
        write_pattern(&mut out, n).await.unwrap();
        assert_eq!(out.len() as u64, n);
        assert!(out.iter().enumerate().all(|(i, b)| *b == pattern_byte(i as u64)));
    }

    #[test]
    fn addresses_name_their_stand_ins() {
        assert_eq!(server_name(super::super::LAN.into()), "lan");
        assert_eq!(server_name(Ipv4Addr::LOCALHOST.into()), "host");
        assert_eq!(server_name(super::super::WORLD_ADDR.into()), "world");
    }
}
