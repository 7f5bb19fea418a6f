//! HTTPS through interception against pass-through, on the frame harness: the same local
//! echo server reached by name through interception (with a secret substituted in every
//! request) or under a name nothing intercepts, plus the TLS handshake's cost through
//! interception with a cached leaf and with a fresh one.

use super::tls::{client_config, resolve_gateway_name, EchoServer, GuestTls, TestCa, GATEWAY_NAME};
use super::{host_rule, only, Harness, HarnessOptions, Throughput};
use crate::intercept::{Injection, InterceptConfig, Interception, SecretRule};
use msb_types::Protocol;
use std::io;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long one step (a handshake, a response) may take.
const STEP: Duration = Duration::from_secs(60);
const PLACEHOLDER: &str = "msb_sec_00112233445566778899aabbccddeeff";
/// The name the echo server answers without interception.
const DIRECT: &str = "direct.test";

/// One path's figures.
#[derive(Debug, Clone, Copy)]
pub struct HttpsFigures {
    /// Mean time of a small request and its response on a kept-alive connection.
    pub request_latency: Duration,
    /// A body of `bytes` sent up and echoed back (bytes counts one way).
    pub echo: Throughput,
}

/// Interception against pass-through, and the handshake's cost.
#[derive(Debug, Clone, Copy)]
pub struct HttpsBench {
    /// Through interception.
    pub intercepted: HttpsFigures,
    /// Passed through untouched.
    pub passthrough: HttpsFigures,
    /// Mean intercepted TLS handshake when the leaf is cached.
    pub handshake_cached: Duration,
    /// Mean intercepted TLS handshake when a leaf is made for it.
    pub handshake_fresh: Duration,
    /// Mean pass-through TLS handshake (the upstream's own).
    pub handshake_passthrough: Duration,
}

/// Runs `requests` small requests and a `bytes` echo on each path, and `handshakes`
/// handshakes of each kind.
pub fn https(requests: u32, bytes: u64, handshakes: u32) -> io::Result<HttpsBench> {
    let servers = tokio::runtime::Runtime::new()?;
    let upstream_ca = TestCa::new()?;
    let config = upstream_ca.server_config(&[GATEWAY_NAME, DIRECT, "*.bench.test"])?;
    let echo = servers.block_on(EchoServer::start(config))?;
    let port = echo.addr.port();
    let interception = Interception::new(InterceptConfig {
        secrets: vec![SecretRule {
            name: "BENCH_KEY".into(),
            value: Zeroizing::new("bench-real-value".into()),
            placeholder: PLACEHOLDER.into(),
            hosts: vec![GATEWAY_NAME.into()],
            inject: Injection::default(),
        }],
        intercept_hosts: vec!["*.bench.test".into()],
        ports: vec![port],
        upstream_cas: vec![upstream_ca.pem()],
        host_roots: false,
        ..InterceptConfig::default()
    })
    .map_err(io::Error::other)?;
    let mut harness = Harness::start(HarnessOptions {
        policy: only(vec![host_rule(Protocol::Tcp, port)]),
        intercept: Some(interception.clone()),
        ..HarnessOptions::default()
    })?;
    if !resolve_gateway_name(&mut harness)? {
        return Err(io::Error::other("the gateway's name did not resolve"));
    }
    let ours = vec![interception.ca_pem()];
    let theirs = vec![upstream_ca.pem()];
    let mut bench = Bench {
        harness: &mut harness,
        port,
    };
    let intercepted = bench.figures(GATEWAY_NAME, &ours, requests, bytes)?;
    let passthrough = bench.figures(DIRECT, &theirs, requests, bytes)?;
    bench.handshake("cached.bench.test", &ours)?;
    let mut cached = Duration::ZERO;
    let mut fresh = Duration::ZERO;
    let mut direct = Duration::ZERO;
    for i in 0..handshakes {
        cached += bench.handshake("cached.bench.test", &ours)?;
        fresh += bench.handshake(&format!("n{i}.bench.test"), &ours)?;
        direct += bench.handshake(DIRECT, &theirs)?;
    }
    let n = handshakes.max(1);
    Ok(HttpsBench {
        intercepted,
        passthrough,
        handshake_cached: cached / n,
        handshake_fresh: fresh / n,
        handshake_passthrough: direct / n,
    })
}

/// The harness and the echo server's port.
struct Bench<'a> {
    harness: &'a mut Harness,
    port: u16,
}

impl Bench<'_> {
    /// A connection to the echo server named `sni`, trusting `roots`, handshake done; and
    /// how long the handshake took.
    fn session(&mut self, sni: &str, roots: &[String]) -> io::Result<(GuestTls, Duration)> {
        let dst = self.harness.gateway(self.port);
        let guest = &mut self.harness.guest;
        let handle = super::tls::connect(guest, dst, STEP)?.ok_or_else(|| io::Error::other("no TCP handshake"))?;
        let mut tls = GuestTls::new(handle, client_config(roots, &[b"http/1.1"])?, sni)?;
        let start = Instant::now();
        tls.handshake(guest, STEP)?;
        Ok((tls, start.elapsed()))
    }

    fn close(&mut self, tls: GuestTls) {
        let handle = tls.handle();
        self.harness.guest.tcp(handle).abort();
        let _ = self.harness.guest.step(Duration::from_millis(1));
        self.harness.guest.remove(handle);
    }

    fn handshake(&mut self, sni: &str, roots: &[String]) -> io::Result<Duration> {
        let (tls, took) = self.session(sni, roots)?;
        self.close(tls);
        Ok(took)
    }

    fn figures(&mut self, sni: &str, roots: &[String], requests: u32, bytes: u64) -> io::Result<HttpsFigures> {
        let (mut tls, _) = self.session(sni, roots)?;
        let guest = &mut self.harness.guest;
        let request = format!("GET /small HTTP/1.1\r\nHost: {sni}\r\nX-Api-Key: {PLACEHOLDER}\r\n\r\n");
        let start = Instant::now();
        for _ in 0..requests {
            tls.send_all(guest, request.as_bytes(), STEP)?;
            let (head, _) = tls.response(guest, STEP)?;
            if !head.starts_with("HTTP/1.1 200") {
                return Err(io::Error::other(format!("unexpected response: {head}")));
            }
        }
        let request_latency = start.elapsed() / requests.max(1);
        let len = usize::try_from(bytes).map_err(io::Error::other)?;
        let head = format!(
            "POST /bulk HTTP/1.1\r\nHost: {sni}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        );
        let body = vec![b'z'; len];
        let start = Instant::now();
        tls.send_all(guest, head.as_bytes(), STEP)?;
        tls.send_all(guest, &body, STEP)?;
        let (_, echoed) = tls.response(guest, STEP)?;
        let elapsed = start.elapsed();
        if echoed.len() < len {
            return Err(io::Error::other("the echo came back short"));
        }
        self.close(tls);
        Ok(HttpsFigures {
            request_latency,
            echo: Throughput { bytes, elapsed },
        })
    }
}
