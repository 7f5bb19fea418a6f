use super::*;
use fake::{Data, Fake, Via};
use hickory_proto::op::{Edns, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod fake;

const GATEWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(100, 96, 0, 1));
const GUEST_ID: u16 = 0x4242;

fn spec(fake: &Fake) -> DnsSpec {
    DnsSpec {
        nameservers: vec![fake.addr.to_string()],
        query_timeout_ms: 2000,
        ..DnsSpec::default()
    }
}

/// An interceptor whose policy denies exactly `evil.example`.
fn interceptor(spec: &DnsSpec) -> (Interceptor, Arc<Pins>) {
    interceptor_with(spec, Arc::new(Pins::default()))
}

fn interceptor_with(spec: &DnsSpec, pins: Arc<Pins>) -> (Interceptor, Arc<Pins>) {
    let check = NameCheck(Box::new(|name| name == "evil.example"));
    let dns = Interceptor::with_name_check(spec, GATEWAY, check, pins.clone()).unwrap();
    (dns, pins)
}

/// A guest's standard query for `name` and `kind`, optionally with EDNS.
fn query_edns(name: &str, kind: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::new();
    msg.set_id(GUEST_ID)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(format!("{name}.")).unwrap(), kind));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().unwrap()
}

fn query(name: &str, kind: RecordType) -> Vec<u8> {
    query_edns(name, kind, None)
}

async fn ask(dns: &Interceptor, name: &str, kind: RecordType) -> Message {
    let reply = dns.answer(&query(name, kind)).await.expect("a reply");
    Message::from_vec(&reply).unwrap()
}

fn addresses(reply: &Message) -> Vec<Ipv4Addr> {
    reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

#[tokio::test]
async fn an_allowed_name_is_forwarded_and_pinned() {
    let fake = Fake::answering(vec![("Example.com", Data::A([93, 184, 216, 34]))]).await;
    let (dns, pins) = interceptor(&spec(&fake));
    let reply = ask(&dns, "Example.COM", RecordType::A).await;
    assert_eq!(reply.id(), GUEST_ID);
    assert_eq!(reply.message_type(), MessageType::Response);
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert_eq!(reply.queries()[0].name().to_ascii(), "Example.COM.");
    assert_eq!(addresses(&reply), [Ipv4Addr::new(93, 184, 216, 34)]);
    assert_eq!(pins.names(ip([93, 184, 216, 34])), ["example.com"]);
    let asked = fake.asked();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].queries()[0].name().to_ascii(), "Example.COM.");
    let counts = dns.counters().snapshot();
    assert_eq!((counts.queries, counts.answered_locally, counts.blocked), (1, 0, 0));
}

#[tokio::test]
async fn a_cname_chain_is_pinned_and_strays_dropped() {
    let fake = Fake::answering(vec![
        ("www.example.com", Data::Cname("edge.cdn.net")),
        ("edge.cdn.net", Data::Cname("e1.akam.net")),
        ("e1.akam.net", Data::A([1, 2, 3, 4])),
        ("bank.example", Data::A([5, 6, 7, 8])),
    ])
    .await;
    let (dns, pins) = interceptor(&spec(&fake));
    let reply = ask(&dns, "www.example.com", RecordType::A).await;
    assert_eq!(reply.answers().len(), 3);
    assert_eq!(addresses(&reply), [Ipv4Addr::new(1, 2, 3, 4)]);
    assert_eq!(
        pins.names(ip([1, 2, 3, 4])),
        ["e1.akam.net", "edge.cdn.net", "www.example.com"]
    );
    assert!(pins.names(ip([5, 6, 7, 8])).is_empty());
}

