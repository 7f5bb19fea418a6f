//! TLS pieces for interception tests and benchmarks: a test CA, a local HTTPS echo server it
//! signs (HTTP/1.1 and HTTP/2, recording what it received), a TLS client for the smoltcp
//! guest, and the DNS lookup that pins the gateway's name the way a guest's lookup would.

use super::{Guest, Harness};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};
use smoltcp::iface::SocketHandle;
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The gateway's name, answered by the stack's DNS.
pub const GATEWAY_NAME: &str = "host.microsandbox.internal";

fn other(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

/// A CA for test servers, the way a private upstream CA would be given to interception.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa")
    }
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> io::Result<TestCa> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "msb-net test upstream CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().map_err(other)?;
        let cert = params.self_signed(&key).map_err(other)?;
        Ok(TestCa { cert, key })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate and key for `names`, signed by this CA.
    pub fn leaf(&self, names: &[&str]) -> io::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).map_err(other)?;
        let key = KeyPair::generate().map_err(other)?;
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(other)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key))
    }

    /// A server configuration for `names` offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self, names: &[&str]) -> io::Result<Arc<ServerConfig>> {
        let (cert, key) = self.leaf(names)?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(other)?
            .with_no_client_auth()
            .with_single_cert(vec![cert, self.cert.der().clone()], key)
            .map_err(other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A client configuration trusting the PEM roots `roots`, offering `alpn`.
pub fn client_config(roots: &[String], alpn: &[&[u8]]) -> io::Result<Arc<ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut store = RootCertStore::empty();
    for pem in roots {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store.add(cert.map_err(other)?).map_err(other)?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// An HTTPS server on 127.0.0.1 answering each request with a text/plain echo of it (method,
/// URI, headers, body) and recording everything it received.
#[derive(Debug, Clone)]
pub struct EchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl EchoServer {
    /// Starts serving with `config` on the current runtime.
    pub async fn start(config: Arc<ServerConfig>) -> io::Result<EchoServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = EchoServer { addr, seen };
        let acceptor = TlsAcceptor::from(config);
        let record = server.seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, record) = (acceptor.clone(), record.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let service = service_fn(move |request| echo(request, record.clone()));
                    let io = TokioIo::new(tls);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                });
            }
        });
        Ok(server)
    }

    /// Everything received so far (the echoes of every request).
    pub fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The echo of one request; the body says which protocol it came over first.
async fn echo(
    request: hyper::Request<Incoming>,
    record: Arc<Mutex<Vec<u8>>>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (head, body) = request.into_parts();
    let mut text = format!("{:?} {} {}\n", head.version, head.method, head.uri).into_bytes();
    for (name, value) in &head.headers {
        text.extend_from_slice(name.as_str().as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value.as_bytes());
        text.push(b'\n');
    }
    text.push(b'\n');
    if let Ok(body) = body.collect().await {
        text.extend_from_slice(&body.to_bytes());
    }
    record
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend_from_slice(&text);
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// How a guest TLS exchange ended.
#[derive(Debug)]
pub enum Exchange {
    /// The handshake failed (the error as rustls saw it).
    HandshakeFailed(String),
    /// The connection was reset or timed out before the server finished.
    Cut(Vec<u8>),
    /// The server's reply: everything read until it closed.
    Reply(Vec<u8>),
}

/// A rustls client driven over one of the guest's smoltcp sockets.
#[derive(Debug)]
pub struct GuestTls {
    tls: ClientConnection,
    handle: SocketHandle,
    /// TLS bytes not yet taken by the socket.
    out: Vec<u8>,
    /// Plaintext read and not yet taken.
    plain: Vec<u8>,
    /// The server sent close_notify or the socket closed.
    closed: bool,
}

impl GuestTls {
    /// A client for `sni` on the connected socket `handle`.
    pub fn new(handle: SocketHandle, config: Arc<ClientConfig>, sni: &str) -> io::Result<GuestTls> {
        let name = ServerName::try_from(sni.to_string()).map_err(other)?;
        Ok(GuestTls {
            tls: ClientConnection::new(config, name).map_err(other)?,
            handle,
            out: Vec::new(),
            plain: Vec::new(),
            closed: false,
        })
    }

    /// The socket it runs on.
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    /// Queues plaintext to send.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.writer().write_all(bytes)
    }

    /// Whether the handshake is still going.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Whether the server has closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Plaintext read so far, taken.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.plain)
    }

    /// One round: TLS out to the socket, the socket's bytes into TLS, plaintext out of it,
    /// then a guest step. A TLS error (the handshake refused) is an `InvalidData` error.
    pub fn pump(&mut self, guest: &mut Guest) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.out)?;
        }
        let sock = guest.tcp(self.handle);
        if !self.out.is_empty() && sock.can_send() {
            let n = sock.send_slice(&self.out).map_err(other)?;
            self.out.drain(..n);
        }
        let mut incoming = Vec::new();
        while sock.can_recv() {
            let taken = sock.recv(|b| (b.len(), b.to_vec())).map_err(other)?;
            incoming.extend_from_slice(&taken);
        }
        if !sock.is_active() && !sock.can_recv() {
            self.closed = true;
        }
        let mut rest = &incoming[..];
        loop {
            if !rest.is_empty() {
                self.tls.read_tls(&mut rest)?;
                self.tls
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            self.read_plain();
            if rest.is_empty() {
                break;
            }
        }
        guest.step(Duration::from_millis(1))
    }

    /// Sends all of `bytes`, pumping while rustls's buffer is full.
    pub fn send_all(&mut self, guest: &mut Guest, bytes: &[u8], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut sent = 0;
        while sent < bytes.len() {
            sent += self.tls.writer().write(&bytes[sent..])?;
            if self.closed || Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "could not send"));
            }
            self.pump(guest)?;
        }
        Ok(())
    }

    /// Takes the plaintext rustls has decrypted (its buffer is bounded).
    fn read_plain(&mut self) {
        let mut buf = [0; 16384];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => self.plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Pumps until the handshake is done.
    pub fn handshake(&mut self, guest: &mut Guest, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.tls.is_handshaking() {
            if self.closed || Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake"));
            }
            self.pump(guest)?;
        }
        Ok(())
    }

    /// Pumps until one whole HTTP/1.1 response with a Content-Length has arrived: its head
    /// and body.
    pub fn response(&mut self, guest: &mut Guest, timeout: Duration) -> io::Result<(String, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.plain.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.plain[..end]).into_owned();
                let len = head
                    .lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                    .ok_or_else(|| other("a response without Content-Length"))?;
                if self.plain.len() >= end + 4 + len {
                    let body = self.plain[end + 4..end + 4 + len].to_vec();
                    self.plain.drain(..end + 4 + len);
                    return Ok((head, body));
                }
            }
            if self.closed || Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no whole response"));
            }
            self.pump(guest)?;
        }
    }
}

