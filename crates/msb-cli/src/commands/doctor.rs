//! `msb doctor`: what this host gives a sandbox's walls — KVM or TCG, and each confinement
//! mechanism: offered or not, used or not, and why.

use crate::output::ListFormat;
use anyhow::Result;

/// Arguments of `msb doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    format: ListFormat,
}

/// Probes the host and prints the report.
pub async fn run(args: DoctorArgs) -> Result<i32> {
    let report = microsandbox::host_report();
    if args.format.json() {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    let width = report.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &report {
        if args.format.quiet {
            if c.on {
                println!("{}", c.name);
            }
            continue;
        }
        let mark = if c.on { "on " } else { "off" };
        println!("{mark}  {:width$}  {} — {}", c.name, c.found, c.why);
    }
    Ok(0)
}
