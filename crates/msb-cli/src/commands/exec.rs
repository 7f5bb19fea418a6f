//! `msb exec NAME [-t] [-e K=V] [-w DIR] [-u USER] -- COMMAND…`: run a process in a
//! running sandbox, attached to this terminal.

use crate::sandbox_args::ProcessArgs;
use anyhow::{bail, Result};
use microsandbox::Microsandbox;

/// Arguments of `msb exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The sandbox (running).
    name: String,
    /// Allocate a pseudo-terminal and attach the host terminal to it (raw mode).
    #[arg(short = 't', long)]
    tty: bool,
    #[command(flatten)]
    process: ProcessArgs,
    /// Kill the command if it has not ended after this long (e.g. 30s, 5m); exit 124.
    #[arg(long, value_name = "DURATION", value_parser = crate::sandbox_args::parse_duration)]
    timeout: Option<std::time::Duration>,
    /// Command and arguments.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the command; returns its exit status.
pub async fn run(args: ExecArgs) -> Result<i32> {
    if args.command.is_empty() {
        bail!("give a command after `--` (or use `msb shell {}`)", args.name);
    }
    let sb = Microsandbox::from_env().connect(&args.name).await?;
    let mut opts = args.process.options(args.tty)?;
    opts.timeout = args.timeout;
    Ok(sb.attach(args.command, opts).await?)
}
