#![no_main]
//! Arbitrary bytes as a guest's DNS query and as an upstream's answer, through the pure
//! functions the interceptor uses (no sockets): nothing panics, replies fit their transport,
//! and whatever an answer says, no rebinding address is kept and pinned names are clean.

use libfuzzer_sys::fuzz_target;
use msb_net::dns::wire::{self, GuestQuery, Parsed, Transport};
use std::net::Ipv4Addr;

/// The question of the answers built below: `www.example.com` A IN, ID 0x1234.
const ASKED: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
    \x03www\x07example\x03com\x00\x00\x01\x00\x01";

/// Checks the guest side: a query's replies fit UDP, its name is clean.
fn guest(bytes: &[u8]) {
    match wire::parse_query(bytes) {
        Parsed::Ignore => {}
        Parsed::Reply(reply) => assert!(reply.len() >= 12),
        Parsed::Query(query) => {
            check_name(query.name());
            assert!(!query.upstream_query(7).is_empty());
            let reply = query.reply_a(Ipv4Addr::new(100, 96, 0, 1), 60);
            assert!(query.finish(&reply, Transport::Udp).len() <= usize::from(wire::EDNS_UDP));
        }
    }
}

/// Checks the answer side: `bytes` as the upstream's answer to `asked` under `id`.
fn answer(asked: &GuestQuery, id: u16, bytes: &[u8]) {
    let Some(upstream) = wire::check_reply(bytes, id, asked) else {
        return;
    };
    let cleaned = wire::clean_reply(asked, upstream, true, &|n| n.ends_with("evil.example"));
    assert!(!cleaned.names.is_empty());
    cleaned.names.iter().for_each(|n| check_name(n));
    for (ip, _) in &cleaned.addresses {
        assert!(!wire::is_rebinding(*ip), "kept {ip}");
    }
    for record in cleaned.reply.answers() {
        assert!(!wire::is_withheld(record.record_type()));
    }
    assert!(cleaned.reply.additionals().is_empty());
    assert!(asked.finish(&cleaned.reply, Transport::Udp).len() <= usize::from(wire::EDNS_UDP));
    let _ = asked.finish(&cleaned.reply, Transport::Tcp);
}

/// A name as pins and policy see it: lower case, no trailing dot.
fn check_name(name: &str) {
    assert!(!name.ends_with('.') || name.ends_with("\\."), "trailing dot: {name:?}");
    assert_eq!(name, name.to_ascii_lowercase());
}

fuzz_target!(|data: &[u8]| {
    guest(data);
    // The bytes as the question section of a one-question query.
    let mut one = ASKED[..12].to_vec();
    one.extend_from_slice(data);
    guest(&one);

    // The bytes as a whole answer, asked with the question they carry themselves.
    if data.len() >= 12 {
        let mut as_query = data.to_vec();
        as_query[2] &= 0x07; // a standard query: QR and opcode cleared
        if let Parsed::Query(asked) = wire::parse_query(&as_query) {
            let mut as_reply = data.to_vec();
            as_reply[2] |= 0x80;
            answer(&asked, u16::from_be_bytes([data[0], data[1]]), &as_reply);
        }
    }
    // The bytes as the records after a fixed question, the first three as section counts.
    let Parsed::Query(asked) = wire::parse_query(ASKED) else {
        panic!("the fixed query parses")
    };
    if let [an, ns, ar, records @ ..] = data {
        let mut reply = ASKED.to_vec();
        reply[2] = 0x81;
        reply[3] = 0x80;
        reply[7] = *an;
        reply[9] = *ns;
        reply[11] = *ar;
        reply.extend_from_slice(records);
        answer(&asked, 0x1234, &reply);
    }
});
