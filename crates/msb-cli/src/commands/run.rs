//! `msb run`: make a sandbox (or reuse a named one), run its command attached to this
//! terminal, and exit with its status. Unnamed runs leave nothing behind; `-d` leaves the
//! sandbox running in the background.

use crate::output::notice;
use crate::sandbox_args::SandboxArgs;
use crate::terminal::{end_session, TerminalArgs};
use anyhow::Result;
use microsandbox::{ExecOptions, Field, Microsandbox, MicrosandboxError, Sandbox, SandboxState, SpecError};

/// Arguments of `msb run`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["image", "rootfs"]))]
pub struct RunArgs {
    /// OCI image to boot (pulled first if it is not in the local store).
    image: Option<String>,
    /// Name of the sandbox; it is kept after the command (reused by a later run). Unnamed
    /// sandboxes are removed when their command ends.
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Start the sandbox (and the command, if one is given) in the background; a generated
    /// name is printed.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Remove the sandbox when it stops, even a named one.
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    terminal: TerminalArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Kill the command if it has not ended after this long (e.g. 30s, 5m); exit 124.
    #[arg(long, value_name = "DURATION", value_parser = crate::sandbox_args::parse_duration)]
    timeout: Option<std::time::Duration>,
    /// Command and arguments (default: the image's entrypoint and cmd; with -t and neither,
    /// the sandbox's shell).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the command and returns the exit status for msb.
pub async fn run(mut args: RunArgs, matches: &clap::ArgMatches) -> Result<i32> {
    args.sandbox.quiet.apply();
    let msb = Microsandbox::from_env();
    let name = match &args.name {
        Some(n) => n.clone(),
        None => microsandbox::generate_name()?,
    };
    if let Some((sb, started_here)) = reuse(&msb, &args).await? {
        return attach(sb, &args, started_here).await;
    }
    let mut builder = args.sandbox.builder(&msb, &name, args.image.as_deref(), matches)?;
    args.sandbox.announce_new_volumes(&msb).await;
    // Catch bad options before any pull.
    let spec = builder.build()?;
    let image_runs_something = match &args.image {
        Some(image) => {
            let config = crate::commands::pull::ensure(msb.paths(), image, args.sandbox.pull)
                .await?
                .config;
            // Obtained as the policy said; the create need not pull again.
            builder = builder.pull_policy(microsandbox::image::PullPolicy::IfMissing);
            config.entrypoint.is_some_and(|e| !e.is_empty()) || config.cmd.is_some_and(|c| !c.is_empty())
        }
        None => false,
    };
    // Found before anything boots: a foreground run needs something to run (a terminal
    // gets the shell).
    let nothing_to_run = args.command.is_empty() && spec.entrypoint.is_none() && !image_runs_something;
    if nothing_to_run && args.terminal.tty {
        args.command = vec![spec.shell.clone().unwrap_or_else(|| "/bin/sh".into())];
    } else if nothing_to_run && !args.detach {
        let problem = match args.image {
            Some(_) => "no command given and the image defines no Entrypoint or Cmd: add `-- COMMAND`",
            None => "no command given: add `-- COMMAND` (a directory or disk-image root has no default command)",
        };
        return Err(SpecError::new(Field::Command, problem).into());
    }
    if args.rm || (args.name.is_none() && !args.detach) {
        builder = builder.ephemeral();
    }
    if args.detach {
        if !args.command.is_empty() {
            builder = builder.command(args.command.clone());
        }
        let sb = builder.create_detached().await?;
        accel_notice(&sb);
        // A name the user gave needs no echo; a generated one is how they find it.
        if args.name.is_none() {
            println!("{name}");
        }
        return Ok(0);
    }
    let sb = builder.create().await?;
    accel_notice(&sb);
    attach(sb, &args, true).await
}

/// A named sandbox that exists already is reused, as `docker start` would: started if it is
/// stopped (and stopped again afterwards), joined if it runs. Its creation options are not
/// applied again.
async fn reuse(msb: &Microsandbox, args: &RunArgs) -> Result<Option<(Sandbox, bool)>> {
    let Some(name) = &args.name else {
        return Ok(None);
    };
    let info = match msb.get(name).await {
        Ok(info) => info,
        Err(MicrosandboxError::SandboxNotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if args.sandbox.replaces() {
        return Ok(None);
    }
    notice(&format!(
        "sandbox '{name}' exists: running in it (its creation options stay as they were)"
    ));
    if info.state == SandboxState::Running {
        Ok(Some((msb.connect(name).await?, false)))
    } else {
        Ok(Some((msb.start(name).await?, true)))
    }
}

/// Runs the sandbox's command attached to this terminal; stops the sandbox afterwards if
/// this run started it.
async fn attach(sb: Sandbox, args: &RunArgs, started_here: bool) -> Result<i32> {
    let opts = ExecOptions {
        timeout: args.timeout,
        ..Default::default()
    };
    let opts = args.terminal.apply(opts, args.terminal.tty);
    let outcome = sb.attach_command(args.command.clone(), opts).await;
    end_session(sb, outcome, started_here).await
}

/// Tells a person at a terminal that the sandbox runs without KVM, and why.
fn accel_notice(sb: &Sandbox) {
    if let Some(reason) = sb.accel_note() {
        notice(&format!(
            "KVM is not usable ({reason}); running under TCG software emulation (slow)"
        ));
    }
}
