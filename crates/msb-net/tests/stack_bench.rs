//! Frame-harness throughput, by hand: `cargo test --release -p msb-net --test stack_bench --
//! --ignored --nocapture` (`cargo xtask bench net` calls the same functions). Prints figures,
//! asserts nothing about them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msb_net::stack::harness::{download, upload};

const BYTES: u64 = 1 << 30;

#[test]
#[ignore = "a benchmark: run in release mode, by hand"]
fn frame_harness_throughput() {
    let up = upload(BYTES).unwrap();
    println!(
        "guest -> host: {} MiB in {:.2?} = {:.2} Gbit/s",
        up.bytes >> 20,
        up.elapsed,
        up.gbit_per_s()
    );
    let down = download(BYTES).unwrap();
    println!(
        "host -> guest: {} MiB in {:.2?} = {:.2} Gbit/s",
        down.bytes >> 20,
        down.elapsed,
        down.gbit_per_s()
    );
}
