//! `msb stop NAME… [-t SECS]`: stop sandboxes gracefully (the guest syncs and powers off).

use anyhow::Result;
use microsandbox::{Microsandbox, SandboxState};
use std::time::Duration;

/// Arguments of `msb stop`.
#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Sandboxes to stop.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    quiet: crate::output::QuietArg,
    /// Seconds the sandbox's processes get after the stop signal (the image's, usually
    /// SIGTERM) before they are killed; the guest then syncs and powers off.
    #[arg(short = 't', long, default_value_t = 10)]
    timeout: u64,
    /// Kill instead (as `msb kill`).
    #[arg(short, long)]
    force: bool,
}

/// Stops each sandbox; exit 1 if any failed.
pub async fn run(args: StopArgs) -> Result<i32> {
    args.quiet.apply();
    let msb = Microsandbox::from_env();
    let grace = Duration::from_secs(args.timeout);
    let force = args.force;
    crate::commands::each(&args.names, |name| {
        let msb = msb.clone();
        async move {
            if force {
                return msb.kill(&name).await;
            }
            // Stopping what is not running is done already: a notice, not an error.
            let info = msb.get(&name).await?;
            if info.state != SandboxState::Running {
                crate::output::notice(&format!(
                    "sandbox '{name}' is {}: nothing to stop",
                    info.state.as_str().to_lowercase()
                ));
                return Ok(());
            }
            msb.stop(&name, grace).await.map(drop)
        }
    })
    .await
}
