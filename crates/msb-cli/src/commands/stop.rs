//! `msb stop NAME… [-t SECS]`: stop sandboxes gracefully (the guest syncs and powers off).

use anyhow::Result;
use microsandbox::Microsandbox;
use std::time::Duration;

/// Arguments of `msb stop`.
#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Sandboxes to stop.
    #[arg(required = true)]
    names: Vec<String>,
    /// Seconds the sandbox's processes get after the stop signal (the image's, usually
    /// SIGTERM) before they are killed; the guest then syncs and powers off.
    #[arg(short = 't', long, default_value_t = 10)]
    timeout: u64,
}

/// Stops each sandbox; exit 1 if any failed.
pub async fn run(args: StopArgs) -> Result<i32> {
    let msb = Microsandbox::from_env();
    let grace = Duration::from_secs(args.timeout);
    crate::commands::each(&args.names, |name| {
        let msb = msb.clone();
        async move { msb.stop(&name, grace).await }
    })
    .await
}
