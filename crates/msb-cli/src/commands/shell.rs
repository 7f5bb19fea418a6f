//! `msb shell NAME`: an interactive shell (the sandbox's, default /bin/sh) in a running
//! sandbox.

use crate::sandbox_args::ProcessArgs;
use crate::terminal::{end_session, TerminalArgs};
use anyhow::Result;
use microsandbox::Microsandbox;
use std::io::IsTerminal;

/// Arguments of `msb shell`.
#[derive(clap::Args, Debug)]
pub struct ShellArgs {
    /// The sandbox (running).
    name: String,
    /// The shell to run (default: the sandbox's `--shell`, else /bin/sh).
    #[arg(long)]
    shell: Option<String>,
    #[command(flatten)]
    terminal: TerminalArgs,
    #[command(flatten)]
    process: ProcessArgs,
}

/// Runs the shell on a terminal (when there is one, or with `-t`); returns its exit status.
pub async fn run(args: ShellArgs) -> Result<i32> {
    let sb = Microsandbox::from_env().connect(&args.name).await?;
    let shell = args.shell.unwrap_or_else(|| sb.shell_program().to_string());
    let tty = args.terminal.tty || std::io::stdin().is_terminal();
    let opts = args.terminal.apply(args.process.options()?, tty);
    let outcome = sb.attach(vec![shell], opts).await;
    end_session(sb, outcome, false).await
}
