//! Measurements for `cargo xtask bench net`: each prints one JSON line. They talk to the
//! network test world's sink (port 9), source (port 19) and any DNS server.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// Any single wait on the network.
const WAIT: Duration = Duration::from_secs(30);
/// A DNS reply later than this counts as lost.
const DNS_WAIT: Duration = Duration::from_secs(2);

pub type Result<T> = std::result::Result<T, String>;

pub fn parse(addr: &str, n: &str) -> Result<(SocketAddr, u64)> {
    let a = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let n = n.parse().map_err(|_| format!("not a number: {n}"))?;
    Ok((a, n))
}

fn dial(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    Ok(s)
}

fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs.max(1e-9)
}

/// Guest → server: BYTES written, then the sink's count read back (so the time covers
/// delivery, not just the local send buffer).
pub fn upload(addr: SocketAddr, bytes: u64) -> Result<String> {
    let buf = vec![0x5au8; 256 * 1024];
    let started = Instant::now();
    let mut s = dial(addr)?;
    let mut left = bytes;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        s.write_all(&buf[..n]).map_err(|e| format!("sending: {e}"))?;
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut count = [0u8; 8];
    s.read_exact(&mut count)
        .map_err(|e| format!("reading the sink's count: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let got = u64::from_be_bytes(count);
    if got != bytes {
        return Err(format!("the sink got {got} bytes of {bytes}"));
    }
    Ok(format!(
        "{{\"test\":\"upload\",\"bytes\":{bytes},\"secs\":{secs:.6},\"mib_per_s\":{:.3}}}",
        rate(bytes, secs)
    ))
}

/// Server → guest: BYTES asked of the source and read to the end.
pub fn download(addr: SocketAddr, bytes: u64) -> Result<String> {
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    let mut s = dial(addr)?;
    s.write_all(&bytes.to_be_bytes()).map_err(|e| format!("asking: {e}"))?;
    let mut got = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("receiving after {got} bytes: {e}")),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if got != bytes {
        return Err(format!("received {got} bytes of {bytes}"));
    }
    Ok(format!(
        "{{\"test\":\"download\",\"bytes\":{bytes},\"secs\":{secs:.6},\"mib_per_s\":{:.3}}}",
        rate(bytes, secs)
    ))
}

/// COUNT connects one after another, each closed as soon as it is established.
pub fn connect(addr: SocketAddr, count: u64) -> Result<String> {
    let mut times = Vec::new();
    let mut failed = 0u64;
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        match TcpStream::connect_timeout(&addr, WAIT) {
            Ok(s) => {
                times.push(t.elapsed());
                drop(s);
            }
            Err(_) => failed += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"test\":\"connect\",\"count\":{count},\"failed\":{failed},\"secs\":{secs:.6},\"per_s\":{:.2},{}}}",
        times.len() as f64 / secs.max(1e-9),
        spread(&mut times)
    ))
}

/// COUNT A queries for NAME, each waiting for its reply before the next.
pub fn dns(server: SocketAddr, name: &str, count: u64) -> Result<String> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| format!("{server}: {e}"))?;
    sock.set_read_timeout(Some(DNS_WAIT)).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let mut failed = 0u64;
    let mut buf = [0u8; 1500];
    for i in 0..count {
        let id = (i as u16).wrapping_mul(7919).wrapping_add(1);
        let q = crate::query(id, name, 1)?;
        let t = Instant::now();
        sock.send(&q).map_err(|e| format!("sending to {server}: {e}"))?;
        // Skip stray replies (a late answer to an earlier, timed-out query).
        let ok = loop {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 12 && buf[..2] == id.to_be_bytes() => {
                    let answers = u16::from_be_bytes([buf[6], buf[7]]);
                    break buf[3] & 0x0f == 0 && answers > 0;
                }
                Ok(_) => continue,
                Err(_) => break false,
            }
        };
        if ok {
            times.push(t.elapsed());
        } else {
            failed += 1;
        }
    }
    Ok(format!(
        "{{\"test\":\"dns\",\"count\":{count},\"failed\":{failed},{}}}",
        spread(&mut times)
    ))
}

/// `"median_us":…,"p90_us":…,"min_us":…,"mean_us":…` of `times`.
fn spread(times: &mut [Duration]) -> String {
    if times.is_empty() {
        return "\"median_us\":null,\"p90_us\":null,\"min_us\":null,\"mean_us\":null".into();
    }
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(times[((times.len() - 1) as f64 * q).round() as usize]);
    let mean = times.iter().map(|d| us(*d)).sum::<f64>() / times.len() as f64;
    format!(
        "\"median_us\":{:.1},\"p90_us\":{:.1},\"min_us\":{:.1},\"mean_us\":{mean:.1}",
        at(0.5),
        at(0.9),
        us(times[0])
    )
}
