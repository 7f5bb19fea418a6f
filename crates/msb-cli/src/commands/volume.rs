//! `msb volume create|ls|inspect|rm|prune`: named volumes, mounted with `-v NAME:/path`.

use crate::output::{rfc3339, table, ListFormat, QuietArg};
use crate::progress::human_bytes;
use anyhow::Result;
use microsandbox::{Microsandbox, Volume};

/// Volume subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume: a directory any number of sandboxes can mount, or with --size an
    /// ext4 disk of that size (the limit holds; one writer at a time).
    Create {
        /// Its name (as sandbox names: letters, digits, `.`, `-`, `_`).
        name: String,
        /// Make it a sized volume of this size (e.g. 1G, 512M).
        #[arg(long, value_name = "SIZE", value_parser = microsandbox::parse_size_mib)]
        size: Option<u32>,
        /// A label: KEY=VALUE; repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = crate::sandbox_args::parse_label)]
        labels: Vec<(String, String)>,
        #[command(flatten)]
        quiet: QuietArg,
    },
    /// List volumes, with what each holds and who mounts it.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        format: ListFormat,
    },
    /// Show a volume as JSON.
    Inspect {
        /// The volume.
        name: String,
    },
    /// Remove volumes and their contents (refused while a sandbox mounts one, unless -f).
    #[command(alias = "remove")]
    Rm {
        /// The volumes.
        #[arg(required = true)]
        names: Vec<String>,
        /// Remove even if sandboxes mount it.
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        quiet: QuietArg,
    },
    /// Remove every volume no sandbox mounts.
    Prune {
        #[command(flatten)]
        quiet: QuietArg,
    },
}

/// Runs a volume subcommand.
pub async fn run(cmd: VolumeCommand) -> Result<i32> {
    let volumes = Microsandbox::from_env().volumes();
    match cmd {
        VolumeCommand::Create {
            name,
            size,
            labels,
            quiet,
        } => {
            quiet.apply();
            let mut builder = volumes.builder(&name);
            for (k, v) in labels {
                builder = builder.label(k, v);
            }
            if let Some(mib) = size {
                builder = builder.quota(mib);
            }
            let volume = builder.create().await?;
            if !crate::output::is_quiet() {
                println!("{}", volume.name);
            }
        }
        VolumeCommand::Ls { format } => {
            let all = volumes.list().await?;
            if format.quiet {
                all.iter().for_each(|v| println!("{}", v.name));
                return Ok(0);
            }
            let users = volumes.all_users().await?;
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|v| describe(v, users.get(&v.name).cloned().unwrap_or_default()))
                .collect::<Result<_>>()?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(0);
            }
            let rows: Vec<[String; 4]> = rows
                .iter()
                .map(|r| {
                    [
                        r["name"].as_str().unwrap_or_default().to_string(),
                        human_bytes(r["used_bytes"].as_u64().unwrap_or(0)),
                        r["mounted_by"].as_array().map_or(0, Vec::len).to_string(),
                        r["created"].as_str().unwrap_or_default().to_string(),
                    ]
                })
                .collect();
            print!("{}", table(["NAME", "USED", "SANDBOXES", "CREATED"], &rows));
        }
        VolumeCommand::Inspect { name } => {
            let volume = volumes.get(&name).await?;
            let users = volumes.users(&name).await?;
            println!("{}", serde_json::to_string_pretty(&describe(&volume, users)?)?);
        }
        VolumeCommand::Rm { names, force, quiet } => {
            quiet.apply();
            for name in names {
                volumes.remove(&name, force).await?;
                if !crate::output::is_quiet() {
                    println!("{name}");
                }
            }
        }
        VolumeCommand::Prune { quiet } => {
            quiet.apply();
            for name in volumes.prune().await? {
                if !crate::output::is_quiet() {
                    println!("{name}");
                }
            }
        }
    }
    Ok(0)
}

fn describe(v: &Volume, mounted_by: Vec<String>) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "name": v.name,
        "kind": if v.size_bytes().is_some() { "sized" } else { "dir" },
        "size_bytes": v.size_bytes(),
        "path": v.path,
        "disk": v.disk(),
        "used_bytes": v.used_bytes()?,
        "mounted_by": mounted_by,
        "labels": v.labels,
        "created": rfc3339(v.created_at),
    }))
}