/// A TLS client on the guest's socket `handle` (connected): sends `request` in pieces of at
/// most `piece` bytes, then reads until the server closes.
pub fn tls_exchange(
    guest: &mut Guest,
    handle: SocketHandle,
    config: Arc<ClientConfig>,
    sni: &str,
    request: &[u8],
    piece: usize,
    timeout: Duration,
) -> io::Result<Exchange> {
    let mut tls = GuestTls::new(handle, config, sni)?;
    let deadline = Instant::now() + timeout;
    let mut pending: std::collections::VecDeque<&[u8]> = request.chunks(piece.max(1)).collect();
    let mut reply = Vec::new();
    while Instant::now() < deadline && !tls.is_closed() {
        if !tls.is_handshaking() {
            if let Some(chunk) = pending.pop_front() {
                tls.write(chunk)?;
            }
        }
        match tls.pump(guest) {
            Ok(()) => reply.extend_from_slice(&tls.take()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(Exchange::HandshakeFailed(e.to_string())),
            Err(e) => return Err(e),
        }
    }
    if tls.is_handshaking() {
        return Ok(Exchange::HandshakeFailed("connection closed".into()));
    }
    reply.extend_from_slice(&tls.take());
    Ok(if tls.is_closed() {
        Exchange::Reply(reply)
    } else {
        Exchange::Cut(reply)
    })
}

/// Looks up [`GATEWAY_NAME`] from the guest through the stack's DNS, as a guest's resolver
/// would, so the gateway address is pinned to it; whether an answer came.
pub fn resolve_gateway_name(harness: &mut Harness) -> io::Result<bool> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in GATEWAY_NAME.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let server = harness.gateway(53);
    harness.guest.send_udp(5353, server, &query)?;
    let answer = harness.guest.wait_frame(Duration::from_secs(5), |frame| {
        frame.windows(2).any(|w| w == [0x12, 0x34])
    })?;
    Ok(answer.is_some())
}

/// The guest's connection to `dst`, once established.
pub fn connect(guest: &mut Guest, dst: SocketAddrV4, timeout: Duration) -> io::Result<Option<SocketHandle>> {
    let handle = guest.connect(dst)?;
    guest.run_until(timeout, |g| {
        !matches!(
            g.tcp(handle).state(),
            smoltcp::socket::tcp::State::SynSent | smoltcp::socket::tcp::State::SynReceived
        )
    })?;
    Ok(guest.tcp(handle).may_send().then_some(handle))
}
