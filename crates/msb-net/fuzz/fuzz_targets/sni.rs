#![no_main]
//! Arbitrary bytes as a flow's first bytes: sniffing gives a verdict and never panics, a
//! name it gives is a valid lower-case hostname, and a shorter prefix of bytes that named a
//! host either needs more or names the same host.

use libfuzzer_sys::fuzz_target;
use msb_net::sni::{sniff, Sniffed};

/// Checks one verdict and, for a name, that prefixes of `bytes` agree with it.
fn check(bytes: &[u8]) {
    let verdict = sniff(bytes);
    let Sniffed::Name(name) = &verdict else { return };
    assert!(!name.is_empty() && name.len() <= 253, "bad length: {name:?}");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)),
        "bad name: {name:?}"
    );
    for len in [bytes.len() / 2, bytes.len().saturating_sub(1)] {
        let prefix = sniff(&bytes[..len]);
        assert!(
            prefix == Sniffed::NeedMore || prefix == verdict,
            "prefix {len} said {prefix:?}, whole {verdict:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The same bytes inside a TLS record and handshake header, and as an HTTP Host value, so
    // random input gets past the first checks into the parsers' insides.
    let len = data.len().min(0x3fff);
    let mut tls = vec![22, 3, 1];
    tls.extend_from_slice(&(len as u16 + 4).to_be_bytes());
    tls.extend_from_slice(&[1, 0]);
    tls.extend_from_slice(&(len as u16).to_be_bytes());
    tls.extend_from_slice(&data[..len]);
    check(&tls);
    let mut http = b"GET / HTTP/1.1\r\nHost: ".to_vec();
    http.extend_from_slice(data);
    http.extend_from_slice(b"\r\n\r\n");
    check(&http);
});