#[tokio::test]
async fn blocked_names_are_nxdomain_without_asking_upstream() {
    let fake = Fake::answering(vec![("x", Data::A([1, 1, 1, 1]))]).await;
    let spec = DnsSpec {
        blocked_domains: vec!["ads.example.com".into()],
        blocked_suffixes: vec!["tracker.net".into()],
        ..spec(&fake)
    };
    let (dns, _) = interceptor(&spec);
    for name in ["ads.example.com", "ADS.Example.Com", "tracker.net", "a.b.tracker.net"] {
        for kind in [RecordType::A, RecordType::AAAA, RecordType::MX] {
            let reply = ask(&dns, name, kind).await;
            assert_eq!(reply.response_code(), ResponseCode::NXDomain, "{name} {kind}");
            assert!(reply.answers().is_empty());
        }
    }
    assert_eq!(fake.seen(), 0);
    assert_eq!(dns.counters().snapshot().blocked, 12);
    let reply = ask(&dns, "sub.ads.example.com", RecordType::A).await;
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert_eq!(fake.seen(), 1);
}

#[tokio::test]
async fn policy_denied_names_are_nxdomain_without_asking_upstream() {
    let fake = Fake::answering(vec![]).await;
    let (dns, _) = interceptor(&spec(&fake));
    let reply = ask(&dns, "Evil.Example", RecordType::A).await;
    assert_eq!(reply.response_code(), ResponseCode::NXDomain);
    assert_eq!(fake.seen(), 0);
    assert_eq!(dns.counters().snapshot().blocked, 1);
}

#[tokio::test]
async fn a_chain_through_a_denied_name_is_nxdomain_and_unpinned() {
    let fake = Fake::answering(vec![
        ("innocent.example", Data::Cname("evil.example")),
        ("evil.example", Data::A([6, 6, 6, 6])),
    ])
    .await;
    let (dns, pins) = interceptor(&spec(&fake));
    let reply = ask(&dns, "innocent.example", RecordType::A).await;
    assert_eq!(reply.response_code(), ResponseCode::NXDomain);
    assert!(reply.answers().is_empty());
    assert!(pins.names(ip([6, 6, 6, 6])).is_empty());
}

#[tokio::test]
async fn aaaa_svcb_and_https_are_empty_at_once_and_stripped_from_answers() {
    let fake = Fake::answering(vec![
        ("dual.example", Data::Aaaa),
        ("dual.example", Data::A([8, 8, 4, 4])),
    ])
    .await;
    let (dns, _) = interceptor(&spec(&fake));
    for kind in [RecordType::AAAA, RecordType::HTTPS, RecordType::SVCB] {
        let reply = ask(&dns, "dual.example", kind).await;
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert!(reply.answers().is_empty());
    }
    assert_eq!(fake.seen(), 0);
    assert_eq!(dns.counters().snapshot().answered_locally, 3);
    let reply = ask(&dns, "dual.example", RecordType::ANY).await;
    assert_eq!(reply.answers().len(), 1);
    assert_eq!(addresses(&reply), [Ipv4Addr::new(8, 8, 4, 4)]);
}

#[tokio::test]
async fn the_gateway_name_is_answered_locally() {
    let fake = Fake::silent().await;
    let (dns, pins) = interceptor(&spec(&fake));
    let reply = ask(&dns, "Host.Microsandbox.Internal", RecordType::A).await;
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&reply), [Ipv4Addr::new(100, 96, 0, 1)]);
    assert_eq!(reply.answers()[0].ttl(), LOCAL_TTL);
    assert_eq!(pins.names(GATEWAY), [GATEWAY_NAME]);
    let reply = ask(&dns, GATEWAY_NAME, RecordType::AAAA).await;
    assert_eq!(
        (reply.response_code(), reply.answers().len()),
        (ResponseCode::NoError, 0)
    );
    let reply = ask(&dns, "other.microsandbox.internal", RecordType::A).await;
    assert_eq!(reply.response_code(), ResponseCode::NXDomain);
    assert_eq!(fake.seen(), 0);
    assert_eq!(dns.counters().snapshot().answered_locally, 3);
}

const REBINDING: [[u8; 4]; 8] = [
    [10, 0, 0, 1],
    [172, 16, 5, 4],
    [192, 168, 1, 1],
    [100, 64, 0, 1],
    [127, 0, 0, 1],
    [169, 254, 169, 254],
    [0, 0, 0, 0],
    [224, 0, 0, 251],
];

