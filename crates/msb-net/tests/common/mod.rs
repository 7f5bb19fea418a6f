//! Host-side servers for the stack tests: all on 127.0.0.1, all started by the test itself.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use msb_net::stack::harness::{Guest, Harness};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An address on 127.0.0.1 nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A listener on 127.0.0.1 for a server started later; it and its port.
pub fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A UDP socket on 127.0.0.1 for a server started later; it and its port.
pub fn udp_socket() -> (UdpSocket, u16) {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sock.set_nonblocking(true).unwrap();
    let port = sock.local_addr().unwrap().port();
    (sock, port)
}

/// Serves TCP echo on `listener` on the harness runtime.
pub fn serve_echo(harness: &Harness, listener: TcpListener) {
    harness.runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
}

/// Serves on `listener`: writes `greeting` first, then reads until the client closes.
pub fn serve_greeter(harness: &Harness, listener: TcpListener, greeting: &'static [u8]) {
    harness.runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(greeting).await;
                let mut buf = [0; 1024];
                while let Ok(1..) = stream.read(&mut buf).await {}
            });
        }
    });
}

/// Serves UDP echo on `sock` on the harness runtime.
pub fn serve_udp_echo(harness: &Harness, sock: UdpSocket) {
    harness.runtime().spawn(async move {
        let sock = tokio::net::UdpSocket::from_std(sock).unwrap();
        let mut buf = vec![0; 65535];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(&buf[..n], peer).await;
        }
    });
}

/// Connects the guest to `dst` and waits for the handshake; the socket, or `None` if it failed.
pub fn connect(guest: &mut Guest, dst: SocketAddrV4) -> Option<SocketHandle> {
    let handle = guest.connect(dst).unwrap();
    guest
        .run_until(Duration::from_secs(15), |g| {
            !matches!(g.tcp(handle).state(), State::SynSent | State::SynReceived)
        })
        .unwrap();
    (guest.tcp(handle).state() == State::Established).then_some(handle)
}

/// Sends `data` and reads back as many bytes; what came back.
pub fn echo(guest: &mut Guest, handle: SocketHandle, data: &[u8], timeout: Duration) -> Vec<u8> {
    let mut sent = 0;
    let mut back = Vec::with_capacity(data.len());
    guest
        .run_until(timeout, |g| {
            let sock = g.tcp(handle);
            if sent < data.len() && sock.can_send() {
                sent += sock.send_slice(&data[sent..]).unwrap();
            }
            while sock.can_recv() {
                sock.recv(|buf| {
                    back.extend_from_slice(buf);
                    (buf.len(), ())
                })
                .unwrap();
            }
            back.len() >= data.len() || !sock.is_active()
        })
        .unwrap();
    back
}

/// Waits for the stack to report `n` open flows.
pub fn flows_settle(harness: &mut Harness, n: u64, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if harness.counters().flows_open == n {
            return true;
        }
        harness.guest.step(Duration::from_millis(10)).unwrap();
    }
    harness.counters().flows_open == n
}
