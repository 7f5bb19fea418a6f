//! Converts a tar file (or stdin with `-`) to an EROFS image and prints throughput.
//! Usage: `cargo run --release -p msb-erofs --example tar2erofs -- IN.tar OUT.erofs`

use std::io::Read;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        return Err("usage: tar2erofs IN.tar|- OUT.erofs".into());
    };
    let reader: Box<dyn Read> = if input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(input)?)
    };
    let out = std::fs::File::create(output)?;
    let t = Instant::now();
    let stats = msb_erofs::write_from_tar(reader, out, &Default::default())?;
    let secs = t.elapsed().as_secs_f64();
    println!("{stats:#?}");
    println!(
        "{:.1} MB in, {:.1} MB out, {:.2} s, {:.1} MB/s (tar bytes / wall time)",
        stats.bytes_in as f64 / 1e6,
        stats.bytes_out as f64 / 1e6,
        secs,
        stats.bytes_in as f64 / 1e6 / secs
    );
    Ok(())
}
