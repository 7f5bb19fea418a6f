//! Checks for the network tests (`tests/vm_network.rs`): one check per run, one line of
//! plain output saying what happened ("status 200", "refused", "reset", "rcode=3 addrs=").
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn why(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => "refused".into(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => "reset".into(),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "timeout".into(),
        k => format!("{k:?}"),
    }
}

fn dial(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, WAIT)?;
    s.set_read_timeout(Some(WAIT))?;
    s.set_write_timeout(Some(WAIT))?;
    Ok(s)
}

/// `GET PATH` with `Host: HOST`: "status N", "eof" (closed unanswered) or why it failed.
pub fn http(addr: SocketAddr, host: &str, path: &str) -> String {
    let got = (|| {
        let mut s = dial(addr)?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut b = Vec::new();
        s.read_to_end(&mut b)?;
        Ok::<_, std::io::Error>(b)
    })();
    match got {
        Ok(b) if b.is_empty() => "eof".into(),
        Ok(b) => format!(
            "status {}",
            String::from_utf8_lossy(&b).split_whitespace().nth(1).unwrap_or("?")
        ),
        Err(e) => why(&e),
    }
}

/// A TLS ClientHello naming SNI: "answer T" (T: the first record type back), "eof" or why not.
pub fn tls(addr: SocketAddr, sni: &str) -> String {
    let got = (|| {
        let mut s = dial(addr)?;
        s.write_all(&client_hello(sni))?;
        let mut b = [0u8; 1];
        let n = s.read(&mut b)?;
        Ok::<_, std::io::Error>((n, b[0]))
    })();
    match got {
        Ok((0, _)) => "eof".into(),
        Ok((_, t)) => format!("answer {t}"),
        Err(e) => why(&e),
    }
}

fn client_hello(sni: &str) -> Vec<u8> {
    let be = |n: usize| (n as u16).to_be_bytes();
    let name = sni.as_bytes();
    let mut ext = Vec::new();
    let mut push = |ty: u16, body: &[u8]| {
        ext.extend(ty.to_be_bytes());
        ext.extend(be(body.len()));
        ext.extend(body);
    };
    let mut sn = be(name.len() + 3).to_vec();
    sn.push(0);
    sn.extend(be(name.len()));
    sn.extend(name);
    push(0, &sn);
    push(10, &[0, 4, 0, 0x1d, 0, 0x17]);
    push(11, &[1, 0]);
    push(13, &[0, 4, 4, 3, 8, 4]);
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.extend([0, 0, 4, 0xc0, 0x2b, 0xc0, 0x2f, 1, 0]);
    body.extend(be(ext.len()));
    body.extend(ext);
    let mut rec = vec![0x16, 3, 1];
    rec.extend(be(body.len() + 4));
    rec.extend([1, 0]);
    rec.extend(be(body.len()));
    rec.extend(body);
    rec
}

/// One datagram to ADDR: "reply TEXT" or why none came.
pub fn udp(addr: SocketAddr, msg: &str) -> String {
    let got = (|| {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.send(msg.as_bytes())?;
        let mut b = [0u8; 1500];
        let n = s.recv(&mut b)?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&b[..n]).into_owned())
    })();
    match got {
        Ok(t) => format!("reply {t}"),
        Err(e) => why(&e),
    }
}

/// Echoes datagrams on PORT for SECS seconds.
pub fn udp_echo(port: u16, secs: u64) -> String {
    let Ok(s) = UdpSocket::bind(("0.0.0.0", port)) else {
        return "bind failed".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut n, mut b) = (0, [0u8; 2048]);
    while Instant::now() < end {
        if let Ok((len, from)) = s.recv_from(&mut b) {
            let _ = s.send_to(&b[..len], from);
            n += 1;
        }
    }
    format!("echoed {n}")
}

