//! `msb logs NAME [-f] [--source output|exec|console|supervisor]`: a sandbox's logs.

use anyhow::{Context, Result};
use microsandbox::{Microsandbox, SandboxState};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

/// Which log.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Output of the sandbox's command (`msb run -d … -- CMD`, `msb create … -- CMD`).
    Output,
    /// One line per exec session (start, user, directory, command; how it ended) and the
    /// sandbox's starts and stops with their reasons.
    Exec,
    /// The guest's console: kernel and agent messages.
    Console,
    /// The supervisor's own diagnostics.
    Supervisor,
}

/// Arguments of `msb logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The sandbox.
    name: String,
    /// Keep printing what is added until the sandbox stops.
    #[arg(short, long)]
    follow: bool,
    /// Which log (default: output for a sandbox with a command, else exec).
    #[arg(long, value_enum)]
    source: Option<Source>,
    /// With `--source console`: the console of the N-th boot before the last one (the
    /// last five boots are kept).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "source")]
    boot: usize,
}

/// Prints the log (and follows it).
pub async fn run(args: LogsArgs) -> Result<i32> {
    let msb = Microsandbox::from_env();
    let info = msb.get(&args.name).await?;
    let source = args.source.unwrap_or(if info.spec.command.is_some() {
        Source::Output
    } else {
        Source::Exec
    });
    let file = match source {
        Source::Output => "output.log",
        Source::Exec => "exec.log",
        Source::Console => "console.log",
        Source::Supervisor => "supervisor.log",
    };
    let mut path = msb.paths().sandbox_dir(&args.name).join("logs").join(file);
    if source == Source::Console {
        path = microsandbox::console_log_of_boot(&path, args.boot);
    } else if args.boot > 0 {
        anyhow::bail!("--boot applies to --source console only");
    }
    let mut offset = 0u64;
    let mut out = std::io::stdout();
    loop {
        offset += copy_from(&path, offset, &mut out)?;
        if !args.follow {
            return Ok(0);
        }
        let running = msb
            .get(&args.name)
            .await
            .is_ok_and(|i| i.state == SandboxState::Running);
        if !running {
            // What was written while it stopped.
            copy_from(&path, offset, &mut out)?;
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Copies `path` from byte `offset` to `out`; returns how many bytes (0 when it is missing).
fn copy_from(path: &std::path::Path, offset: u64, out: &mut impl Write) -> Result<u64> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(0);
    };
    f.seek(SeekFrom::Start(offset))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    out.write_all(&buf)?;
    out.flush()?;
    Ok(buf.len() as u64)
}
