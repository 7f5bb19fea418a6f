//! `msb metrics [NAME]`: CPU, memory, disk and network use of a running sandbox, or a table
//! of every running one.

use crate::output::{span, table, ListFormat};
use crate::progress::human_bytes;
use anyhow::Result;
use microsandbox::{Microsandbox, SandboxMetrics};

/// Arguments of `msb metrics`.
#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    /// The sandbox (running); all running ones without it.
    name: Option<String>,
    #[command(flatten)]
    format: ListFormat,
}

/// Measures and prints.
pub async fn run(args: MetricsArgs) -> Result<i32> {
    let msb = Microsandbox::from_env();
    let Some(name) = &args.name else {
        return all(&msb, &args.format).await;
    };
    let m = msb.connect(name).await?.metrics().await?;
    if args.format.json() {
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(0);
    }
    if args.format.quiet {
        println!("{name}");
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
        "disk     {} used of {} (root filesystem); {} read, {} written since boot",
        human_bytes(m.disk_used_bytes),
        human_bytes(m.disk_total_bytes),
        human_bytes(m.disk_read_bytes),
        human_bytes(m.disk_write_bytes)
    );
    println!(
        "network  {} received, {} sent",
        human_bytes(m.net_rx_bytes),
        human_bytes(m.net_tx_bytes)
    );
    println!("uptime   {}", span(m.uptime.as_secs() as i64));
    Ok(0)
}

/// A table (or JSON object by name) of every running sandbox's use, measured at once.
async fn all(msb: &Microsandbox, format: &ListFormat) -> Result<i32> {
    let all = msb.all_metrics().await?;
    if format.json() {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    if format.quiet {
        all.keys().for_each(|name| println!("{name}"));
        return Ok(0);
    }
    if all.is_empty() {
        eprintln!("no sandboxes running");
        return Ok(0);
    }
    let rows: Vec<[String; 6]> = all.iter().map(|(name, m)| row(name, m)).collect();
    print!(
        "{}",
        table(["NAME", "CPU", "MEMORY", "DISK R/W", "NET RX/TX", "UPTIME"], &rows)
    );
    Ok(0)
}

fn row(name: &str, m: &SandboxMetrics) -> [String; 6] {
    [
        name.to_string(),
        format!("{:.1}%", m.cpu_percent),
        format!(
            "{} / {}",
            human_bytes(m.memory_used_bytes),
            human_bytes(m.memory_limit_bytes)
        ),
        format!(
            "{} / {}",
            human_bytes(m.disk_read_bytes),
            human_bytes(m.disk_write_bytes)
        ),
        format!("{} / {}", human_bytes(m.net_rx_bytes), human_bytes(m.net_tx_bytes)),
        span(m.uptime.as_secs() as i64),
    ]
}
