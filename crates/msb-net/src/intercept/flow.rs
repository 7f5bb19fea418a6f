//! One TCP flow under interception: the guest's TLS is terminated here with a leaf from our
//! CA, the upstream's with the real server (verified), and HTTP is proxied between the two.
//! Also the guard every other flow's guest bytes pass through when there are secrets.

use super::rewrite::Facts;
use super::scan::StreamScan;
use super::upstream::SPOKEN;
use super::{proxy, Interception};
use crate::dns::Pins;
use crate::stack::{tcp_host, Event, FlowId, HostEnd};
use rustls::crypto::ring::default_provider;
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::ServerConfig;
use std::io;
use std::net::{IpAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};

/// Bytes buffered each way between the flow's channels and the TLS server.
const BRIDGE: usize = 256 * 1024;
/// How long each TLS handshake (the guest's, the upstream's) may take.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// `future`, or a timed-out error once [`HANDSHAKE`] has passed.
async fn in_time<T>(future: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(HANDSHAKE, future)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Watches a flow that is not intercepted for placeholders in what the guest sends.
#[derive(Debug)]
pub(crate) struct PlainGuard {
    interception: Arc<Interception>,
    scan: StreamScan,
    host: String,
}

impl PlainGuard {
    /// A guard for a flow to `host` (a name or an address); `None` when there are no
    /// secrets, so such flows cost nothing.
    pub(crate) fn new(interception: &Arc<Interception>, host: String) -> Option<PlainGuard> {
        interception.placeholders()?;
        Some(PlainGuard {
            interception: interception.clone(),
            scan: StreamScan::default(),
            host,
        })
    }

    /// Whether `chunk` (the next guest bytes) may go upstream; a placeholder in it, or
    /// completed by it, is a violation and the flow must be reset.
    pub(crate) fn pass(&mut self, chunk: &[u8]) -> bool {
        let Some(needles) = self.interception.placeholders() else {
            return true;
        };
        match self.scan.feed(needles, chunk) {
            None => true,
            Some(secret) => {
                self.interception.violation(&self.host, secret);
                false
            }
        }
    }
}

/// What an intercepted flow needs besides its sockets.
#[derive(Debug)]
pub(crate) struct Intercepted {
    /// The name the guest's ClientHello gave (normalized).
    pub(crate) sni: String,
    /// The address and port the guest dialled.
    pub(crate) dst: SocketAddrV4,
    pub(crate) interception: Arc<Interception>,
    pub(crate) pins: Arc<Pins>,
}

/// Runs flow `flow` under interception: `upstream` is connected, `initial` holds the guest's
/// first bytes (its ClientHello, or the start of it), `io` the flow's channels.
pub(crate) async fn intercept(
    flow: FlowId,
    upstream: TcpStream,
    initial: Vec<u8>,
    io: HostEnd,
    events: mpsc::Sender<Event>,
    target: Intercepted,
) {
    let _ = upstream.set_nodelay(true);
    let (guest, bridge) = tokio::io::duplex(BRIDGE);
    tokio::spawn(tcp_host::bridge(flow, bridge, initial, io, events));
    if let Err(error) = terminate(guest, upstream, target).await {
        tracing::debug!(%error, "intercepted flow ended");
    }
}

/// Both TLS handshakes, then HTTP between them.
pub(super) async fn terminate(guest: DuplexStream, upstream: TcpStream, target: Intercepted) -> io::Result<()> {
    let Intercepted {
        sni,
        dst,
        interception,
        pins,
    } = target;
    let start = in_time(LazyConfigAcceptor::new(Acceptor::default(), guest)).await?;
    let hello = start.client_hello();
    if hello.server_name().map(super::hosts::normalize).as_deref() != Some(sni.as_str()) {
        return Err(io::Error::other("the ClientHello's name is not the one sniffed"));
    }
    let offered: Vec<Vec<u8>> = hello
        .alpn()
        .into_iter()
        .flatten()
        .filter(|p| SPOKEN.contains(p))
        .map(<[u8]>::to_vec)
        .collect();
    let upstream = match in_time(interception.upstream.connect(upstream, &sni, offered)).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::warn!(host = %sni, %error, "upstream TLS failed: the guest's handshake is refused");
            refuse(start).await;
            return Ok(());
        }
    };
    let alpn = upstream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    tracing::debug!(host = %sni, alpn = ?alpn.as_deref().map(String::from_utf8_lossy), "TLS intercepted");
    let leaf = interception.ca.leaf(&sni).map_err(io::Error::other)?;
    let guest = in_time(start.into_stream(server_config(leaf, alpn.clone())?)).await?;
    let pinned = pins.names(IpAddr::V4(*dst.ip())).contains(&sni);
    let facts = Facts { sni: &sni, pinned };
    proxy::serve(guest, upstream, alpn.as_deref() == Some(b"h2"), &interception, facts).await
}

/// The guest's TLS server: our leaf, and only the ALPN protocol the upstream chose.
fn server_config(leaf: Arc<CertifiedKey>, alpn: Option<Vec<u8>>) -> io::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(leaf)));
    config.alpn_protocols = alpn.into_iter().collect();
    Ok(Arc::new(config))
}

/// A resolver with no certificate: the handshake fails with an alert.
#[derive(Debug)]
struct NoCertificate;

impl ResolvesServerCert for NoCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// Ends the guest's handshake with a TLS alert.
async fn refuse(start: StartHandshake<DuplexStream>) {
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_no_client_auth().with_cert_resolver(Arc::new(NoCertificate)));
    if let Ok(config) = config {
        // Fails by design; the alert is written on the way out.
        let _ = start.into_stream(Arc::new(config)).await;
    }
}