/// Serves FILE over HTTP/1.0 on PORT for SECS, a thread per connection: unlike a forking
/// server, hundreds of clients at once cost the guest little memory.
pub fn serve_http(port: u16, file: &str, secs: u64) -> String {
    let Ok(body) = std::fs::read(file) else {
        return "no file".into();
    };
    let Ok(listener) = std::net::TcpListener::bind(("0.0.0.0", port)) else {
        return "bind failed".into();
    };
    let body = std::sync::Arc::new(body);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut served = 0u64;
    for conn in listener.incoming() {
        if Instant::now() > end {
            break;
        }
        let Ok(mut conn) = conn else { continue };
        let body = body.clone();
        served += 1;
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(WAIT));
            // The request's head, up to its blank line (bounded).
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                match conn.read(&mut b) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let _ = write!(conn, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = conn.write_all(&body);
        });
    }
    format!("served {served}")
}

/// N connects one after another, each closed at once (at most 10 minutes in all). Each
/// waits for the server's close before the next, so no more than one is ever open: how
/// fast a loaded host tears connections down cannot make them pile up.
pub fn churn(addr: SocketAddr, n: u64) -> String {
    let (mut ok, mut refused, mut other) = (0, 0, 0);
    let end = Instant::now() + Duration::from_secs(600);
    for _ in 0..n {
        if Instant::now() > end {
            break;
        }
        match TcpStream::connect_timeout(&addr, WAIT) {
            Ok(mut s) => {
                ok += 1;
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = s.set_read_timeout(Some(WAIT));
                let _ = s.read(&mut [0u8; 64]);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused += 1,
            Err(_) => other += 1,
        }
    }
    format!("ok={ok} refused={refused} other={other}")
}

/// N connections opened and held together for a second.
pub fn hold(addr: SocketAddr, n: u64) -> String {
    let (mut open, mut refused, mut other) = (Vec::new(), 0, 0);
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, WAIT) {
            Ok(s) => open.push(s),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused += 1,
            Err(_) => other += 1,
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    format!("ok={} refused={refused} other={other}", open.len())
}

/// One query to the resolver in /etc/resolv.conf: "rcode=N addrs=A,B" or why none came.
pub fn resolve(name: &str, ty: &str) -> String {
    let qtype: u16 = if ty == "AAAA" { 28 } else { 1 };
    let q = match crate::query(0x4d53, name, qtype) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let server = conf
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .unwrap_or("100.96.0.1")
        .trim()
        .to_string();
    let got = (|| {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect((server.as_str(), 53))?;
        s.set_read_timeout(Some(WAIT))?;
        s.send(&q)?;
        let mut b = vec![0u8; 1500];
        let n = s.recv(&mut b)?;
        b.truncate(n);
        Ok::<_, std::io::Error>(b)
    })();
    let b = match got {
        Ok(b) if b.len() >= 12 => b,
        Ok(_) => return "short".into(),
        Err(e) => return why(&e),
    };
    let answers = u16::from_be_bytes([b[6], b[7]]);
    let mut i = skip_name(&b, 12) + 4;
    let mut addrs = Vec::new();
    for _ in 0..answers {
        i = skip_name(&b, i);
        if i + 10 > b.len() {
            break;
        }
        let (ty, len) = (
            u16::from_be_bytes([b[i], b[i + 1]]),
            u16::from_be_bytes([b[i + 8], b[i + 9]]) as usize,
        );
        i += 10;
        match (ty, b.get(i..i + len)) {
            (1, Some(&[x, y, z, w])) => addrs.push(format!("{x}.{y}.{z}.{w}")),
            (_, Some(_)) => addrs.push(format!("type{ty}")),
            (_, None) => break,
        }
        i += len;
    }
    format!("rcode={} addrs={}", b[3] & 0x0f, addrs.join(","))
}

fn skip_name(b: &[u8], mut i: usize) -> usize {
    while let Some(&len) = b.get(i) {
        match len {
            0 => return i + 1,
            l if l & 0xc0 == 0xc0 => return i + 2,
            l => i += usize::from(l) + 1,
        }
    }
    i
}
