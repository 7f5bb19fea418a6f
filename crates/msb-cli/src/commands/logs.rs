//! `msb logs NAME [-f] [--source output|exec|console|supervisor]`: a sandbox's logs.

use anyhow::Result;
use microsandbox::{LogSource, Microsandbox};
use std::io::Write;

/// Arguments of `msb logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The sandbox.
    name: String,
    /// Keep printing what is added until the sandbox stops.
    #[arg(short, long)]
    follow: bool,
    /// Which log: output (its command's output), exec (one line per exec session, and
    /// starts and stops with their reasons), console (kernel and agent messages) or
    /// supervisor (its diagnostics). Default: output for a sandbox with a command, else exec.
    #[arg(long, value_parser = clap::builder::TypedValueParser::try_map(
        clap::builder::PossibleValuesParser::new(["output", "exec", "console", "supervisor"]),
        |s| s.parse::<LogSource>(),
    ))]
    source: Option<LogSource>,
    /// With `--source console`: the console of the N-th boot before the last one (the
    /// last five boots are kept).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "source")]
    boot: usize,
}

/// Prints the log (and follows it).
pub async fn run(args: LogsArgs) -> Result<i32> {
    let msb = Microsandbox::from_env();
    let mut log = msb.logs(&args.name, args.source, args.boot, args.follow).await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = log.next_chunk().await? {
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(0)
}
