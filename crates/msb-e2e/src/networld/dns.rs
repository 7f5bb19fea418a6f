//! The world's DNS server (UDP and TCP on 203.0.113.53) and a small client for tests.

use super::servers::{read_exact, Ctx, Event, Service};
use super::{INTERNET, INTERNET_2, LAN, METADATA};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{rdata::A, Name, RData, Record, RecordType};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// TTL of every fixture record but `ttl0.test`.
const TTL: u32 = 60;

/// The world's zone: A records by name; `*.suffix` answers every name under `suffix`.
/// Every other name is NXDOMAIN; a known name asked for another type gets an empty answer.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: Vec<(String, Ipv4Addr, u32)>,
}

impl Zone {
    /// The fixture zone:
    ///
    /// | name | address | note |
    /// |---|---|---|
    /// | `allowed.test` | 203.0.113.10 | |
    /// | `*.wild.test` | 203.0.113.10 | any name under `wild.test` |
    /// | `rebind.test` | 10.20.0.10 | private: rebinding protection must drop it |
    /// | `ttl0.test` | 203.0.113.11 | TTL 0 |
    /// | `a.shared.test`, `b.shared.test` | 203.0.113.11 | two names, one address |
    /// | `meta.test` | 169.254.169.254 | |
    /// | `denied.test` | 203.0.113.11 | |
    pub fn fixture() -> Zone {
        let mut z = Zone::default();
        z.set("allowed.test", INTERNET, TTL);
        z.set("*.wild.test", INTERNET, TTL);
        z.set("rebind.test", LAN, TTL);
        z.set("ttl0.test", INTERNET_2, 0);
        z.set("a.shared.test", INTERNET_2, TTL);
        z.set("b.shared.test", INTERNET_2, TTL);
        z.set("meta.test", METADATA, TTL);
        z.set("denied.test", INTERNET_2, TTL);
        z
    }

    /// Adds or replaces `name` (case-insensitive, trailing dot optional).
    pub fn set(&mut self, name: &str, ip: Ipv4Addr, ttl: u32) {
        let name = normalize(name);
        self.records.retain(|(n, _, _)| *n != name);
        self.records.push((name, ip, ttl));
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        let name = normalize(name);
        self.records.retain(|(n, _, _)| *n != name);
    }

    /// The address and TTL for `name`: an exact record first, else a wildcard.
    pub fn lookup(&self, name: &str) -> Option<(Ipv4Addr, u32)> {
        let name = normalize(name);
        let exact = self.records.iter().find(|(n, _, _)| *n == name);
        let wild = || {
            self.records.iter().find(|(n, _, _)| {
                n.strip_prefix("*.")
                    .is_some_and(|suffix| name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}")))
            })
        };
        exact.or_else(wild).map(|(_, ip, ttl)| (*ip, *ttl))
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The reply to one query message, or `None` for something that is not a query.
fn answer(query: &[u8], zone: &Zone) -> Option<(Vec<u8>, String, String)> {
    let q = Message::from_vec(query).ok()?;
    if q.message_type() != MessageType::Query {
        return None;
    }
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(q.op_code())
        .set_authoritative(true)
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(true);
    let Some(question) = q.queries().first().cloned() else {
        r.set_response_code(ResponseCode::FormErr);
        return Some((r.to_vec().ok()?, String::new(), String::new()));
    };
    let name = normalize(&question.name().to_ascii());
    let qtype = question.query_type();
    r.add_query(question.clone());
    if q.op_code() != OpCode::Query {
        r.set_response_code(ResponseCode::NotImp);
    } else {
        match zone.lookup(&name) {
            None => {
                r.set_response_code(ResponseCode::NXDomain);
            }
            Some((ip, ttl)) => {
                if qtype == RecordType::A || qtype == RecordType::ANY {
                    r.add_answer(Record::from_rdata(question.name().clone(), ttl, RData::A(A(ip))));
                }
            }
        }
    }
    Some((r.to_vec().ok()?, name, qtype.to_string()))
}

/// Answers UDP queries forever.
pub(super) async fn serve_udp(sock: tokio::net::UdpSocket, ctx: Ctx, zone: Arc<Mutex<Zone>>) {
    let Ok(local) = sock.local_addr() else { return };
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let reply = {
            let z = zone.lock().unwrap_or_else(|p| p.into_inner());
            answer(&buf[..n], &z)
        };
        let Some((reply, name, qtype)) = reply else { continue };
        ctx.hit(
            Service::Dns,
            local,
            peer,
            Event::DnsQuery {
                name,
                qtype,
                tcp: false,
            },
        );
        let _ = sock.send_to(&reply, peer).await;
    }
}

/// Answers length-prefixed queries on one TCP connection until it closes or idles.
pub(super) async fn serve_tcp(
    mut s: tokio::net::TcpStream,
    ctx: &Ctx,
    local: SocketAddr,
    peer: SocketAddr,
    zone: Arc<Mutex<Zone>>,
) -> io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        if read_exact(&mut s, &mut len).await.is_err() {
            return Ok(());
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        read_exact(&mut s, &mut msg).await?;
        let reply = {
            let z = zone.lock().unwrap_or_else(|p| p.into_inner());
            answer(&msg, &z)
        };
        let Some((reply, name, qtype)) = reply else {
            return Ok(());
        };
        ctx.hit(Service::Dns, local, peer, Event::DnsQuery { name, qtype, tcp: true });
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend(reply);
        s.write_all(&framed).await?;
    }
}

