#![no_main]
//! Arbitrary guest bytes cut into arbitrary chunks: the stream scanner that guards plaintext
//! flows finds a placeholder exactly when the whole stream holds one, however it is cut, and
//! replacing never panics and leaves no replaced placeholder behind.

use libfuzzer_sys::fuzz_target;
use msb_net::intercept::{Needles, StreamScan};

const PLACEHOLDERS: [&str; 3] = [
    "msb_sec_0123456789abcdef0123456789abcdef",
    "msb_sec_0123456789abcdef",
    "msb_sec_ffffffffffffffffffffffffffffffff",
];

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else { return };
    let needles = Needles::new(PLACEHOLDERS).expect("non-empty needles");
    // Inputs that embed a placeholder now and then, so hits are exercised too.
    let mut stream = rest.to_vec();
    if cuts & 1 == 1 {
        let at = usize::from(cuts) % (stream.len() + 1);
        let which = PLACEHOLDERS[usize::from(cuts >> 1) % PLACEHOLDERS.len()];
        stream.splice(at..at, which.bytes());
    }
    let whole = needles.find(&stream).is_some();
    let step = usize::from(cuts >> 2).max(1);
    let mut scan = StreamScan::default();
    let streamed = stream.chunks(step).fold(false, |hit, chunk| scan.feed(&needles, chunk).is_some() || hit);
    assert_eq!(whole, streamed, "chunks of {step}");
    let replaced = needles.replace(&stream, |_| Some(&b"[value]"[..]));
    if let Some(out) = replaced {
        assert!(needles.find(&out).is_none(), "a placeholder survived replacement");
    } else {
        assert!(!whole);
    }
});