async fn rebinding_fake() -> Fake {
    let mut records: Vec<_> = REBINDING.iter().map(|a| ("rebind.example", Data::A(*a))).collect();
    records.push(("rebind.example", Data::A([255, 255, 255, 255])));
    records.push(("rebind.example", Data::A([93, 184, 216, 34])));
    Fake::answering(records).await
}

#[tokio::test]
async fn rebinding_addresses_are_stripped_and_the_rest_kept() {
    let fake = rebinding_fake().await;
    let (dns, pins) = interceptor(&spec(&fake));
    let reply = ask(&dns, "rebind.example", RecordType::A).await;
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&reply), [Ipv4Addr::new(93, 184, 216, 34)]);
    assert_eq!(dns.counters().snapshot().rebinding_dropped, 9);
    assert!(pins.names(ip([10, 0, 0, 1])).is_empty());
    assert_eq!(pins.names(ip([93, 184, 216, 34])), ["rebind.example"]);
}

#[tokio::test]
async fn without_rebinding_protection_every_address_is_kept() {
    let fake = rebinding_fake().await;
    let spec = DnsSpec {
        rebind_protection: false,
        ..spec(&fake)
    };
    let (dns, pins) = interceptor(&spec);
    let reply = ask(&dns, "rebind.example", RecordType::A).await;
    assert_eq!(addresses(&reply).len(), 10);
    assert_eq!(dns.counters().snapshot().rebinding_dropped, 0);
    assert_eq!(pins.names(ip([10, 0, 0, 1])), ["rebind.example"]);
}

#[tokio::test]
async fn a_ttl_zero_answer_stays_pinned_for_a_minute_then_goes() {
    let fake = Fake::start(Arc::new(|q, _| {
        vec![fake::reply(q, &[("zero.example", Data::A([9, 9, 9, 9]))], 0)]
    }))
    .await;
    let start = std::time::Instant::now();
    let secs = Arc::new(AtomicU64::new(0));
    let read = secs.clone();
    let pins = Arc::new(Pins::with_clock(Arc::new(move || {
        start + Duration::from_secs(read.load(Ordering::SeqCst))
    })));
    let (dns, pins) = interceptor_with(&spec(&fake), pins);
    let reply = ask(&dns, "zero.example", RecordType::A).await;
    assert_eq!(reply.answers()[0].ttl(), 0);
    secs.store(59, Ordering::SeqCst);
    assert_eq!(pins.names(ip([9, 9, 9, 9])), ["zero.example"]);
    secs.store(61, Ordering::SeqCst);
    assert!(pins.names(ip([9, 9, 9, 9])).is_empty());
}

#[tokio::test]
async fn a_silent_upstream_means_servfail_after_the_timeout() {
    let fake = Fake::silent().await;
    let spec = DnsSpec {
        query_timeout_ms: 200,
        ..spec(&fake)
    };
    let (dns, _) = interceptor(&spec);
    let reply = ask(&dns, "slow.example", RecordType::A).await;
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    assert_eq!(reply.id(), GUEST_ID);
    assert_eq!(fake.seen(), 1);
    assert_eq!(dns.counters().snapshot().upstream_failures, 1);
}

#[tokio::test]
async fn the_next_server_is_tried_when_one_is_silent_or_failing() {
    let silent = Fake::silent().await;
    let failing = Fake::start(Arc::new(|q, _| {
        let mut r = fake::reply(q, &[], 0);
        r.set_response_code(ResponseCode::Refused);
        vec![r]
    }))
    .await;
    let good = Fake::answering(vec![("n.example", Data::A([4, 4, 4, 4]))]).await;
    let spec = DnsSpec {
        nameservers: vec![silent.addr.to_string(), failing.addr.to_string(), good.addr.to_string()],
        query_timeout_ms: 200,
        ..DnsSpec::default()
    };
    let (dns, _) = interceptor(&spec);
    let reply = ask(&dns, "n.example", RecordType::A).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(4, 4, 4, 4)]);
    assert_eq!((silent.seen(), failing.seen(), good.seen()), (1, 1, 1));
}

