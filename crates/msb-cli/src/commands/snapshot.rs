//! `msb snapshot create|ls|inspect|rm`: running sandboxes saved whole, resumed with
//! `msb create NEW --from-snapshot SNAP`.

use crate::output::{rfc3339, table, ListFormat, QuietArg};
use crate::progress::human_bytes;
use anyhow::Result;
use microsandbox::Microsandbox;

/// Snapshot subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save a running sandbox (memory, processes, its writable layer) as a snapshot; it
    /// pauses for the save and runs on. Image roots without mounts only.
    Create {
        /// The running sandbox.
        sandbox: String,
        /// The snapshot's name (as sandbox names).
        name: String,
        #[command(flatten)]
        quiet: QuietArg,
    },
    /// List snapshots.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        format: ListFormat,
    },
    /// Show a snapshot as JSON.
    Inspect {
        /// The snapshot.
        name: String,
    },
    /// Remove snapshots (sandboxes made from them keep what they took).
    #[command(alias = "remove")]
    Rm {
        /// The snapshots.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        quiet: QuietArg,
    },
}

/// Runs a snapshot subcommand.
pub async fn run(cmd: SnapshotCommand) -> Result<i32> {
    let snapshots = Microsandbox::from_env().snapshots();
    match cmd {
        SnapshotCommand::Create { sandbox, name, quiet } => {
            quiet.apply();
            let info = snapshots.create(&sandbox, &name).await?;
            if !crate::output::is_quiet() {
                println!("{}", info.name);
            }
        }
        SnapshotCommand::Ls { format } => {
            let all = snapshots.list()?;
            if format.quiet {
                all.iter().for_each(|s| println!("{}", s.name));
            } else if format.json() {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                let rows: Vec<[String; 5]> = all
                    .iter()
                    .map(|s| {
                        [
                            s.name.clone(),
                            s.sandbox.clone(),
                            s.image.clone(),
                            human_bytes(s.disk_bytes),
                            rfc3339(s.created_at),
                        ]
                    })
                    .collect();
                print!("{}", table(["NAME", "SANDBOX", "IMAGE", "SIZE", "CREATED"], &rows));
            }
        }
        SnapshotCommand::Inspect { name } => {
            println!("{}", serde_json::to_string_pretty(&snapshots.get(&name)?)?);
        }
        SnapshotCommand::Rm { names, quiet } => {
            quiet.apply();
            for name in names {
                snapshots.remove(&name)?;
                if !crate::output::is_quiet() {
                    println!("{name}");
                }
            }
        }
    }
    Ok(0)
}
