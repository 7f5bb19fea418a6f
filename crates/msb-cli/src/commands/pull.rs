//! `msb pull`: fetch an image from a registry into the local store.

use crate::progress::PullProgress;
use anyhow::Result;
use microsandbox::image::{self, PullSettings};
use microsandbox::Paths;

/// Arguments of `msb pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Image reference: `python`, `ghcr.io/org/app:1.2`, `alpine@sha256:…`.
    reference: String,
    /// Platform to pull (default: this host's), e.g. linux/arm64.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<microsandbox::Platform>,
    /// Talk plain HTTP to the registry (loopback registries always do).
    #[arg(long)]
    insecure: bool,
    /// Print only the manifest digest.
    #[arg(short, long)]
    quiet: bool,
    /// Trust this CA (PEM file) for the registry's HTTPS, beside the system's; repeatable.
    #[arg(long = "ca-certs", value_name = "PEM")]
    ca_certs: Vec<std::path::PathBuf>,
    /// Download and convert every layer again, even those already stored (`msb pull` always
    /// asks the registry for the tag; without -f stored layers are reused).
    #[arg(short, long)]
    force: bool,
    /// Seconds a registry may send nothing mid-response before the pull fails.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    read_timeout: u64,
}

/// The image's record, pulled first as `policy` says (with progress bars on a terminal).
pub async fn ensure(paths: &Paths, reference: &str, policy: image::PullPolicy) -> Result<microsandbox::ImageRecord> {
    let progress = PullProgress::new(false);
    let report = |e| {
        if let image::PullProgress::Layer(event) = e {
            progress.event(event);
        }
    };
    let record = image::obtain(paths, reference, policy, &PullSettings::default(), &report).await;
    progress.finish();
    Ok(record?)
}

/// Pulls the image and reports what was stored.
pub async fn run(args: PullArgs) -> Result<i32> {
    let msb = microsandbox::Microsandbox::from_env();
    let paths = msb.paths();
    let settings = PullSettings {
        platform: args.platform,
        insecure: args.insecure,
        read_timeout: Some(std::time::Duration::from_secs(args.read_timeout)),
        ca_certs: args.ca_certs,
        force: args.force,
        ..PullSettings::default()
    };
    let progress = PullProgress::new(args.quiet);
    let record = image::pull(paths, &args.reference, &settings, &|e| progress.event(e)).await;
    progress.finish();
    let record = record?;
    if args.quiet {
        println!("{}", record.manifest_digest);
    } else {
        let cached = progress.all_cached();
        let size: u64 = record.layers.iter().map(|l| l.erofs_size).sum();
        println!(
            "Pulled {} ({}, {} layer{}, {}){}",
            record.reference,
            record.manifest_digest,
            record.layers.len(),
            if record.layers.len() == 1 { "" } else { "s" },
            crate::progress::human_bytes(size),
            if cached { " — already cached" } else { "" }
        );
    }
    Ok(0)
}