#[tokio::test]
async fn a_truncated_udp_answer_is_asked_again_over_tcp() {
    let fake = Fake::start(Arc::new(|q, via| match via {
        Via::Udp => {
            let mut r = fake::reply(q, &[], 300);
            r.set_truncated(true);
            vec![r]
        }
        Via::Tcp => vec![fake::reply(q, &[("big.example", Data::A([3, 3, 3, 3]))], 300)],
    }))
    .await;
    let (dns, pins) = interceptor(&spec(&fake));
    let reply = ask(&dns, "big.example", RecordType::A).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(3, 3, 3, 3)]);
    assert!(!reply.truncated());
    assert_eq!(fake.seen(), 2);
    assert_eq!(pins.names(ip([3, 3, 3, 3])), ["big.example"]);
}

#[tokio::test]
async fn spoofed_replies_with_the_wrong_id_or_question_are_ignored() {
    let fake = Fake::start(Arc::new(|q, _| {
        let mut wrong_id = fake::reply(q, &[("s.example", Data::A([6, 6, 6, 6]))], 300);
        wrong_id.set_id(q.id().wrapping_add(1));
        let mut wrong_question = fake::reply(q, &[("t.example", Data::A([7, 7, 7, 7]))], 300);
        let other = Query::query(Name::from_ascii("t.example.").unwrap(), RecordType::A);
        wrong_question.take_queries();
        wrong_question.add_query(other);
        let real = fake::reply(q, &[("s.example", Data::A([1, 2, 3, 4]))], 300);
        vec![wrong_id, wrong_question, real]
    }))
    .await;
    let (dns, pins) = interceptor(&spec(&fake));
    let reply = ask(&dns, "s.example", RecordType::A).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(1, 2, 3, 4)]);
    assert!(pins.names(ip([6, 6, 6, 6])).is_empty());
    assert!(pins.names(ip([7, 7, 7, 7])).is_empty());
}

#[tokio::test]
async fn a_large_answer_is_truncated_over_udp_and_whole_over_tcp() {
    let records: Vec<_> = (0..60u8).map(|n| ("many.example", Data::A([93, 1, 1, n]))).collect();
    let fake = Fake::answering(records).await;
    let (dns, _) = interceptor(&spec(&fake));
    let bytes = dns.answer(&query("many.example", RecordType::A)).await.unwrap();
    assert!(bytes.len() <= 512);
    let reply = Message::from_vec(&bytes).unwrap();
    assert!(reply.truncated());
    assert!(reply.answers().is_empty());
    let bytes = dns
        .answer(&query_edns("many.example", RecordType::A, Some(4096)))
        .await
        .unwrap();
    assert!(bytes.len() <= usize::from(wire::EDNS_UDP));
    assert_eq!(Message::from_vec(&bytes).unwrap().answers().len(), 60);
    let bytes = dns.answer_tcp(&query("many.example", RecordType::A)).await.unwrap();
    assert_eq!(Message::from_vec(&bytes).unwrap().answers().len(), 60);
}

