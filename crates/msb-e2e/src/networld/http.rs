//! The HTTP/1.1 echo server (port 80) and the same over TLS (port 443), with the world's
//! test certificate authority.

use super::servers::{hex, read_exact, read_some, server_name, write_pattern, Ctx, Event, Service, IDLE};
use sha2::{Digest, Sha256};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Request line plus headers, at most.
const HEAD_LIMIT: u64 = 16 * 1024;
/// `POST /echo` bodies are held in memory to be sent back: at most this much.
const ECHO_LIMIT: u64 = 64 * 1024 * 1024;
/// How much of a request body the log keeps.
const LOGGED_BODY: usize = 64 * 1024;

/// The TLS server's configuration and the CA certificate that signed its certificate.
pub(super) struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    pub cert_pem: String,
}

/// Names the TLS certificate is valid for (besides the server addresses).
const TLS_NAMES: &[&str] = &[
    "allowed.test",
    "*.wild.test",
    "rebind.test",
    "ttl0.test",
    "a.shared.test",
    "b.shared.test",
    "meta.test",
    "denied.test",
    "localhost",
];

/// A fresh CA and a server certificate it signed for [`TLS_NAMES`] and the world's
/// addresses; the server sends the chain, clients trust the CA (`cert_pem`).
pub(super) fn tls_config() -> io::Result<Tls> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let err = |e: rcgen::Error| io::Error::other(format!("making the test certificate: {e}"));
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "msb networld test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let mut sans: Vec<String> = TLS_NAMES.iter().map(|s| s.to_string()).collect();
    sans.extend(super::WORLD_SERVERS.iter().chain([&super::HOST]).map(|a| a.to_string()));
    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(sans).map_err(err)?;
    leaf.distinguished_name.push(DnType::CommonName, "msb networld server");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(err)?;
    let chain = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let tls_err = |e: rustls::Error| io::Error::other(format!("configuring TLS: {e}"));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        cert_pem: ca_cert.pem(),
    })
}

pub(super) async fn serve_tls(
    s: tokio::net::TcpStream,
    ctx: &Ctx,
    local: SocketAddr,
    peer: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<()> {
    let lazy = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), s);
    let start = tokio::time::timeout(IDLE, lazy)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no ClientHello"))??;
    let sni = start.client_hello().server_name().map(str::to_string);
    ctx.hit(Service::Https, local, peer, Event::TlsHello { sni: sni.clone() });
    let tls = tokio::time::timeout(IDLE, start.into_stream(config))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake stalled"))??;
    serve_http(tls, ctx, Service::Https, local, peer, Some(sni)).await
}

/// The CONNECT proxy: reads `CONNECT host:port` (logged as an [`Event::Http`] of the
/// proxy), answers 200, and for port 443 serves the tunnel with the HTTPS server itself, as
/// if it had connected to it (the world's servers are all in this process, so no socket is
/// needed; the request inside is logged as the HTTPS server's, at the proxy's address).
pub(super) async fn serve_proxy(
    mut s: tokio::net::TcpStream,
    ctx: &Ctx,
    local: SocketAddr,
    peer: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<()> {
    // Byte by byte up to the blank line: nothing of the tunnel may be read here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= HEAD_LIMIT as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "CONNECT head too long"));
        }
        let byte = tokio::time::timeout(IDLE, s.read_u8())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no CONNECT"))??;
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    ctx.hit(
        Service::Proxy,
        local,
        peer,
        Event::Http {
            method: method.to_string(),
            path: target.to_string(),
            host: None,
            headers: Vec::new(),
            body_len: 0,
            body_sha256: String::new(),
            body_start: Vec::new(),
        },
    );
    if method != "CONNECT" || !target.ends_with(":443") {
        s.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    serve_tls(s, ctx, local, peer, config).await
}

/// How a request body is framed.
enum Framing {
    Length(u64),
    Chunked,
}

/// One HTTP/1.1 request, answered and then the connection closed. `sni` is `Some` over TLS.
pub(super) async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    ctx: &Ctx,
    service: Service,
    local: SocketAddr,
    peer: SocketAddr,
    sni: Option<Option<String>>,
) -> io::Result<()> {
    let mut r = BufReader::new(s);
    let mut lines = Vec::new();
    {
        let mut head = (&mut r).take(HEAD_LIMIT);
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(IDLE, head.read_until(b'\n', &mut line))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer idle"))??;
            if n == 0 {
                // EOF (or the head limit) before the blank line: nothing to answer.
                return Ok(());
            }
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
    }
    let Some(request_line) = lines.first() else {
        return Ok(());
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let host = header("host");
    let framing = if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        Framing::Chunked
    } else {
        Framing::Length(header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0))
    };
    let echo = matches!(method.as_str(), "POST" | "PUT") && path.starts_with("/echo");
    let body = read_body(&mut r, framing, echo).await?;
    ctx.hit(
        service,
        local,
        peer,
        Event::Http {
            method: method.clone(),
            path: path.clone(),
            host: host.clone(),
            headers: headers.clone(),
            body_len: body.len,
            body_sha256: body.sha256.clone(),
            body_start: body.start.clone(),
        },
    );
    let w = r.get_mut();
    if let Some(n) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<u64>().ok()) {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
        );
        w.write_all(head.as_bytes()).await?;
        if method != "HEAD" {
            write_pattern(w, n).await?;
        }
    } else if echo {
        let (status, payload) = match body.kept {
            Some(b) => ("200 OK", b),
            None => ("413 Payload Too Large", Vec::new()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nX-Body-Sha256: {}\r\nConnection: close\r\n\r\n",
            payload.len(),
            body.sha256
        );
        w.write_all(head.as_bytes()).await?;
        w.write_all(&payload).await?;
    } else {
        let info = serde_json::json!({
            "server": server_name(local.ip()),
            "local": local.to_string(),
            "peer": peer.to_string(),
            "tls": sni.is_some(),
            "sni": sni.clone().flatten(),
            "method": method,
            "path": path,
            "host": host,
            "headers": headers.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
            "body_len": body.len,
            "body_sha256": body.sha256,
        });
        let text = format!("{info}\n");
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            text.len()
        );
        w.write_all(head.as_bytes()).await?;
        if method != "HEAD" {
            w.write_all(text.as_bytes()).await?;
        }
    }
    w.flush().await?;
    w.shutdown().await
}

