//! `msb snapshot create|ls|inspect|rm|save|load`: running sandboxes saved whole, resumed
//! with `msb create NEW --from-snapshot SNAP`.

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
    /// Write a snapshot to one file (a zstd-compressed tar), to keep it or move it to
    /// another home on this host (it resumes only under the msb, kernel, agent and QEMU it
    /// was taken with).
    Save {
        /// The snapshot.
        name: String,
        /// The new file, e.g. `work.tar.zst`.
        file: std::path::PathBuf,
    },
    /// Read a snapshot written by `msb snapshot save`.
    Load {
        /// The file.
        file: std::path::PathBuf,
        /// The snapshot's name here (default: the name it was saved under).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        quiet: QuietArg,
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
        SnapshotCommand::Save { name, file } => snapshots.save(&name, &file)?,
        SnapshotCommand::Load { file, name, quiet } => {
            quiet.apply();
            let info = snapshots.load(&file, name.as_deref())?;
            if !crate::output::is_quiet() {
                println!("{}", info.name);
            }
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
