//! The frame-harness transfers `cargo xtask bench net` times (1 GiB each way, release build):
//! run small here so they keep working. Nothing is asserted about speed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_net::stack::harness::{download, upload};
use std::time::Duration;

const BYTES: u64 = 16 << 20;

#[test]
fn the_benchmarks_transfers_complete_both_ways() {
    assert_eq!(upload(BYTES).unwrap().bytes, BYTES);
    assert_eq!(download(BYTES).unwrap().bytes, BYTES);
}

#[test]
fn the_https_benchmark_runs_through_interception_and_pass_through() {
    let figures = msb_net::stack::harness::https(20, 2 << 20, 5).unwrap();
    eprintln!("{figures:#?}");
    assert_eq!(figures.intercepted.echo.bytes, 2 << 20);
    assert!(figures.handshake_fresh > Duration::ZERO && figures.handshake_cached > Duration::ZERO);
}
