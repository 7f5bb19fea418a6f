#![no_main]
//! Arbitrary bytes as an EROFS image: reading must return Ok or Err, never panic,
//! allocate without bound, or loop.

use libfuzzer_sys::fuzz_target;

mod walk;

fuzz_target!(|data: &[u8]| {
    let _ = walk::walk_image(data.to_vec());
});
