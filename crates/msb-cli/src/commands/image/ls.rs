//! `msb image ls`.

use crate::progress::human_bytes;
use microsandbox::{image, Paths};

/// Arguments of `msb image ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    format: crate::output::ListFormat,
}

/// Prints the image table.
pub fn run(paths: &Paths, args: LsArgs) -> anyhow::Result<i32> {
    let images = image::list(paths)?;
    if args.format.quiet {
        for (r, _) in &images {
            println!("{}", r.reference);
        }
        return Ok(0);
    }
    if args.format.json() {
        let rows: Vec<_> = images
            .iter()
            .map(|(r, size)| {
                serde_json::json!({
                    "reference": r.reference, "manifest_digest": r.manifest_digest,
                    "platform": r.platform.to_string(), "layers": r.layers.len(),
                    "size_bytes": size, "created_at": crate::output::rfc3339(r.created_at),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if images.is_empty() {
        eprintln!("no images; pull one with `msb pull IMAGE`");
        return Ok(0);
    }
    println!(
        "{:<50} {:<19} {:<12} {:>6} {:>10}",
        "REFERENCE", "DIGEST", "PLATFORM", "LAYERS", "SIZE"
    );
    for (r, size) in &images {
        let digest: String = r.manifest_digest.chars().take(19).collect();
        let platform = r.platform.to_string();
        println!(
            "{:<50} {digest:<19} {platform:<12} {:>6} {:>10}",
            r.reference,
            r.layers.len(),
            human_bytes(*size)
        );
    }
    let total: u64 = images.iter().map(|(_, s)| s).sum();
    println!(
        "{} image(s), {} of layers (shared layers counted once per image)",
        images.len(),
        human_bytes(total)
    );
    Ok(0)
}
