//! `msb`: run untrusted code in hardware-isolated microVMs.

mod commands;
mod net_args;
mod output;
mod patch_args;
mod progress;
mod sandbox_args;
mod secret_args;
mod terminal;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::IsTerminal;

/// Exit status for failures of msb itself (docker's convention), as opposed to the guest
/// command's own status.
pub const EXIT_MSB_ERROR: i32 = 125;

/// Exit status of a command killed for its `--timeout` (GNU `timeout`'s).
pub const EXIT_TIMEOUT: i32 = 124;

#[derive(Parser)]
#[command(name = "msb", version, about = "Run untrusted code in hardware-isolated microVMs")]
struct Cli {
    /// How much msb logs on stderr: error, warn, info, debug, trace, or `MSB_LOG`-style
    /// filters such as `msb_net=trace` (default: `$MSB_LOG`, else warn).
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Same as `--log-level debug`.
    #[arg(long, global = true)]
    debug: bool,
    /// The reference's spellings of `--log-level LEVEL`.
    #[arg(long, global = true, hide = true)]
    error: bool,
    #[arg(long, global = true, hide = true)]
    warn: bool,
    #[arg(long, global = true, hide = true)]
    info: bool,
    #[arg(long, global = true, hide = true)]
    trace: bool,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// The level a flag of its own names (`--debug`, and `--error` … `--trace` as the
    /// reference spells them); the most verbose wins.
    fn level_flag(&self) -> Option<&'static str> {
        [
            (self.trace, "trace"),
            (self.debug, "debug"),
            (self.info, "info"),
            (self.warn, "warn"),
            (self.error, "error"),
        ]
        .into_iter()
        .find_map(|(set, level)| set.then_some(level))
    }
}

/// Diagnostics on stderr, filtered by `filter`, coloured only on a terminal.
fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a new sandbox (or a named existing one).
    Run(Box<commands::run::RunArgs>),
    /// Create a sandbox and start it in the background.
    Create(Box<commands::create::CreateArgs>),
    /// Start stopped sandboxes in the background.
    Start(commands::start::StartArgs),
    /// Stop sandboxes gracefully.
    Stop(commands::stop::StopArgs),
    /// Stop sandboxes gracefully and start them again.
    Restart(commands::restart::RestartArgs),
    /// Kill sandboxes' VMs at once.
    Kill(commands::kill::KillArgs),
    /// Remove sandboxes.
    #[command(visible_alias = "remove")]
    Rm(commands::rm::RmArgs),
    /// List sandboxes (running and crashed ones unless -a).
    #[command(visible_aliases = ["ps", "list", "status"])]
    Ls(commands::ls::LsArgs),
    /// Show a sandbox's spec, state, processes and files as JSON.
    Inspect(commands::inspect::InspectArgs),
    /// Show a sandbox's logs.
    Logs(commands::logs::LogsArgs),
    /// Run a command in a sandbox (a stopped one is started for it).
    Exec(commands::exec::ExecArgs),
    /// Open a shell in a running sandbox.
    Shell(commands::shell::ShellArgs),
    /// Show the resource use of a running sandbox, or of all of them.
    Metrics(commands::metrics::MetricsArgs),
    /// Pull an image from a registry.
    Pull(commands::pull::PullArgs),
    /// Manage local images.
    #[command(subcommand)]
    Image(commands::image::ImageCommand),
    /// A running sandbox's files: ls, cat, stat, write, mkdir, rm, mv, chmod, watch.
    #[command(subcommand)]
    Fs(commands::fs::FsCommand),
    /// Manage named volumes: create, ls, inspect, rm, prune.
    #[command(subcommand, alias = "vol")]
    Volume(commands::volume::VolumeCommand),
    /// Save running sandboxes whole and resume them later: create, ls, inspect, rm, save, load.
    #[command(subcommand)]
    Snapshot(commands::snapshot::SnapshotCommand),
    /// Copy a running sandbox into new ones that go on from where it stands, sharing its
    /// memory until they change it.
    Fork(commands::fork::ForkArgs),
    /// Copy files and trees between the host and a running sandbox (`SRC NAME:PATH`,
    /// `NAME:PATH DST`; `-` for a tar stream).
    Cp(commands::cp::CpArgs),
    /// Manage registry credentials.
    #[command(subcommand)]
    Registry(commands::registry::RegistryCommand),
    /// List local images (as `msb image ls`).
    #[command(hide = true)]
    Images(commands::image::ls::LsArgs),
    /// Remove images (as `msb image rm`).
    #[command(hide = true)]
    Rmi(commands::image::rm::RmArgs),
    /// Put a command on the PATH that runs in a sandbox of an image.
    Install(Box<commands::install::InstallArgs>),
    /// Remove commands that `msb install` put on the PATH.
    Uninstall(commands::install::UninstallArgs),
    /// Serve the HTTP API (OpenAPI at /openapi.json) and MCP (at /mcp).
    Serve(commands::serve::ServeArgs),
    /// Show what this host gives sandboxes: KVM or TCG, and each confinement mechanism.
    Doctor(commands::doctor::DoctorArgs),
    /// Serve MCP (tools for AI agents) on stdin and stdout.
    Mcp(commands::mcp::McpArgs),
    /// Print a shell completion script (`source <(msb completion bash)`).
    Completion(commands::completion::CompletionArgs),
    /// Supervise a sandbox (started by msb itself, detached; its boot plan on stdin).
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// The sandbox (for the process table; the input on stdin names it too).
        name: String,
    },
}

