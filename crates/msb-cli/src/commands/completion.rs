//! `msb completion SHELL`: the shell completion script, for the shell to load
//! (`source <(msb completion bash)`).

use anyhow::Result;
use clap::CommandFactory;

/// Arguments of `msb completion`.
#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Prints the script for `C`'s command line.
pub fn run<C: CommandFactory>(args: CompletionArgs) -> Result<i32> {
    clap_complete::generate(args.shell, &mut C::command(), "msb", &mut std::io::stdout());
    Ok(0)
}
