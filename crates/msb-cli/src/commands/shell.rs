//! `msb shell NAME`: an interactive shell in a running sandbox.

use crate::sandbox_args::ProcessArgs;
use anyhow::Result;
use microsandbox::Microsandbox;
use std::io::IsTerminal;

/// Arguments of `msb shell`.
#[derive(clap::Args, Debug)]
pub struct ShellArgs {
    /// The sandbox (running).
    name: String,
    /// The shell to run.
    #[arg(long, default_value = "/bin/sh")]
    shell: String,
    #[command(flatten)]
    process: ProcessArgs,
}

/// Runs the shell on a terminal (when there is one); returns its exit status.
pub async fn run(args: ShellArgs) -> Result<i32> {
    let sb = Microsandbox::from_env().connect(&args.name).await?;
    let tty = std::io::stdin().is_terminal();
    Ok(sb.attach(vec![args.shell], args.process.options(tty)?).await?)
}
