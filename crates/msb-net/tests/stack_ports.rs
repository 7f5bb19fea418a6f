//! Published ports through the frame harness: host clients on 127.0.0.1 reach guest
//! listeners, as the ingress policy allows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use msb_net::stack::harness::frames::{self, Received};
use msb_net::stack::harness::{Harness, HarnessOptions};
use msb_net::stack::{bind_ports, PortError};
use msb_types::{NetPolicy, PublishedPort, Transport};
use smoltcp::socket::tcp::State;
use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GUEST_PORT: u16 = 8080;

fn published(transport: Transport) -> PublishedPort {
    PublishedPort {
        host_ip: Ipv4Addr::LOCALHOST.into(),
        host_port: 0,
        guest_port: GUEST_PORT,
        transport,
    }
}

fn start(policy: NetPolicy, transport: Transport) -> Harness {
    let options = HarnessOptions {
        policy,
        ports: vec![published(transport)],
        ..HarnessOptions::default()
    };
    Harness::start(options).unwrap()
}

#[test]
fn five_hundred_concurrent_host_connections_reach_a_guest_listener() {
    const N: usize = 500;
    let mut h = start(NetPolicy::public_only(), Transport::Tcp);
    let listeners: Vec<_> = (0..N).map(|_| h.guest.listen(GUEST_PORT).unwrap()).collect();
    let addr = h.port_addrs()[0];
    let (done, finished) = mpsc::channel();
    for i in 0..N {
        let done = done.clone();
        h.runtime().spawn(async move {
            let result = async {
                let mut stream = tokio::net::TcpStream::connect(addr).await?;
                let message = format!("hello from client {i:04}");
                stream.write_all(message.as_bytes()).await?;
                stream.shutdown().await?;
                let mut back = Vec::new();
                stream.read_to_end(&mut back).await?;
                std::io::Result::Ok(back == message.as_bytes())
            };
            let _ = done.send(matches!(result.await, Ok(true)));
        });
    }
    // The guest echoes every connection and closes once its client has.
    let mut ok = 0;
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered < N && Instant::now() < deadline {
        h.guest.step(Duration::from_millis(2)).unwrap();
        for &handle in &listeners {
            let sock = h.guest.tcp(handle);
            while sock.can_recv() && sock.can_send() {
                let chunk = sock.recv(|b| (b.len(), b.to_vec())).unwrap();
                sock.send_slice(&chunk).unwrap();
            }
            if sock.state() == State::CloseWait && sock.send_queue() == 0 {
                sock.close();
            }
        }
        while let Ok(good) = finished.try_recv() {
            answered += 1;
            ok += usize::from(good);
        }
    }
    assert_eq!((answered, ok), (N, N));
    assert_eq!(h.counters().published_accepts, N as u64);
    assert!(
        common::flows_settle(&mut h, 0, Duration::from_secs(30)),
        "{:?}",
        h.counters()
    );
}

#[test]
fn the_ingress_policy_closes_refused_connections() {
    let mut h = start(NetPolicy::none(), Transport::Tcp);
    let addr = h.port_addrs()[0];
    let (done, finished) = mpsc::channel();
    h.runtime().spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        let _ = done.send(matches!(read, Ok(Ok(0)) | Ok(Err(_))));
    });
    let closed = (0..500).find_map(|_| {
        h.guest.step(Duration::from_millis(10)).unwrap();
        finished.try_recv().ok()
    });
    assert_eq!(closed, Some(true));
    assert!(
        !h.guest.seen().iter().any(|s| s.syn),
        "the guest was asked to accept a refused connection"
    );
    assert_eq!(h.counters().denied_policy, 1);
    assert_eq!(h.counters().flows_open, 0);
}

#[test]
fn published_udp_reaches_the_guest_and_its_replies_the_peer() {
    let mut h = start(NetPolicy::public_only(), Transport::Udp);
    let addr = h.port_addrs()[0];
    let client = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.send_to(b"question", addr).unwrap();
    let to_guest = GUEST_PORT;
    let frame = h
        .guest
        .wait_frame(
            Duration::from_secs(5),
            |f| matches!(frames::parse(f), Received::Udp { dst, .. } if dst.port() == to_guest),
        )
        .unwrap()
        .expect("the datagram reaches the guest");
    let Received::Udp { src, payload, .. } = frames::parse(&frame) else {
        unreachable!()
    };
    assert_eq!(payload, b"question");
    assert_eq!(*src.ip(), h.config.gateway_ip);
    h.guest.send_udp(GUEST_PORT, src, b"answer").unwrap();
    h.guest.step(Duration::from_millis(10)).unwrap();
    let mut buf = [0; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"answer"[..], addr));
}

#[test]
fn a_port_already_in_use_is_named() {
    let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = bind_ports(&[PublishedPort {
        host_port: port,
        ..published(Transport::Tcp)
    }])
    .unwrap_err();
    assert!(matches!(err, PortError::InUse { port: p, .. } if p == port));
    assert!(err.to_string().contains(&port.to_string()));
}