/// Detaches the supervisor from whoever started it and reads what it is to run.
fn supervisor_input() -> msb_supervisor::SupervisorInput {
    let fail = |what: String| -> ! {
        eprintln!("msb: error: {what}");
        std::process::exit(EXIT_MSB_ERROR)
    };
    // SAFETY: no runtime or thread has started yet; the process is single-threaded.
    if let Err(e) = unsafe { msb_supervisor::detach() } {
        fail(format!("detaching the supervisor: {e}"));
    }
    msb_supervisor::SupervisorInput::read(std::io::stdin().lock()).unwrap_or_else(|e| fail(e.to_string()))
}

fn main() {
    let matches = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (m, cli)));
    let (matches, cli) = match matches {
        Ok(parsed) => parsed,
        Err(e) => output::usage_error(e),
    };
    let supervisor_input = match &cli.command {
        Command::Supervise { .. } => Some(supervisor_input()),
        _ => None,
    };
    let level = match &supervisor_input {
        // A supervisor logs into its sandbox's supervisor.log, as its spec asks.
        Some(input) => input.log_level.clone(),
        None => cli
            .level_flag()
            .map(str::to_string)
            .or_else(|| cli.log_level.clone())
            .or_else(|| std::env::var("MSB_LOG").ok()),
    };
    init_logging(level.as_deref().unwrap_or("warn"));
    // One thread: helper processes get PR_SET_PDEATHSIG from the thread that spawns them,
    // and the main thread lives exactly as long as msb. The server serves many clients at
    // once and starts only detached supervisors (no death signal), so it gets every core.
    let runtime = match cli.command {
        Command::Serve(_) | Command::Mcp(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let rt = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("msb: error: starting the async runtime: {e}");
            std::process::exit(EXIT_MSB_ERROR);
        }
    };
    let empty = clap::ArgMatches::default();
    let sub = |verb: &str| matches.subcommand_matches(verb).unwrap_or(&empty);
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(args) => commands::run::run(*args, sub("run")).await,
            Command::Create(args) => commands::create::run(*args, sub("create")).await,
            Command::Start(args) => commands::start::run(args).await,
            Command::Stop(args) => commands::stop::run(args).await,
            Command::Restart(args) => commands::restart::run(args).await,
            Command::Kill(args) => commands::kill::run(args).await,
            Command::Rm(args) => commands::rm::run(args).await,
            Command::Ls(args) => commands::ls::run(args).await,
            Command::Inspect(args) => commands::inspect::run(args).await,
            Command::Logs(args) => commands::logs::run(args).await,
            Command::Exec(args) => commands::exec::run(args).await,
            Command::Shell(args) => commands::shell::run(args).await,
            Command::Metrics(args) => commands::metrics::run(args).await,
            Command::Supervise { .. } => match supervisor_input {
                Some(input) => Ok(msb_supervisor::supervise(input).await),
                None => Ok(EXIT_MSB_ERROR),
            },
            Command::Pull(args) => commands::pull::run(args).await,
            Command::Image(cmd) => commands::image::run(cmd).await,
            Command::Fs(cmd) => commands::fs::run(cmd).await,
            Command::Cp(args) => commands::cp::run(args).await,
            Command::Volume(cmd) => commands::volume::run(cmd).await,
            Command::Snapshot(cmd) => commands::snapshot::run(cmd).await,
            Command::Fork(args) => commands::fork::run(args).await,
            Command::Registry(cmd) => commands::registry::run(cmd).await,
            Command::Images(args) => commands::image::run(commands::image::ImageCommand::Ls(args)).await,
            Command::Rmi(args) => commands::image::run(commands::image::ImageCommand::Rm(args)).await,
            Command::Install(args) => commands::install::install(*args).await,
            Command::Uninstall(args) => commands::install::uninstall(args),
            Command::Completion(args) => commands::completion::run::<Cli>(args),
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Doctor(args) => commands::doctor::run(args).await,
            Command::Mcp(args) => commands::mcp::run(args).await,
        }
    });
    // Do not wait for a blocking read of the terminal that will never finish.
    rt.shutdown_background();
    let code = result.unwrap_or_else(|e| {
        eprintln!("msb: error: {}", output::error_line(&e));
        // A command killed for its --timeout ends as `timeout(1)`'s would.
        match e.downcast_ref::<microsandbox::MicrosandboxError>() {
            Some(microsandbox::MicrosandboxError::ExecTimeout(_)) => EXIT_TIMEOUT,
            _ => EXIT_MSB_ERROR,
        }
    });
    std::process::exit(code);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_references_level_flags_are_accepted_anywhere() {
        let level = |args: &[&str]| Cli::try_parse_from(args).unwrap().level_flag();
        assert_eq!(level(&["msb", "ls"]), None);
        assert_eq!(level(&["msb", "--trace", "ls"]), Some("trace"));
        assert_eq!(level(&["msb", "ls", "--error"]), Some("error"));
        assert_eq!(level(&["msb", "--warn", "ls", "--info"]), Some("info"));
        assert_eq!(level(&["msb", "--error", "ls", "--debug"]), Some("debug"));
    }
}
