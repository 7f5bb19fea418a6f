//! `msb fork NAME --count N`: copies of a running sandbox that go on from where it stands
//! and share its memory until they change it.

use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb fork`.
#[derive(clap::Args, Debug)]
pub struct ForkArgs {
    /// The running sandbox (an image root without mounts; it pauses for the save).
    name: String,
    /// How many copies.
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    count: u32,
    /// The copies are named PREFIX1, PREFIX2, … (default: `NAME-`).
    #[arg(long)]
    prefix: Option<String>,
    #[command(flatten)]
    quiet: crate::output::QuietArg,
}

/// Makes the copies and prints their names, one a line.
pub async fn run(args: ForkArgs) -> Result<i32> {
    args.quiet.apply();
    let prefix = args.prefix.unwrap_or_else(|| format!("{}-", args.name));
    let copies: Vec<String> = (1..=args.count).map(|i| format!("{prefix}{i}")).collect();
    Microsandbox::from_env().fork(&args.name, &copies).await?;
    if !crate::output::is_quiet() {
        copies.iter().for_each(|name| println!("{name}"));
    }
    Ok(0)
}
