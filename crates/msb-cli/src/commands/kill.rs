//! `msb kill NAME…`: kill sandboxes' VMs at once.

use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb kill`.
#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Sandboxes to kill.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    quiet: crate::output::QuietArg,
}

/// Kills each sandbox; exit 1 if any failed.
pub async fn run(args: KillArgs) -> Result<i32> {
    args.quiet.apply();
    let msb = Microsandbox::from_env();
    crate::commands::each(&args.names, |name| {
        let msb = msb.clone();
        async move { msb.kill(&name).await }
    })
    .await
}
