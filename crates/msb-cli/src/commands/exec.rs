//! `msb exec NAME [-t] [-e K=V] [-w DIR] [-u USER] [-- COMMAND…]`: run a process in a
//! sandbox, attached to this terminal. A stopped sandbox is started for it and stopped
//! again afterwards; with no command, a terminal gets the sandbox's shell.

use crate::sandbox_args::ProcessArgs;
use crate::terminal::{end_session, TerminalArgs};
use anyhow::{bail, Result};
use microsandbox::{Microsandbox, SandboxState};
use std::io::IsTerminal;

/// Arguments of `msb exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The sandbox.
    name: String,
    #[command(flatten)]
    terminal: TerminalArgs,
    #[command(flatten)]
    process: ProcessArgs,
    /// Kill the command if it has not ended after this long (e.g. 30s, 5m); exit 124.
    #[arg(long, value_name = "DURATION", value_parser = crate::sandbox_args::parse_duration)]
    timeout: Option<std::time::Duration>,
    /// Refuse a stopped sandbox instead of starting it for the command.
    #[arg(long)]
    no_start: bool,
    #[command(flatten)]
    quiet: crate::output::QuietArg,
    /// Command and arguments (default on a terminal: the sandbox's shell).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the command; returns its exit status.
pub async fn run(args: ExecArgs) -> Result<i32> {
    args.quiet.apply();
    let interactive = std::io::stdin().is_terminal();
    if args.command.is_empty() && !interactive {
        bail!("give a command after `--` (a shell needs a terminal)");
    }
    let msb = Microsandbox::from_env();
    let info = msb.get(&args.name).await?;
    let started_here = info.state != SandboxState::Running && !args.no_start;
    let sb = if started_here {
        msb.start(&args.name).await?
    } else {
        msb.connect(&args.name).await?
    };
    let shell = args.command.is_empty();
    let mut opts = args.terminal.apply(args.process.options()?, args.terminal.tty || shell);
    opts.timeout = args.timeout;
    let outcome = match shell {
        true => sb.attach_shell(opts).await,
        false => sb.attach(args.command, opts).await,
    };
    end_session(sb, outcome, started_here).await
}
