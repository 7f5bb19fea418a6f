use super::*;

/// A ClientHello `openssl s_client -servername Example.COM` sent.
const OPENSSL_HELLO: &[u8] = include_bytes!("../../testdata/client_hello_openssl.bin");
/// A ClientHello curl sent for `https://www.example.org/`.
const CURL_HELLO: &[u8] = include_bytes!("../../testdata/client_hello_curl.bin");

fn name(n: &str) -> Sniffed {
    Sniffed::Name(n.to_string())
}

/// A minimal ClientHello record naming `host` (as the SNI entries `names`).
fn hello_with(names: &[(u8, &[u8])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (kind, n) in names {
        list.push(*kind);
        list.extend_from_slice(&(n.len() as u16).to_be_bytes());
        list.extend_from_slice(n);
    }
    let mut sni = (list.len() as u16).to_be_bytes().to_vec();
    sni.extend_from_slice(&list);
    let mut exts = Vec::new();
    // An unrelated extension first (supported_versions), so the walk has to skip one.
    exts.extend_from_slice(&[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
    exts.extend_from_slice(&[0x00, 0x00]);
    exts.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![CLIENT_HELLO, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    records(&hs, hs.len())
}

/// `handshake` in TLS records of at most `chunk` bytes each.
fn records(handshake: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in handshake.chunks(chunk) {
        out.extend_from_slice(&[TLS_HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn real_client_hellos_name_their_server() {
    assert_eq!(sniff(OPENSSL_HELLO), name("example.com"));
    assert_eq!(sniff(CURL_HELLO), name("www.example.org"));
}

#[test]
fn every_truncation_needs_more_and_never_panics() {
    for hello in [OPENSSL_HELLO, CURL_HELLO, &hello_with(&[(0, b"a.example")])] {
        for len in 0..hello.len() {
            assert_eq!(sniff(&hello[..len]), Sniffed::NeedMore, "at {len} of {}", hello.len());
        }
    }
}

#[test]
fn a_hello_split_over_records_is_reassembled() {
    let one = hello_with(&[(0, b"split.example")]);
    let handshake = &one[5..];
    for chunk in [1, 7, 40] {
        let many = records(handshake, chunk);
        assert_eq!(sniff(&many), name("split.example"), "chunk {chunk}");
        for len in 0..many.len() {
            assert_eq!(sniff(&many[..len]), Sniffed::NeedMore, "chunk {chunk} at {len}");
        }
    }
}

#[test]
fn the_first_host_name_entry_counts_and_bad_names_do_not() {
    assert_eq!(
        sniff(&hello_with(&[(1, b"other"), (0, b"Mixed.Case.")])),
        name("mixed.case")
    );
    assert_eq!(sniff(&hello_with(&[(0, b"bad name")])), Sniffed::NoName);
    assert_eq!(sniff(&hello_with(&[(0, b"a..b")])), Sniffed::NoName);
    assert_eq!(sniff(&hello_with(&[(0, b"")])), Sniffed::NoName);
    assert_eq!(sniff(&hello_with(&[(0, &[b'a'; 254])])), Sniffed::NoName);
    assert_eq!(sniff(&hello_with(&[])), Sniffed::NoName);
}

#[test]
fn hellos_past_the_cap_or_not_tls_say_no_name() {
    // A record announcing a ClientHello bigger than the cap: no point waiting for it.
    let mut big = vec![TLS_HANDSHAKE, 3, 1, 0x40, 0x00, CLIENT_HELLO, 0x01, 0x00, 0x00];
    assert_eq!(sniff(&big), Sniffed::NoName);
    big[5] = 2; // a ServerHello is no ClientHello
    assert_eq!(sniff(&big), Sniffed::NoName);
    assert_eq!(sniff(&[TLS_HANDSHAKE, 4]), Sniffed::NoName);
    assert_eq!(sniff(&[TLS_HANDSHAKE, 3, 1, 0, 0]), Sniffed::NoName);
    // Many tiny records whose total passes the cap.
    let mut slow = Vec::new();
    let header = [CLIENT_HELLO, 0, 0x30, 0];
    for b in header.iter().chain([0u8; 5000].iter()) {
        slow.extend_from_slice(&[TLS_HANDSHAKE, 3, 1, 0, 1, *b]);
    }
    assert_eq!(sniff(&slow), Sniffed::NoName);
}

#[test]
fn http_host_header_names_the_flow() {
    let req = b"GET /x HTTP/1.1\r\nUser-Agent: t\r\nhOsT:  Api.Example.com:8080 \r\nAccept: */*\r\n\r\nbody";
    assert_eq!(sniff(req), name("api.example.com"));
    assert_eq!(sniff(b"POST / HTTP/1.0\nHost: a.b\n\n"), name("a.b"));
    assert_eq!(sniff(b"CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n"), name("a.b"));
    assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n"), name("10.0.0.1"));
}

#[test]
fn ipv6_literals_lose_brackets_and_are_not_names() {
    assert_eq!(host_value(b"[::1]:8080"), None);
    assert_eq!(host_value(b"[host.example]:8080").as_deref(), Some("host.example"));
    assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), Sniffed::NoName);
}

#[test]
fn http_without_one_good_host_says_no_name() {
    assert_eq!(sniff(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), Sniffed::NoName);
    assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), Sniffed::NoName);
    assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: a\r\n  .b\r\n\r\n"), Sniffed::NoName);
    assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n"), Sniffed::NoName);
    assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), Sniffed::NoName);
    assert_eq!(sniff(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), Sniffed::NoName);
    assert_eq!(sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Sniffed::NoName);
}

#[test]
fn incomplete_http_needs_more_up_to_the_cap() {
    let req = b"DELETE /x HTTP/1.1\r\nHost: a.example\r\n\r\n";
    for len in 0..req.len() - 1 {
        assert_eq!(sniff(&req[..len]), Sniffed::NeedMore, "at {len}");
    }
    let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
    long.resize(MAX_SNIFF_BYTES + 10, b'a');
    assert_eq!(sniff(&long), Sniffed::NoName);
}

#[test]
fn garbage_says_no_name() {
    assert_eq!(sniff(b"SSH-2.0-OpenSSH_9.6\r\n"), Sniffed::NoName);
    assert_eq!(sniff(b"get / HTTP/1.1\r\nHost: a\r\n\r\n"), Sniffed::NoName);
    assert_eq!(sniff(&[0x80, 0x01, 0x02]), Sniffed::NoName);
    // Pseudo-random bytes of every length: a verdict, never a panic.
    let mut x = 0x2545_f491_u32;
    let data: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    for len in 0..data.len() {
        let _ = sniff(&data[..len]);
        let mut tls = vec![TLS_HANDSHAKE, 3, 3];
        tls.extend_from_slice(&data[..len]);
        let _ = sniff(&tls);
    }
}
