//! `msb metrics NAME [--json]`: CPU, memory, disk and network use of a running sandbox.

use crate::progress::human_bytes;
use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb metrics`.
#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    /// The sandbox (running).
    name: String,
    /// JSON output for scripts.
    #[arg(long)]
    json: bool,
}

/// Measures and prints.
pub async fn run(args: MetricsArgs) -> Result<i32> {
    let sb = Microsandbox::from_env().connect(&args.name).await?;
    let m = sb.metrics().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(0);
    }
    println!(
        "cpu      {:.1}% of one vCPU (guest), {:.1}% of one core (host VM processes)",
        m.cpu_percent, m.host_cpu_percent
    );
    println!(
        "memory   {} used of {} (guest); {} resident on the host",
        human_bytes(m.memory_used_bytes),
        human_bytes(m.memory_limit_bytes),
        human_bytes(m.host_rss_bytes)
    );
    println!(
        "disk     {} used of {} (root filesystem)",
        human_bytes(m.disk_used_bytes),
        human_bytes(m.disk_total_bytes)
    );
    println!(
        "network  {} received, {} sent",
        human_bytes(m.net_rx_bytes),
        human_bytes(m.net_tx_bytes)
    );
    println!("uptime   {}", crate::output::span(m.uptime.as_secs() as i64));
    Ok(0)
}
