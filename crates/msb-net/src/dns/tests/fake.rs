//! A fake upstream resolver on 127.0.0.1 (UDP and TCP on one random port) whose answers
//! each test scripts; nothing leaves the machine.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// Whether a query came over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Udp,
    Tcp,
}

/// What the fake sends back for one query: each message in order (UDP) or the first (TCP).
pub type Script = Arc<dyn Fn(&Message, Via) -> Vec<Message> + Send + Sync>;

/// A running fake upstream.
pub struct Fake {
    pub addr: SocketAddr,
    seen: Arc<AtomicUsize>,
    asked: Arc<Mutex<Vec<Message>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Fake {
    /// A fake answering per `script`.
    pub async fn start(script: Script) -> Fake {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let udp_task = tokio::spawn({
            let (script, seen, asked) = (script.clone(), seen.clone(), asked.clone());
            async move {
                let mut buf = vec![0; 65536];
                while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let Ok(query) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    asked.lock().unwrap().push(query.clone());
                    for reply in script(&query, Via::Udp) {
                        let _ = udp.send_to(&reply.to_vec().unwrap(), from).await;
                    }
                }
            }
        });
        let tcp_task = tokio::spawn({
            let (seen, asked) = (seen.clone(), asked.clone());
            async move {
                while let Ok((mut stream, _)) = tcp.accept().await {
                    let len = stream.read_u16().await.unwrap();
                    let mut buf = vec![0; usize::from(len)];
                    stream.read_exact(&mut buf).await.unwrap();
                    seen.fetch_add(1, Ordering::SeqCst);
                    let query = Message::from_vec(&buf).unwrap();
                    asked.lock().unwrap().push(query.clone());
                    if let Some(reply) = script(&query, Via::Tcp).first() {
                        let bytes = reply.to_vec().unwrap();
                        stream.write_u16(bytes.len() as u16).await.unwrap();
                        stream.write_all(&bytes).await.unwrap();
                    }
                }
            }
        });
        Fake {
            addr,
            seen,
            asked,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// A fake that answers every query with `records` (names as given), TTL 300.
    pub async fn answering(records: Vec<(&'static str, Data)>) -> Fake {
        Fake::start(Arc::new(move |q, _| vec![reply(q, &records, 300)])).await
    }

    /// A fake that never answers.
    pub async fn silent() -> Fake {
        Fake::start(Arc::new(|_, _| Vec::new())).await
    }

    /// Queries received so far (UDP and TCP).
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// The queries received so far, parsed.
    pub fn asked(&self) -> Vec<Message> {
        self.asked.lock().unwrap().clone()
    }
}

/// UDP and TCP sockets on the same random 127.0.0.1 port.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            return (udp, tcp);
        }
    }
}

/// Record data in a scripted answer.
#[derive(Debug, Clone)]
pub enum Data {
    A([u8; 4]),
    Aaaa,
    Cname(&'static str),
}

/// A NOERROR reply to `query` carrying `records` with `ttl`.
pub fn reply(query: &Message, records: &[(&'static str, Data)], ttl: u32) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(true)
        .set_recursion_available(true)
        .set_response_code(ResponseCode::NoError)
        .add_queries(query.queries().to_vec());
    for (name, data) in records {
        let name = Name::from_ascii(format!("{name}.")).unwrap();
        let rdata = match data {
            Data::A(ip) => RData::A(A(Ipv4Addr::from(*ip))),
            Data::Aaaa => RData::AAAA("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().into()),
            Data::Cname(target) => RData::CNAME(CNAME(Name::from_ascii(format!("{target}.")).unwrap())),
        };
        reply.add_answer(Record::from_rdata(name, ttl, rdata));
    }
    reply
}
