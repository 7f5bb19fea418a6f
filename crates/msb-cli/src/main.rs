//! `msb`: run untrusted code in hardware-isolated microVMs.

mod commands;
mod patch_args;
mod progress;
mod session_io;
mod terminal;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Exit status for failures of msb itself (docker's convention), as opposed to the guest
/// command's own status.
pub const EXIT_MSB_ERROR: i32 = 125;

#[derive(Parser)]
#[command(name = "msb", version, about = "Run untrusted code in hardware-isolated microVMs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a microVM and run a command in it.
    Run(Box<commands::run::RunArgs>),
    /// Pull an image from a registry.
    Pull(commands::pull::PullArgs),
    /// Manage local images.
    #[command(subcommand)]
    Image(commands::image::ImageCommand),
    /// Manage registry credentials.
    #[command(subcommand)]
    Registry(commands::registry::RegistryCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MSB_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // One thread: helper processes get PR_SET_PDEATHSIG from the thread that spawns them,
    // and the main thread lives exactly as long as msb.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("msb: error: starting the async runtime: {e}");
            std::process::exit(EXIT_MSB_ERROR);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(args) => {
                let run_matches = matches.subcommand_matches("run").cloned().unwrap_or_default();
                commands::run::run(*args, &run_matches).await
            }
            Command::Pull(args) => commands::pull::run(args).await,
            Command::Image(cmd) => commands::image::run(cmd),
            Command::Registry(cmd) => commands::registry::run(cmd).await,
        }
    });
    // Do not wait for a blocking read of the terminal that will never finish.
    rt.shutdown_background();
    let code = result.unwrap_or_else(|e| {
        eprintln!("msb: error: {e:#}");
        EXIT_MSB_ERROR
    });
    std::process::exit(code);
}
