//! `msb ls` / `msb ps [-a] [--json]`: the sandboxes, running ones by default.

use crate::output::{ago, now, span};
use anyhow::Result;
use microsandbox::{Microsandbox, SandboxInfo, SandboxState};

/// Arguments of `msb ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Stopped and crashed sandboxes too.
    #[arg(short, long)]
    all: bool,
    /// JSON output (one array) for scripts.
    #[arg(long)]
    json: bool,
}

/// Prints the table (or JSON).
pub async fn run(args: LsArgs) -> Result<i32> {
    let sandboxes: Vec<SandboxInfo> = Microsandbox::from_env()
        .list()
        .await?
        .into_iter()
        .filter(|s| args.all || s.state == SandboxState::Running)
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sandboxes)?);
        return Ok(0);
    }
    if sandboxes.is_empty() {
        let hint = if args.all { "" } else { " running (see -a for all)" };
        eprintln!("no sandboxes{hint}");
        return Ok(0);
    }
    println!("{:<24} {:<32} {:<40} CREATED", "NAME", "STATUS", "IMAGE/ROOT");
    for s in &sandboxes {
        println!(
            "{:<24} {:<32} {:<40} {}",
            s.name,
            status(s),
            s.source(),
            ago(s.created_at)
        );
    }
    Ok(0)
}

/// `running 5 minutes`, `stopped 2 hours ago (idle timeout)`, `crashed …`.
fn status(s: &SandboxInfo) -> String {
    match s.state {
        SandboxState::Running => format!("running {}", span(now() - s.started_at.unwrap_or(s.created_at))),
        SandboxState::Created => "created".into(),
        state => {
            let when = s.stopped_at.map(ago).unwrap_or_default();
            let why = s.exit_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            format!("{} {when}{why}", state.as_str().to_lowercase())
        }
    }
}
