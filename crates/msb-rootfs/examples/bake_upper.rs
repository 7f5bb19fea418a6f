//! Builds an upper image with N patched text files over the given EROFS layers and prints
//! the time it took and the bytes written, for `cargo xtask bench rootfs`.
//! Usage: `bake_upper OUT.ext4 FILES LAYER.erofs...` (bottom layer first).

use msb_types::Patch;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, files, layers @ ..] = args.as_slice() else {
        return Err("usage: bake_upper OUT.ext4 FILES LAYER.erofs...".into());
    };
    let files: usize = files.parse()?;
    let layers: Vec<PathBuf> = layers.iter().map(PathBuf::from).collect();
    let patches: Vec<Patch> = (0..files)
        .map(|i| Patch::text(format!("/bench/d{}/f{i}.txt", i / 100), bench_text(i)))
        .collect();
    let started = Instant::now();
    let stats = msb_rootfs::write_upper_image(&patches, &layers, out.as_ref(), 4 << 30, 0)?;
    println!("{} {}", started.elapsed().as_secs_f64(), stats.bytes_written);
    Ok(())
}

/// The contents of file `i`: a couple of hundred bytes, like a small config file.
pub fn bench_text(i: usize) -> String {
    format!("# bench file {i}\n{}\n", "key = value\n".repeat(16))
}