/// A request body as read: its length and hash, its start, and all of it when asked to keep
/// it and it fits [`ECHO_LIMIT`].
struct Body {
    len: u64,
    sha256: String,
    start: Vec<u8>,
    kept: Option<Vec<u8>>,
}

async fn read_body<R: AsyncBufReadExt + Unpin>(r: &mut R, framing: Framing, keep: bool) -> io::Result<Body> {
    let mut h = Sha256::new();
    let mut len = 0u64;
    let mut start = Vec::new();
    let mut kept = keep.then(Vec::new);
    let mut buf = vec![0u8; 64 * 1024];
    let mut take = |data: &[u8]| {
        h.update(data);
        len += data.len() as u64;
        let room = LOGGED_BODY.saturating_sub(start.len());
        start.extend_from_slice(&data[..room.min(data.len())]);
        if let Some(k) = kept.as_mut() {
            if len <= ECHO_LIMIT {
                k.extend_from_slice(data);
            }
        }
    };
    match framing {
        Framing::Length(n) => copy_n(r, n, &mut buf, &mut take).await?,
        Framing::Chunked => loop {
            let mut line = Vec::new();
            tokio::time::timeout(IDLE, (&mut *r).take(1024).read_until(b'\n', &mut line))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer idle"))??;
            let text = String::from_utf8_lossy(&line);
            let size = text.trim().split(';').next().unwrap_or("");
            let n = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {text:?}")))?;
            if n == 0 {
                // Trailers, up to the blank line.
                loop {
                    let mut t = Vec::new();
                    let got = tokio::time::timeout(IDLE, (&mut *r).take(1024).read_until(b'\n', &mut t))
                        .await
                        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer idle"))??;
                    if got == 0 || t.trim_ascii().is_empty() {
                        break;
                    }
                }
                break;
            }
            copy_n(r, n, &mut buf, &mut take).await?;
            let mut crlf = [0u8; 2];
            read_exact(r, &mut crlf).await?;
        },
    }
    let kept = kept.filter(|_| len <= ECHO_LIMIT);
    Ok(Body {
        len,
        sha256: hex(&h.finalize()),
        start,
        kept,
    })
}

/// Reads exactly `n` bytes from `r`, handing each piece to `sink`.
async fn copy_n<R: AsyncRead + Unpin>(
    r: &mut R,
    n: u64,
    buf: &mut [u8],
    sink: &mut impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut left = n;
    while left > 0 {
        let want = (left as usize).min(buf.len());
        let got = read_some(r, &mut buf[..want]).await?;
        if got == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
        }
        sink(&buf[..got]);
        left -= got as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunked_bodies_are_decoded() {
        let raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let body = read_body(&mut r, Framing::Chunked, true).await.unwrap();
        assert_eq!(body.kept.as_deref(), Some(&b"hello world"[..]));
        assert_eq!(body.len, 11);
        assert_eq!(body.sha256, hex(&Sha256::digest(b"hello world")));
    }
}
