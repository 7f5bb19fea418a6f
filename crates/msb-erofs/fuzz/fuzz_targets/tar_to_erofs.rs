#![no_main]
//! Arbitrary bytes as a tar stream: the writer must return Ok or Err, and any image
//! it writes must read back cleanly in full.

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

mod walk;

fuzz_target!(|data: &[u8]| {
    let opts = msb_erofs::WriteOptions::default();
    if let Ok((out, _)) = msb_erofs::write_from_tar_into(data, Cursor::new(Vec::new()), &opts) {
        if let Err(e) = walk::walk_image(out.into_inner()) {
            panic!("image written by us does not read back: {e}");
        }
    }
});
