//! Printing and JSON for `cargo xtask bench pull`.

use super::pull::{Figures, GOAL, ISSUE_ORIGINAL, MB};
use super::stats::Summary;
use serde_json::{json, Value};
use std::time::Duration;

/// Summaries and rates the text and the JSON share.
struct Derived {
    ours: Summary,
    skopeo: Summary,
    skopeo_umoci: Summary,
    umoci_part: Summary,
    compressed: u64,
    tar: u64,
    erofs: u64,
    /// Per layer (image order): start, end, duration.
    layers: Vec<Option<(Summary, Summary, Summary)>>,
    conv_ours: Summary,
    conv_mkfs: Summary,
}

impl Derived {
    fn of(f: &Figures) -> Derived {
        let layers = f
            .layers
            .iter()
            .map(|l| {
                let mine: Vec<(Duration, Duration)> = f
                    .spans
                    .iter()
                    .filter_map(|run| run.iter().find(|s| s.diff_id == l.diff_id)?.times)
                    .collect();
                (!mine.is_empty()).then(|| {
                    let pick =
                        |g: fn(&(Duration, Duration)) -> Duration| Summary::of(&mine.iter().map(g).collect::<Vec<_>>());
                    (pick(|t| t.0), pick(|t| t.1), pick(|t| t.1.saturating_sub(t.0)))
                })
            })
            .collect();
        let erofs = f.spans.first().map_or(0, |run| run.iter().map(|s| s.erofs).sum());
        Derived {
            ours: Summary::of(&f.ours),
            skopeo: Summary::of(&f.skopeo),
            skopeo_umoci: Summary::of(&f.skopeo_umoci),
            umoci_part: Summary::of(&f.umoci_part),
            compressed: f.layers.iter().map(|l| l.compressed).sum(),
            tar: f.layers.iter().map(|l| l.tar).sum(),
            erofs,
            layers,
            conv_ours: Summary::of(&f.conversion.ours),
            conv_mkfs: Summary::of(&f.conversion.mkfs),
        }
    }
}

/// `bytes / secs` in MB/s (0 when there is no time).
fn rate(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / MB / secs
    } else {
        0.0
    }
}

fn ratio(a: &Summary, b: &Summary) -> f64 {
    if b.median > 0.0 {
        a.median / b.median
    } else {
        0.0
    }
}

/// `51.1 MB`, `4.1 kB`, `313 B` (decimal units).
fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 100_000 => format!("{:.1} MB", b as f64 / MB),
        b if b >= 1000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.rsplit(':').next().unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Prints the figures for people.
pub(super) fn print(f: &Figures) {
    let d = Derived::of(f);
    let mb = |b: u64| b as f64 / MB;
    println!("== cargo xtask bench pull ==");
    println!(
        "host: {} CPUs; load average {} at start, {} at end",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        f.load.0,
        f.load.1
    );
    println!(
        "image: {} — {} layers, {:.1} MB compressed, {:.1} MB of tar, {:.1} MB of EROFS (MB = 10^6 bytes)",
        f.reference,
        f.layers.len(),
        mb(d.compressed),
        mb(d.tar),
        mb(d.erofs)
    );
    println!(
        "{} rounds of (msb pull, skopeo copy, skopeo copy + umoci unpack) interleaved, order rotated, after 1 warm-up round; each into a fresh dir",
        d.ours.n
    );
    println!();
    println!("cold pull (wall time)");
    println!(
        "  msb pull (download + gunzip + verify + EROFS, fsync)  {}   {:.1} MB/s compressed, {:.1} MB/s of tar",
        d.ours.secs(),
        rate(d.compressed, d.ours.median),
        rate(d.tar, d.ours.median)
    );
    println!(
        "  skopeo copy → oci: (download only)                    {}   {:.1} MB/s compressed",
        d.skopeo.secs(),
        rate(d.compressed, d.skopeo.median)
    );
    println!(
        "  skopeo copy + umoci unpack                            {}   {:.1} MB/s of tar",
        d.skopeo_umoci.secs(),
        rate(d.tar, d.skopeo_umoci.median)
    );
    println!(
        "    of which umoci unpack                               {}",
        d.umoci_part.secs()
    );
    println!();
    let vs_copy = ratio(&d.ours, &d.skopeo);
    println!(
        "  msb pull / skopeo copy                = {vs_copy:.2}×   goal ≤ {GOAL}× — {}",
        if vs_copy <= GOAL { "met" } else { "NOT met" }
    );
    println!(
        "  msb pull / (skopeo copy + umoci unpack) = {:.2}×",
        ratio(&d.ours, &d.skopeo_umoci)
    );
    println!(
        "  reference: original microsandbox 0.4.2 takes {ISSUE_ORIGINAL}× skopeo copy on this image — figure quoted in the issue, not measured here"
    );
    println!();
    if d.layers.iter().all(Option::is_none) {
        println!("per layer: not available (no file birth times on this file system)");
    } else {
        println!("per layer in msb pull (layers go 3 at a time, so they overlap; medians; from the EROFS file's birth time to its last write)");
        for (l, span) in f.layers.iter().zip(&d.layers) {
            let Some((start, end, dur)) = span else {
                println!("  {}  not seen", short(&l.digest));
                continue;
            };
            let per_s = |b: u64| match rate(b, dur.median) {
                r if r > 0.0 => format!("{r:>6.1} MB/s"),
                _ => format!("{:>6} MB/s", "—"),
            };
            println!(
                "  {}  {:>8} blob {:>8} tar   {:.3}–{:.3} s ({:.3} s)   {} blob  {} tar",
                short(&l.digest),
                human(l.compressed),
                human(l.tar),
                start.median,
                end.median,
                dur.median,
                per_s(l.compressed),
                per_s(l.tar)
            );
        }
    }
    let c = &f.conversion;
    println!();
    println!(
        "tar → EROFS conversion, single core, from a local file (merged rootfs of the image: {:.1} MB tar, {} entries; page cache warm)",
        mb(c.tar_bytes),
        c.entries
    );
    println!(
        "  msb-erofs write_from_tar (release tar2erofs example)  {}   {:.1} MB/s of tar → {:.1} MB image",
        d.conv_ours.secs(),
        rate(c.tar_bytes, d.conv_ours.median),
        mb(c.erofs_bytes)
    );
    println!(
        "  mkfs.erofs of the extracted tree (erofs-utils 1.5)   {}   {:.1} MB/s of file data → {:.1} MB image",
        d.conv_mkfs.secs(),
        rate(c.dir_bytes, d.conv_mkfs.median),
        mb(c.mkfs_bytes)
    );
    println!(
        "  write_from_tar / mkfs.erofs time = {:.2}×  ({:.1} MB of file data in the tree)",
        ratio(&d.conv_ours, &d.conv_mkfs),
        mb(c.dir_bytes)
    );
}

