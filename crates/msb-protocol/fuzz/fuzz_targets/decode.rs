//! Hostile bytes into the frame decoder: it must return frames or an error, never panic,
//! and every frame it accepts must re-encode to bytes that decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msb_protocol::codec::{decode_all, encode_frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(frames) = decode_all(data) {
        for frame in frames {
            let bytes = encode_frame(frame.clone()).expect("a decoded frame re-encodes");
            assert_eq!(decode_all(&bytes).expect("re-decodes"), vec![frame]);
        }
    }
});
