//! `msb restart NAME… [-t SECS]`: stop sandboxes gracefully (if running) and start them
//! again in the background.

use anyhow::Result;
use microsandbox::{Microsandbox, SandboxState};
use std::time::Duration;

/// Arguments of `msb restart`.
#[derive(clap::Args, Debug)]
pub struct RestartArgs {
    /// Sandboxes to restart.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    quiet: crate::output::QuietArg,
    /// Seconds the sandbox's processes get after the stop signal before they are killed.
    #[arg(short = 't', long, default_value_t = 10)]
    timeout: u64,
}

/// Restarts each sandbox; exit 1 if any failed.
pub async fn run(args: RestartArgs) -> Result<i32> {
    args.quiet.apply();
    let msb = Microsandbox::from_env();
    let grace = Duration::from_secs(args.timeout);
    crate::commands::each(&args.names, |name| {
        let msb = msb.clone();
        async move {
            if msb.get(&name).await?.state == SandboxState::Running {
                msb.stop(&name, grace).await?;
            }
            msb.start_detached(&name).await.map(drop)
        }
    })
    .await
}