#[tokio::test]
async fn malformed_queries_get_formerr_or_nothing_and_never_panic() {
    let fake = Fake::start(Arc::new(|q, _| {
        let mut r = fake::reply(q, &[], 0);
        r.set_response_code(ResponseCode::NXDomain);
        vec![r]
    }))
    .await;
    let spec = DnsSpec {
        query_timeout_ms: 200,
        ..spec(&fake)
    };
    let (dns, _) = interceptor(&spec);
    assert_eq!(dns.answer(&[]).await, None);
    assert_eq!(dns.answer(&[1, 2, 3, 4, 5]).await, None);

    // A header promising a question that is not there.
    let header = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let reply = Message::from_vec(&dns.answer(&header).await.unwrap()).unwrap();
    assert_eq!((reply.id(), reply.response_code()), (0xabcd, ResponseCode::FormErr));
    // Two questions, a response, an UPDATE, a CHAOS-class question.
    let mut two = Message::from_vec(&query("a.example", RecordType::A)).unwrap();
    two.add_query(Query::query(Name::from_ascii("b.example.").unwrap(), RecordType::A));
    let reply = Message::from_vec(&dns.answer(&two.to_vec().unwrap()).await.unwrap()).unwrap();
    assert_eq!(reply.response_code(), ResponseCode::FormErr);
    two.set_message_type(MessageType::Response);
    assert_eq!(dns.answer(&two.to_vec().unwrap()).await, None);
    let mut update = header;
    update[2] = 5 << 3;
    let reply = Message::from_vec(&dns.answer(&update).await.unwrap()).unwrap();
    assert_eq!(reply.response_code(), ResponseCode::NotImp);
    let mut chaos = Message::from_vec(&query("version.bind", RecordType::TXT)).unwrap();
    chaos.queries_mut()[0].set_query_class(DNSClass::CH);
    let reply = Message::from_vec(&dns.answer(&chaos.to_vec().unwrap()).await.unwrap()).unwrap();
    assert_eq!(reply.response_code(), ResponseCode::NotImp);
    assert_eq!(fake.seen(), 0);

    // Pseudo-random bytes, and a real query with each byte flipped in turn.
    let mut x = 0x9e37_79b9_u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for len in 0..300 {
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = dns.answer(&junk).await;
    }
    let good = query("flip.example", RecordType::A);
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= (next() as u8) | 1;
        let _ = dns.answer(&bad).await;
    }
}

#[tokio::test]
async fn queries_past_the_outstanding_bound_get_servfail_at_once() {
    let fake = Fake::silent().await;
    let spec = DnsSpec {
        query_timeout_ms: 3000,
        ..spec(&fake)
    };
    let dns = Arc::new(interceptor(&spec).0);
    let tasks: Vec<_> = (0..MAX_OUTSTANDING + 20)
        .map(|n| {
            let dns = dns.clone();
            tokio::spawn(async move { dns.answer(&query(&format!("n{n}.example"), RecordType::A)).await })
        })
        .collect();
    for task in tasks {
        let reply = Message::from_vec(&task.await.unwrap().unwrap()).unwrap();
        assert_eq!(reply.response_code(), ResponseCode::ServFail);
    }
    let counts = dns.counters().snapshot();
    assert_eq!(counts.shed, 20);
    assert_eq!(counts.upstream_failures, MAX_OUTSTANDING as u64);
}

#[tokio::test]
async fn the_real_policy_denies_names_its_deny_rules_cover() {
    use msb_types::{Action, Destination, Direction, NetPolicy, PortRange, Rule};
    let deny = |destination, ports| Rule {
        action: Action::Deny,
        direction: Direction::Egress,
        destination,
        protocols: vec![],
        ports,
    };
    let policy = NetPolicy {
        default_egress: Action::Allow,
        default_ingress: Action::Allow,
        rules: vec![
            deny(Destination::Domain("evil.example".into()), vec![]),
            // Only some ports: DNS cannot tell, so the name still resolves.
            deny(
                Destination::DomainSuffix("ports.example".into()),
                vec![PortRange { first: 25, last: 25 }],
            ),
        ],
    };
    let fake = Fake::answering(vec![("www.ports.example", Data::A([1, 1, 1, 1]))]).await;
    let policy = Arc::new(Policy::new(policy, GATEWAY));
    let dns = Interceptor::new(&spec(&fake), GATEWAY, policy, Arc::new(Pins::default())).unwrap();
    for name in ["evil.example", "EVIL.Example"] {
        assert_eq!(
            ask(&dns, name, RecordType::A).await.response_code(),
            ResponseCode::NXDomain
        );
    }
    assert_eq!(fake.seen(), 0);
    let reply = ask(&dns, "www.ports.example", RecordType::A).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(1, 1, 1, 1)]);
    assert_eq!(dns.counters().snapshot().blocked, 2);
}
