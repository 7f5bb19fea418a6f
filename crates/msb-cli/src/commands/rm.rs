//! `msb rm NAME… [-f]`: remove sandboxes and everything they wrote.

use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Sandboxes to remove.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    quiet: crate::output::QuietArg,
    /// Kill running ones first.
    #[arg(short, long)]
    force: bool,
}

/// Removes each sandbox; exit 1 if any failed.
pub async fn run(args: RmArgs) -> Result<i32> {
    args.quiet.apply();
    let msb = Microsandbox::from_env();
    let force = args.force;
    crate::commands::each(&args.names, |name| {
        let msb = msb.clone();
        async move { msb.remove(&name, force).await }
    })
    .await
}
