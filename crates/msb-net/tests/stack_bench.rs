//! The frame-harness transfers `cargo xtask bench net` times (1 GiB each way, release build):
//! run small here so they keep working. Nothing is asserted about speed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_net::stack::harness::{download, upload};

const BYTES: u64 = 16 << 20;

#[test]
fn the_benchmarks_transfers_complete_both_ways() {
    assert_eq!(upload(BYTES).unwrap().bytes, BYTES);
    assert_eq!(download(BYTES).unwrap().bytes, BYTES);
}
