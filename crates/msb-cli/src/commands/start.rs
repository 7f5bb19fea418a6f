//! `msb start NAME…`: start stopped sandboxes in the background.

use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb start`.
#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// Sandboxes to start.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    quiet: crate::output::QuietArg,
}

/// Starts each sandbox; exit 1 if any failed.
pub async fn run(args: StartArgs) -> Result<i32> {
    args.quiet.apply();
    let msb = Microsandbox::from_env();
    crate::commands::each(&args.names, |name| {
        let msb = msb.clone();
        async move { msb.start_detached(&name).await.map(drop) }
    })
    .await
}
