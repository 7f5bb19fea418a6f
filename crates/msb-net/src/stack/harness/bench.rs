//! Frame-harness throughput: one TCP flow between the guest and a server on the host's
//! loopback, through the real stack, socketpair and framing (what `cargo xtask bench net`
//! reports as "frame-harness throughput").

use super::{host_rule, only, Harness, HarnessOptions};
use msb_types::Protocol;
use smoltcp::iface::SocketHandle;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a benchmark may take at most.
const LIMIT: Duration = Duration::from_secs(300);

/// Bytes moved and the time it took.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Payload bytes moved.
    pub bytes: u64,
    /// From the established connection to the last byte at its destination.
    pub elapsed: Duration,
}

impl Throughput {
    /// Payload rate in Gbit/s.
    pub fn gbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e9
    }
}

/// A harness whose guest may reach a fresh host listener through the gateway.
fn setup() -> io::Result<(Harness, TcpListener)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let policy = only(vec![host_rule(Protocol::Tcp, port)]);
    Ok((
        Harness::start(HarnessOptions {
            policy,
            ..HarnessOptions::default()
        })?,
        listener,
    ))
}

/// The guest's connection to the host listener on `port`, once established.
fn connected(harness: &mut Harness, port: u16) -> io::Result<SocketHandle> {
    let dst = harness.gateway(port);
    let guest = &mut harness.guest;
    let handle = guest.connect(dst)?;
    if !guest.run_until(Duration::from_secs(10), |g| g.tcp(handle).may_send())? {
        return Err(timed_out());
    }
    Ok(handle)
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the transfer did not finish in time")
}

/// Sends `bytes` from the guest to a host server that discards them.
pub fn upload(bytes: u64) -> io::Result<Throughput> {
    let (mut harness, listener) = setup()?;
    let port = listener.local_addr()?.port();
    let (done, received) = mpsc::channel();
    harness.runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0; 256 * 1024];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf).await? {
                0 => break,
                n => total += n as u64,
            }
        }
        let _ = done.send(total);
        io::Result::Ok(())
    });
    let handle = connected(&mut harness, port)?;
    let guest = &mut harness.guest;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes && start.elapsed() < LIMIT {
        let left = bytes - sent;
        // The payload is whatever the buffer holds: only the amount matters here.
        let n = guest.tcp(handle).send(|buf| {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            (n, n)
        });
        sent += n.map_err(io::Error::other)? as u64;
        guest.step(Duration::from_millis(2))?;
    }
    guest.tcp(handle).close();
    let deadline = start + LIMIT;
    loop {
        guest.step(Duration::from_millis(2))?;
        if let Ok(total) = received.try_recv() {
            return if total == bytes {
                Ok(Throughput {
                    bytes,
                    elapsed: start.elapsed(),
                })
            } else {
                Err(timed_out())
            };
        }
        if Instant::now() > deadline {
            return Err(timed_out());
        }
    }
}

/// Sends `bytes` from a host server to the guest, which discards them.
pub fn download(bytes: u64) -> io::Result<Throughput> {
    let (mut harness, listener) = setup()?;
    let port = listener.local_addr()?.port();
    harness.runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (mut stream, _) = listener.accept().await?;
        let buf = vec![0x5a; 256 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            stream.write_all(&buf[..n]).await?;
            left -= n as u64;
        }
        stream.shutdown().await
    });
    let handle = connected(&mut harness, port)?;
    let guest = &mut harness.guest;
    let start = Instant::now();
    let mut received = 0u64;
    while received < bytes && start.elapsed() < LIMIT {
        while let Ok(n) = guest.tcp(handle).recv(|buf| (buf.len(), buf.len())) {
            if n == 0 {
                break;
            }
            received += n as u64;
        }
        guest.step(Duration::from_millis(2))?;
    }
    if received < bytes {
        return Err(timed_out());
    }
    Ok(Throughput {
        bytes,
        elapsed: start.elapsed(),
    })
}
