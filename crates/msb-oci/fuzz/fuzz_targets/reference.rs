#![no_main]
//! Image references: our parser never panics, and on ASCII input it agrees with the
//! library's regular expression (which it replaces for speed) on validity and on every part.

use libfuzzer_sys::fuzz_target;
use msb_oci::normalize_reference;
use oci_client::Reference;

fuzz_target!(|input: &str| {
    let ours = normalize_reference(input).ok().map(|r| r.whole());
    if !input.is_ascii() {
        return;
    }
    let theirs = input
        .parse::<Reference>()
        .ok()
        .filter(|r| !r.repository().bytes().any(|b| b.is_ascii_uppercase()) && !input.trim().is_empty())
        .filter(|_| !input.chars().any(char::is_whitespace))
        .map(|r| r.whole());
    assert_eq!(ours, theirs, "{input:?}");
});
