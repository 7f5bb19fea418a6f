//! DNS messages without sockets: reading the guest's query, building the replies to it,
//! checking and cleaning the upstream's answer. Pure functions, public so the fuzz targets
//! can drive them with arbitrary bytes.

use crate::policy::group_of;
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use msb_types::Group;
use std::net::{IpAddr, Ipv4Addr};

/// The UDP payload a guest without EDNS can take (RFC 1035 §4.2.1).
const CLASSIC_UDP: usize = 512;
/// The largest UDP payload offered or sent: fits a 1280-byte IPv6 MTU with headers, so no
/// reply ever needs IP fragments (the DNS Flag Day 2020 figure).
pub const EDNS_UDP: u16 = 1232;
/// How many CNAME hops of an answer are followed; real chains are a handful long.
const MAX_CHAIN: usize = 16;
/// The smallest a question (root name, type, class) and a record (root name, type, class,
/// TTL, rdata length) can be on the wire: header counts promising more than the message can
/// hold are rejected before anything is allocated for them.
const MIN_QUESTION: usize = 5;
const MIN_RECORD: usize = 11;

/// How a reply travels back to the guest, which bounds its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram: at most what the query advertised (512 without EDNS).
    Udp,
    /// A length-prefixed TCP message: at most 64 KiB.
    Tcp,
}

/// What a guest's message turned out to be.
#[derive(Debug)]
pub enum Parsed {
    /// Not a query at all (no header, or a response): nothing is sent back.
    Ignore,
    /// A query that is answered with this error reply (FORMERR, NOTIMP) as it stands.
    Reply(Vec<u8>),
    /// A standard query with one question.
    Query(GuestQuery),
}

/// A guest's standard query: its header, its one question and the name it asks about.
#[derive(Debug, Clone)]
pub struct GuestQuery {
    header: Header,
    question: Query,
    name: String,
    edns: bool,
    udp_limit: usize,
}

/// An upstream answer made fit for the guest.
#[derive(Debug)]
pub struct Cleaned {
    /// The reply to send (the guest's ID and question, the filtered records).
    pub reply: Message,
    /// The question name and the CNAME names of the answer's chain (lower case, no dot).
    pub names: Vec<String>,
    /// Addresses the answer kept for those names, each with its TTL in seconds.
    pub addresses: Vec<(Ipv4Addr, u32)>,
    /// A records dropped because they pointed at private or local addresses.
    pub rebinding_dropped: usize,
    /// A name in the chain that must not resolve (the whole answer becomes NXDOMAIN).
    pub refused_name: Option<String>,
}

/// Reads a guest's message; never panics, whatever the bytes.
pub fn parse_query(bytes: &[u8]) -> Parsed {
    let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
        return Parsed::Ignore;
    };
    // Answering responses could start a loop between two resolvers; they get nothing.
    if header.message_type() == MessageType::Response {
        return Parsed::Ignore;
    }
    let error = |code| Parsed::Reply(encode(&Message::error_msg(header.id(), header.op_code(), code)));
    if header.op_code() != OpCode::Query {
        return error(ResponseCode::NotImp);
    }
    if header.query_count() != 1 || !counts_fit(&header, bytes.len()) {
        return error(ResponseCode::FormErr);
    }
    let Ok(message) = Message::from_vec(bytes) else {
        return error(ResponseCode::FormErr);
    };
    let [question] = message.queries() else {
        return error(ResponseCode::FormErr);
    };
    let edns = message.extensions().as_ref().map(Edns::max_payload);
    Parsed::Query(GuestQuery {
        header,
        name: name_string(question.name()),
        question: question.clone(),
        edns: edns.is_some(),
        udp_limit: edns.map_or(CLASSIC_UDP, |size| {
            usize::from(size.clamp(CLASSIC_UDP as u16, EDNS_UDP))
        }),
    })
}

/// Whether `header`'s counts could describe a message of `len` bytes.
fn counts_fit(header: &Header, len: usize) -> bool {
    let records = usize::from(header.answer_count())
        + usize::from(header.name_server_count())
        + usize::from(header.additional_count());
    Header::len() + usize::from(header.query_count()) * MIN_QUESTION + records * MIN_RECORD <= len
}

/// `name` as policy and pins see it: lower case, no trailing dot, odd bytes escaped.
pub fn name_string(name: &Name) -> String {
    let ascii = name.to_lowercase().to_ascii();
    match ascii.strip_suffix('.') {
        Some(bare) => bare.to_string(),
        None => ascii,
    }
}

/// Whether an answer pointing at `ip` could turn a public name against the host or its
/// network (DNS rebinding): any address outside the policy's `public` group (private,
/// shared, loopback, link-local, metadata, "this network", multicast, broadcast).
pub fn is_rebinding(ip: Ipv4Addr) -> bool {
    // The gateway argument only singles out the `host` group; 0.0.0.0 is not public either
    // way, and the real gateway sits in the (private) CGNAT block.
    group_of(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::UNSPECIFIED)) != Group::Public
}

/// Whether records of `kind` never reach the guest: IPv6 addresses (the guest has no IPv6
/// route, and Happy Eyeballs must not wait on them) and SVCB/HTTPS, whose address hints
/// would bypass pins and rebinding checks and whose ECH keys would hide the TLS name.
pub fn is_withheld(kind: RecordType) -> bool {
    matches!(kind, RecordType::AAAA | RecordType::HTTPS | RecordType::SVCB)
}

impl GuestQuery {
    /// The asked name (lower case, no trailing dot).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The asked record type.
    pub fn query_type(&self) -> RecordType {
        self.question.query_type()
    }

