//! `msb exec NAME [-t] [-e K=V] [-w DIR] [-u USER] -- COMMAND…`: run a process in a
//! running sandbox, attached to this terminal.

use anyhow::{bail, Result};
use microsandbox::{ExecOptions, Microsandbox};

/// Per-process options shared by `exec` and `shell`.
#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// Set an environment variable (KEY=VALUE, or KEY to copy the host's value).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the guest (absolute).
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<String>,
    /// User to run as: uid[:gid] or name[:group] from the guest's /etc/passwd.
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
}

impl ProcessArgs {
    /// The SDK options, on a terminal when `tty`.
    pub fn options(&self, tty: bool) -> Result<ExecOptions> {
        let env = self
            .env
            .iter()
            .map(|e| microsandbox::parse_env(e))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?;
        Ok(ExecOptions {
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            tty: tty.then(microsandbox::terminal_size),
        })
    }
}

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
    Ok(sb.attach(args.command, args.process.options(args.tty)?).await?)
}