/// All figures as one JSON object (times in seconds, sizes in bytes, rates in MB/s, MB = 10^6).
pub(super) fn to_json(f: &Figures, runs: usize) -> Value {
    let d = Derived::of(f);
    let vs_copy = ratio(&d.ours, &d.skopeo);
    let c = &f.conversion;
    let layers: Vec<Value> = f
        .layers
        .iter()
        .zip(&d.layers)
        .map(|(l, span)| {
            let mut v = json!({
                "digest": l.digest, "diff_id": l.diff_id, "media_type": l.media_type,
                "compressed_bytes": l.compressed, "tar_bytes": l.tar,
            });
            if let Some((start, end, dur)) = span {
                v["in_pull"] = json!({
                    "start_s": start.json(false), "end_s": end.json(false), "duration_s": dur.json(false),
                    "compressed_mb_s": rate(l.compressed, dur.median), "tar_mb_s": rate(l.tar, dur.median),
                });
            }
            v
        })
        .collect();
    json!({
        "image": f.reference,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_average": { "start": f.load.0, "end": f.load.1 },
        "runs": runs,
        "compressed_bytes": d.compressed,
        "tar_bytes": d.tar,
        "erofs_bytes": d.erofs,
        "layers": layers,
        "msb_pull_s": d.ours.json(false),
        "skopeo_copy_s": d.skopeo.json(false),
        "skopeo_copy_umoci_unpack_s": d.skopeo_umoci.json(false),
        "umoci_unpack_part_s": d.umoci_part.json(false),
        "mb_s": {
            "msb_pull_compressed": rate(d.compressed, d.ours.median),
            "msb_pull_tar": rate(d.tar, d.ours.median),
            "skopeo_copy_compressed": rate(d.compressed, d.skopeo.median),
            "skopeo_copy_umoci_unpack_tar": rate(d.tar, d.skopeo_umoci.median),
        },
        "ratio": {
            "msb_pull_to_skopeo_copy": vs_copy,
            "msb_pull_to_skopeo_copy_umoci_unpack": ratio(&d.ours, &d.skopeo_umoci),
        },
        "goal": { "max_ratio_to_skopeo_copy": GOAL, "met": vs_copy <= GOAL },
        "issue_reference": {
            "original_microsandbox_ratio_to_skopeo_copy": ISSUE_ORIGINAL,
            "note": "quoted in the issue, not measured here",
        },
        "conversion": {
            "input": "tar of the image's merged rootfs (umoci unpack), local file, page cache warm",
            "tar_bytes": c.tar_bytes,
            "tree_file_bytes": c.dir_bytes,
            "entries": c.entries,
            "write_from_tar_s": d.conv_ours.json(false),
            "write_from_tar_mb_s": rate(c.tar_bytes, d.conv_ours.median),
            "write_from_tar_image_bytes": c.erofs_bytes,
            "mkfs_erofs_s": d.conv_mkfs.json(false),
            "mkfs_erofs_mb_s": rate(c.dir_bytes, d.conv_mkfs.median),
            "mkfs_erofs_image_bytes": c.mkfs_bytes,
            "ratio_write_from_tar_to_mkfs_erofs": ratio(&d.conv_ours, &d.conv_mkfs),
        },
    })
}

// The three helpers below mirror the private ones in `boot.rs`; they belong in a shared
// module once `boot.rs` can be touched.