    /// Whether the question is of class IN (the only one answered).
    pub fn is_internet(&self) -> bool {
        self.question.query_class() == hickory_proto::rr::DNSClass::IN
    }

    /// A reply carrying `code` and no records.
    pub fn reply(&self, code: ResponseCode) -> Message {
        let mut reply = Message::new();
        reply
            .set_id(self.header.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(self.header.recursion_desired())
            .set_recursion_available(true)
            .set_checking_disabled(self.header.checking_disabled())
            .set_response_code(code)
            .add_query(self.question.clone());
        if self.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_UDP);
            reply.set_edns(edns);
        }
        reply
    }

    /// A local NOERROR reply with one A record for the question.
    pub fn reply_a(&self, ip: Ipv4Addr, ttl: u32) -> Message {
        let mut reply = self.reply(ResponseCode::NoError);
        reply.set_authoritative(true).add_answer(Record::from_rdata(
            self.question.name().clone(),
            ttl,
            RData::A(A(ip)),
        ));
        reply
    }

    /// The question asked upstream under `id`, with room for answers up to [`EDNS_UDP`].
    pub fn upstream_query(&self, id: u16) -> Vec<u8> {
        let mut query = Message::new();
        query
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .set_checking_disabled(self.header.checking_disabled())
            .add_query(self.question.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_UDP);
        query.set_edns(edns);
        encode(&query)
    }

    /// `reply` on the wire, cut to a bare truncated (TC) reply when it does not fit what
    /// `transport` carries, so the guest retries over TCP.
    pub fn finish(&self, reply: &Message, transport: Transport) -> Vec<u8> {
        let limit = match transport {
            Transport::Udp => self.udp_limit,
            Transport::Tcp => usize::from(u16::MAX),
        };
        let bytes = encode(reply);
        if bytes.len() <= limit {
            return bytes;
        }
        encode(&reply.truncate())
    }
}

/// `bytes` as the upstream's answer to `query` sent under `id`; `None` when it is anything
/// else (unparsable, another ID, another question: a stray or spoofed datagram).
pub fn check_reply(bytes: &[u8], id: u16, query: &GuestQuery) -> Option<Message> {
    let header = Header::read(&mut BinDecoder::new(bytes)).ok()?;
    if header.id() != id || header.message_type() != MessageType::Response || !counts_fit(&header, bytes.len()) {
        return None;
    }
    let reply = Message::from_vec(bytes).ok()?;
    let [asked] = reply.queries() else { return None };
    let same = asked.name() == query.question.name()
        && asked.query_type() == query.question.query_type()
        && asked.query_class() == query.question.query_class();
    same.then_some(reply)
}

/// The guest's reply built from `upstream`'s answer: A records off the question's CNAME
/// chain and (with `rebind_protection`) rebinding addresses dropped, AAAA/SVCB/HTTPS and the
/// additional section withheld, the rest kept; `refuses` is asked about every chain name.
pub fn clean_reply(
    query: &GuestQuery,
    upstream: Message,
    rebind_protection: bool,
    refuses: &dyn Fn(&str) -> bool,
) -> Cleaned {
    let chain = cname_chain(query.question.name(), upstream.answers());
    let names: Vec<String> = chain.iter().map(name_string).collect();
    let refused_name = names.iter().find(|n| refuses(n)).cloned();
    let mut reply = query.reply(upstream.response_code());
    reply
        .set_authoritative(upstream.authoritative())
        .set_recursion_available(upstream.recursion_available());
    let mut addresses = Vec::new();
    let mut rebinding_dropped = 0;
    let parts = upstream.into_parts();
    for record in parts.answers {
        match record.data() {
            RData::A(A(ip)) if chain.contains(record.name()) => {
                if rebind_protection && is_rebinding(*ip) {
                    rebinding_dropped += 1;
                    continue;
                }
                addresses.push((*ip, record.ttl()));
            }
            RData::A(_) => continue,
            _ if is_withheld(record.record_type()) => continue,
            _ => {}
        }
        reply.add_answer(record);
    }
    // Authority records are NS and SOA (the SOA gives negative answers their TTL); any
    // address there is glue the guest has no use for.
    for record in parts.name_servers {
        if record.record_type() != RecordType::A && !is_withheld(record.record_type()) {
            reply.add_name_server(record);
        }
    }
    Cleaned {
        reply,
        names,
        addresses,
        rebinding_dropped,
        refused_name,
    }
}

/// `question` and the CNAME targets reachable from it in `answers`.
fn cname_chain(question: &Name, answers: &[Record]) -> Vec<Name> {
    let mut chain = vec![question.clone()];
    while chain.len() < MAX_CHAIN {
        let next = answers.iter().find_map(|record| match record.data() {
            RData::CNAME(target) if chain.contains(record.name()) && !chain.contains(&target.0) => {
                Some(target.0.clone())
            }
            _ => None,
        });
        match next {
            Some(name) => chain.push(name),
            None => break,
        }
    }
    chain
}

/// `message` on the wire; should encoding ever fail, a bare SERVFAIL with its ID, so the
/// guest still hears back rather than waiting out its timeout.
fn encode(message: &Message) -> Vec<u8> {
    message.to_vec().unwrap_or_else(|_| bare_servfail(message.id()))
}

/// A 12-byte SERVFAIL response header (QR, RD, RA set), built without the encoder.
fn bare_servfail(id: u16) -> Vec<u8> {
    let [hi, lo] = id.to_be_bytes();
    vec![hi, lo, 0x81, 0x82, 0, 0, 0, 0, 0, 0, 0, 0]
}
