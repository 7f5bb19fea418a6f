//! Prints how long `Store::open` takes: first open (creates and migrates) and re-opens.
//!
//! `cargo run --release -p msb-store --example open_timing`

use msb_store::Store;
use msb_types::Paths;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("msb-store-open-timing-{}", std::process::id()));
    let paths = Paths::new(&dir);
    let start = Instant::now();
    drop(Store::open(&paths)?);
    println!("first open (create + migrate): {:?}", start.elapsed());
    let runs = 200;
    let mut times: Vec<_> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let store = Store::open(&paths);
            let took = start.elapsed();
            store.map(|_| took)
        })
        .collect::<Result<_, _>>()?;
    times.sort();
    println!(
        "re-open x{runs}: min {:?}, median {:?}, max {:?}",
        times[0],
        times[runs / 2],
        times[runs - 1]
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
