//! `msb fs ls|cat|stat|write|mkdir|rm|mv|chmod|watch NAME PATH…`: a running sandbox's files,
//! through its agent, or a stopped one's directory root, on the host.

use crate::output::{rfc3339, table};
use anyhow::{bail, Result};
use microsandbox::{FsEntry, FsKind, HostFs, Microsandbox, MicrosandboxError, Sandbox, SandboxFs};
use std::io::{Read, Write};

/// File subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum FsCommand {
    /// List a directory.
    Ls {
        #[command(flatten)]
        at: At,
        /// JSON output (one array) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Print a file's contents.
    Cat {
        #[command(flatten)]
        at: At,
    },
    /// Show an entry (a symlink itself, not its target) as JSON.
    Stat {
        #[command(flatten)]
        at: At,
    },
    /// Write standard input to a file (created with its parents, or replaced).
    Write {
        #[command(flatten)]
        at: At,
        /// Permission bits of a new file, in octal (default 644).
        #[arg(long, value_parser = parse_mode)]
        mode: Option<u32>,
    },
    /// Create a directory and its missing parents.
    Mkdir {
        #[command(flatten)]
        at: At,
    },
    /// Remove a file (with -r, a directory and everything in it).
    Rm {
        #[command(flatten)]
        at: At,
        /// Remove a directory recursively.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Rename or move an entry.
    Mv {
        #[command(flatten)]
        at: At,
        /// The new path.
        to: String,
    },
    /// Print changes below a path as they happen (until Ctrl-C, or the path goes away).
    Watch {
        #[command(flatten)]
        at: At,
        /// Watch every directory below it too.
        #[arg(short, long)]
        recursive: bool,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Set permission bits (octal).
    Chmod {
        /// The sandbox.
        name: String,
        /// The bits, in octal (e.g. 755).
        #[arg(value_parser = parse_mode)]
        mode: u32,
        /// The guest path.
        path: String,
        /// Act as this guest user instead of root.
        #[arg(short, long)]
        user: Option<String>,
    },
}

/// A sandbox, a guest path, and whom to act as.
#[derive(clap::Args, Debug)]
pub struct At {
    /// The sandbox (running).
    name: String,
    /// The guest path (absolute).
    path: String,
    /// Act as this guest user (`uid[:gid]` or `name[:group]`) instead of root.
    #[arg(short, long)]
    user: Option<String>,
}

impl At {
    async fn open(&self) -> Result<Files> {
        Files::of(&self.name, &self.user).await
    }
}

/// Where a verb acts: in the running guest, or, for a stopped sandbox with a directory
/// root, in that directory on the host (resolved as the guest would resolve it).
pub(crate) enum Files {
    Guest(Sandbox, Option<String>),
    AtRest(HostFs),
}

impl Files {
    pub(crate) async fn of(name: &str, user: &Option<String>) -> Result<Files> {
        let msb = Microsandbox::from_env();
        match msb.connect(name).await {
            Ok(sb) => Ok(Files::Guest(sb, user.clone())),
            Err(MicrosandboxError::SandboxNotRunning { .. }) => {
                let host = msb.files_at_rest(name).await?;
                if user.is_some() {
                    bail!("-u needs sandbox '{name}' running: at rest, its files are acted on as you");
                }
                Ok(Files::AtRest(host))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The guest's files, acted on as `user` (root when `None`).
pub(crate) fn guest_fs<'a>(sb: &'a Sandbox, user: &Option<String>) -> SandboxFs<'a> {
    match user {
        Some(user) => sb.fs().as_user(user),
        None => sb.fs(),
    }
}

/// Runs a file subcommand.
pub async fn run(cmd: FsCommand) -> Result<i32> {
    use Files::{AtRest, Guest};
    match cmd {
        FsCommand::Ls { at, json } => {
            let entries = match at.open().await? {
                Guest(sb, user) => guest_fs(&sb, &user).list(&at.path).await?,
                AtRest(host) => host.list(&at.path)?,
            };
            if json {
                let rows: Vec<_> = entries.iter().map(entry_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let rows: Vec<[String; 5]> = entries.iter().map(entry_row).collect();
                print!("{}", table(["MODE", "OWNER", "SIZE", "MODIFIED", "NAME"], &rows));
            }
        }
        FsCommand::Cat { at } => {
            let mut stdout = std::io::stdout().lock();
            match at.open().await? {
                Guest(sb, user) => {
                    let mut stream = guest_fs(&sb, &user).read_stream(&at.path).await?;
                    while let Some(chunk) = stream.recv().await? {
                        stdout.write_all(&chunk)?;
                    }
                }
                AtRest(host) => {
                    std::io::copy(&mut host.open_file(&at.path)?, &mut stdout)?;
                }
            }
            stdout.flush()?;
        }
        FsCommand::Stat { at } => {
            let entry = match at.open().await? {
                Guest(sb, user) => guest_fs(&sb, &user).stat(&at.path).await?,
                AtRest(host) => host.stat(&at.path)?,
            };
            println!("{}", serde_json::to_string_pretty(&entry_json(&entry))?);
        }
        FsCommand::Write { at, mode } => {
            let mut chunks = stdin_chunks();
            match at.open().await? {
                Guest(sb, user) => {
                    let mut sink = guest_fs(&sb, &user).write_stream(&at.path, mode).await?;
                    while let Some(chunk) = chunks.recv().await {
                        sink.write(&chunk?).await?;
                    }
                    sink.close().await?;
                }
                AtRest(host) => {
                    let new = !host.exists(&at.path)?;
                    let mut file = host.create_file(&at.path)?;
                    while let Some(chunk) = chunks.recv().await {
                        file.write_all(&chunk?)?;
                    }
                    if let (true, Some(mode)) = (new, mode) {
                        host.chmod(&at.path, mode)?;
                    }
                }
            }
        }
        FsCommand::Mkdir { at } => match at.open().await? {
            Guest(sb, user) => guest_fs(&sb, &user).mkdir(&at.path).await?,
            AtRest(host) => host.mkdir(&at.path)?,
        },
        FsCommand::Rm { at, recursive } => match (at.open().await?, recursive) {
            (Guest(sb, user), true) => guest_fs(&sb, &user).remove_dir(&at.path).await?,
            (Guest(sb, user), false) => guest_fs(&sb, &user).remove(&at.path).await?,
            (AtRest(host), true) => host.remove_dir(&at.path)?,
            (AtRest(host), false) => host.remove(&at.path)?,
        },
        FsCommand::Mv { at, to } => match at.open().await? {
            Guest(sb, user) => guest_fs(&sb, &user).rename(&at.path, &to).await?,
            AtRest(host) => host.rename(&at.path, &to)?,
        },
        FsCommand::Watch { at, recursive, json } => {
            // Only a running guest has changes to report.
            let sb = Microsandbox::from_env().connect(&at.name).await?;
            watch(guest_fs(&sb, &at.user), &at.path, recursive, json).await?;
        }
        FsCommand::Chmod { name, mode, path, user } => match Files::of(&name, &user).await? {
            Guest(sb, user) => guest_fs(&sb, &user).chmod(&path, mode).await?,
            AtRest(host) => host.chmod(&path, mode)?,
        },
    }
    Ok(0)
}

/// Prints changes below `path` as they come, until Ctrl-C or the watch ends.
async fn watch(fs: SandboxFs<'_>, path: &str, recursive: bool, json: bool) -> Result<()> {
    let mut watcher = fs.watch(path, recursive).await?;
    let mut stopping = false;
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c(), if !stopping => {
                stopping = true;
                watcher.stop().await?;
                continue;
            }
            event = watcher.next() => event?,
        };
        let Some(event) = event else { return Ok(()) };
        let mut stdout = std::io::stdout().lock();
        if json {
            let line = serde_json::json!({
                "kind": event.kind.to_string(),
                "path": event.path,
                "is_dir": event.is_dir,
            });
            writeln!(stdout, "{line}")?;
        } else {
            let slash = if event.is_dir { "/" } else { "" };
            writeln!(stdout, "{:<8} {}{slash}", event.kind.to_string(), event.path)?;
        }
        stdout.flush()?;
    }
}

/// Standard input in chunks until its end, read on a thread of its own (a terminal read
/// never ends early).
pub(crate) fn stdin_chunks() -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut buf = vec![0u8; 256 * 1024];
            let read = stdin.read(&mut buf).map(|n| {
                buf.truncate(n);
                buf
            });
            match read {
                Ok(b) if b.is_empty() => return,
                Ok(b) => {
                    if tx.blocking_send(Ok(b)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("'{text}' is not an octal mode (0-7777)"))
}

fn kind_name(kind: FsKind) -> &'static str {
    match kind {
        FsKind::File => "file",
        FsKind::Dir => "dir",
        FsKind::Symlink => "symlink",
        FsKind::Other => "other",
    }
}

/// Seconds since the epoch of its last modification.
fn modified(entry: &FsEntry) -> i64 {
    entry.modified_ns.div_euclid(1_000_000_000)
}

fn entry_json(entry: &FsEntry) -> serde_json::Value {
    serde_json::json!({
        "name": entry.name,
        "kind": kind_name(entry.kind),
        "size": entry.size,
        "mode": format!("{:04o}", entry.mode),
        "uid": entry.uid,
        "gid": entry.gid,
        "nlink": entry.nlink,
        "modified": rfc3339(modified(entry)),
    })
}

fn entry_row(entry: &FsEntry) -> [String; 5] {
    let kind = match entry.kind {
        FsKind::Dir => 'd',
        FsKind::Symlink => 'l',
        FsKind::File => '-',
        FsKind::Other => '?',
    };
    [
        format!("{kind}{:04o}", entry.mode),
        format!("{}:{}", entry.uid, entry.gid),
        entry.size.to_string(),
        rfc3339(modified(entry)),
        entry.name.clone(),
    ]
}
