//! Asking the upstream resolvers: which they are, and one query's exchange with them.

use super::wire::{self, GuestQuery};
use hickory_proto::op::{Message, ResponseCode};
use msb_types::DnsSpec;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

/// The host's resolver configuration, read when no nameservers are configured.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Receive buffer for one UDP answer: above the [`wire::EDNS_UDP`] the query offers, with
/// room for servers that send a little more.
const UDP_BUFFER: usize = 4096;

/// The resolvers a sandbox's queries go to, in order, and how long each may take.
#[derive(Debug)]
pub(crate) struct Upstream {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

/// Why no server answered a query.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// There is no server to ask.
    #[error("no upstream nameserver is configured or in {RESOLV_CONF}")]
    NoServers,
    /// The last server asked failed this way.
    #[error("upstream {server}: {reason}")]
    Server {
        /// The server.
        server: SocketAddr,
        /// What went wrong with it.
        reason: String,
    },
}

impl Upstream {
    /// The servers of `spec` (`IP`, `IP:PORT`, `[IPv6]:PORT`), or the host's resolv.conf
    /// ones when it names none; an entry that is none of those is an error naming it.
    pub(crate) fn new(spec: &DnsSpec) -> io::Result<Upstream> {
        let servers = if spec.nameservers.is_empty() {
            let servers = match std::fs::read_to_string(RESOLV_CONF) {
                Ok(text) => resolv_conf_servers(&text),
                Err(e) => {
                    tracing::warn!(path = RESOLV_CONF, error = %e, "cannot read the host's resolver configuration");
                    Vec::new()
                }
            };
            if servers.is_empty() {
                tracing::warn!(
                    path = RESOLV_CONF,
                    "no usable nameserver for the sandbox's DNS: queries that need the upstream get SERVFAIL; \
                     set the sandbox's DNS nameservers"
                );
            }
            servers
        } else {
            spec.nameservers
                .iter()
                .map(|s| {
                    DnsSpec::nameserver_addr(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
                })
                .collect::<io::Result<_>>()?
        };
        Ok(Upstream {
            servers,
            timeout: Duration::from_millis(spec.query_timeout_ms.max(1)),
        })
    }

    /// The upstream's answer to `query`: each server in turn, each for at most the query
    /// timeout, until one gives an answer (NOERROR, NXDOMAIN, …) rather than a failure.
    pub(crate) async fn ask(&self, query: &GuestQuery) -> Result<Message, Failure> {
        let mut failure = Failure::NoServers;
        for &server in &self.servers {
            // A fresh random ID (and, below, a fresh socket and port) per query keeps off-path
            // spoofing guesswork as hard as the resolver library's own.
            let id: u16 = rand::random();
            let deadline = Instant::now() + self.timeout;
            let reason = match timeout_at(deadline, exchange(server, id, query)).await {
                Ok(Ok(reply)) if !is_server_failure(reply.response_code()) => return Ok(reply),
                Ok(Ok(reply)) => format!("answered {}", reply.response_code()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer in {} ms", self.timeout.as_millis()),
            };
            failure = Failure::Server { server, reason };
        }
        Err(failure)
    }
}

/// Response codes that say "this server could not", not "this name is so": the next
/// server may do better.
fn is_server_failure(code: ResponseCode) -> bool {
    matches!(
        code,
        ResponseCode::ServFail | ResponseCode::Refused | ResponseCode::NotImp | ResponseCode::FormErr
    )
}

/// One query to `server` under `id`: over UDP, and again over TCP when the UDP answer was
/// truncated. Datagrams from elsewhere or not matching the query are ignored.
async fn exchange(server: SocketAddr, id: u16, query: &GuestQuery) -> io::Result<Message> {
    let bytes = query.upstream_query(id);
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // A connected socket makes the kernel drop datagrams from any other source.
    socket.connect(server).await?;
    socket.send(&bytes).await?;
    let mut buf = vec![0; UDP_BUFFER];
    let reply = loop {
        let n = socket.recv(&mut buf).await?;
        if let Some(reply) = buf.get(..n).and_then(|b| wire::check_reply(b, id, query)) {
            break reply;
        }
    };
    if !reply.truncated() {
        return Ok(reply);
    }
    exchange_tcp(server, id, query, &bytes).await
}

/// `bytes` (the query under `id`) to `server` over TCP, and its one answer.
async fn exchange_tcp(server: SocketAddr, id: u16, query: &GuestQuery, bytes: &[u8]) -> io::Result<Message> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len()).map_err(|_| io::Error::other("query too long for TCP"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    wire::check_reply(&buf, id, query)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "TCP answer does not match the query"))
}

/// The `nameserver` addresses of a resolv.conf; scoped IPv6 ones (`fe80::1%eth0`) and
/// anything unparsable are skipped.
fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => DnsSpec::nameserver_addr(addr).ok(),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read_and_odd_lines_skipped() {
        let text = "# comment\nsearch lan\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\n\
                    nameserver   2001:db8::1  # v6\nnameserver\nnameserver bogus\noptions ndots:1\n";
        assert_eq!(
            resolv_conf_servers(text),
            [
                "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn a_bad_configured_server_is_an_error_naming_it() {
        let spec = DnsSpec {
            nameservers: vec!["10.0.0.1".into(), "resolver.lan:53".into()],
            ..DnsSpec::default()
        };
        let err = Upstream::new(&spec).unwrap_err();
        assert!(err.to_string().contains("resolver.lan:53"), "{err}");
    }
}