/// What a DNS server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// `NoError`, `NXDomain`, …
    pub rcode: String,
    /// The A records: address and TTL.
    pub addrs: Vec<(Ipv4Addr, u32)>,
}

/// Asks `server` for `name`'s records of type `qtype` (`"A"`, `"AAAA"`, …) over UDP or TCP,
/// waiting at most 3 s. Blocking; run it inside SBX with [`super::NetWorld::in_sbx`].
pub fn query(server: SocketAddr, name: &str, qtype: &str, tcp: bool) -> io::Result<DnsAnswer> {
    const WAIT: Duration = Duration::from_secs(3);
    let bad = |e: hickory_proto::ProtoError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let rtype: RecordType = qtype.parse().map_err(bad)?;
    let id = (std::process::id() as u16) ^ (name.len() as u16).rotate_left(7);
    let mut q = Message::new();
    q.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).map_err(bad)?, rtype));
    let wire = q.to_vec().map_err(bad)?;
    let reply = if tcp {
        let mut s = TcpStream::connect_timeout(&server, WAIT)?;
        s.set_read_timeout(Some(WAIT))?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend(&wire);
        s.write_all(&framed)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut msg)?;
        msg
    } else {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        s.set_read_timeout(Some(WAIT))?;
        s.send_to(&wire, server)?;
        let mut buf = vec![0u8; 4096];
        let n = s.recv(&mut buf)?;
        buf.truncate(n);
        buf
    };
    let r = Message::from_vec(&reply).map_err(bad)?;
    if r.id() != id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "DNS reply for another query",
        ));
    }
    let addrs = r
        .answers()
        .iter()
        .filter_map(|rec| match rec.data() {
            RData::A(a) => Some((a.0, rec.ttl())),
            _ => None,
        })
        .collect();
    Ok(DnsAnswer {
        rcode: format!("{:?}", r.response_code()),
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(zone: &Zone, name: &str, rtype: RecordType) -> Message {
        let mut q = Message::new();
        q.set_id(7)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        let (wire, _, _) = answer(&q.to_vec().unwrap(), zone).unwrap();
        Message::from_vec(&wire).unwrap()
    }

    #[test]
    fn the_fixture_zone_answers_as_documented() {
        let z = Zone::fixture();
        assert_eq!(z.lookup("allowed.test"), Some((INTERNET, TTL)));
        assert_eq!(z.lookup("ALLOWED.test."), Some((INTERNET, TTL)));
        assert_eq!(z.lookup("x.wild.test"), Some((INTERNET, TTL)));
        assert_eq!(z.lookup("a.b.wild.test"), Some((INTERNET, TTL)));
        assert_eq!(z.lookup("wild.test"), None);
        assert_eq!(z.lookup("xwild.test"), None);
        assert_eq!(z.lookup("ttl0.test"), Some((INTERNET_2, 0)));
        assert_eq!(z.lookup("nothing.test"), None);
    }

    #[test]
    fn answers_carry_the_record_or_nxdomain() {
        let z = Zone::fixture();
        let r = ask(&z, "rebind.test", RecordType::A);
        assert_eq!(r.id(), 7);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert_eq!(r.answers().len(), 1);
        assert_eq!(r.answers()[0].data(), &RData::A(A(LAN)));
        let r = ask(&z, "rebind.test", RecordType::AAAA);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.answers().is_empty());
        let r = ask(&z, "nope.test", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
    }
}
