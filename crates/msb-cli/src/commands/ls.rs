//! `msb ls` / `ps` / `status` / `list [NAME…]`: the sandboxes; running and crashed ones by
//! default (a crash is something to see), all with `-a`.

use crate::output::{ago, now, rfc3339, span, table, trunc, ListFormat};
use anyhow::Result;
use microsandbox::{Microsandbox, SandboxInfo, SandboxState};

/// Arguments of `msb ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only these sandboxes (any state).
    names: Vec<String>,
    /// Stopped sandboxes too.
    #[arg(short, long)]
    all: bool,
    /// Running ones only.
    #[arg(long, conflicts_with_all = ["all", "stopped"])]
    running: bool,
    /// Stopped and crashed ones only.
    #[arg(long, conflicts_with = "all")]
    stopped: bool,
    /// Show long cells whole.
    #[arg(long)]
    no_trunc: bool,
    #[command(flatten)]
    format: ListFormat,
}

impl LsArgs {
    fn shows(&self, s: &SandboxInfo) -> bool {
        if !self.names.is_empty() {
            return self.names.contains(&s.name);
        }
        match s.state {
            _ if self.all => true,
            SandboxState::Running => !self.stopped,
            SandboxState::Crashed => !self.running,
            SandboxState::Stopped | SandboxState::Created => self.stopped,
        }
    }
}

/// Prints the table (or JSON, or names).
pub async fn run(args: LsArgs) -> Result<i32> {
    let sandboxes: Vec<SandboxInfo> = Microsandbox::from_env()
        .list()
        .await?
        .into_iter()
        .filter(|s| args.shows(s))
        .collect();
    // Names that are not there are reported and make the exit status 1, like the verbs that
    // take several names; the others are still listed.
    let missing: Vec<&String> = args
        .names
        .iter()
        .filter(|n| !sandboxes.iter().any(|s| &s.name == *n))
        .collect();
    for name in &missing {
        eprintln!("msb: error: sandbox '{name}' not found (see `msb ls -a`)");
    }
    let code = i32::from(!missing.is_empty());
    if args.format.json() {
        let rows: Vec<serde_json::Value> = sandboxes.iter().map(json_row).collect::<Result<_>>()?;
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(code);
    }
    if args.format.quiet {
        for s in &sandboxes {
            println!("{}", s.name);
        }
        return Ok(code);
    }
    if sandboxes.is_empty() {
        let hint = if args.all {
            ""
        } else {
            " running or crashed (see -a for all)"
        };
        if args.names.is_empty() {
            eprintln!("no sandboxes{hint}");
        }
        return Ok(code);
    }
    let full = args.no_trunc;
    let rows: Vec<[String; 5]> = sandboxes
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                trunc(&status(s), 60, full),
                trunc(&s.source(), 48, full),
                trunc(&ports(s), 48, full),
                ago(s.created_at),
            ]
        })
        .collect();
    print!("{}", table(["NAME", "STATUS", "IMAGE/ROOT", "PORTS", "CREATED"], &rows));
    Ok(code)
}

/// A sandbox for scripts: its record with absolute UTC times (RFC 3339).
fn json_row(s: &SandboxInfo) -> Result<serde_json::Value> {
    let mut row = serde_json::to_value(s)?;
    if let Some(obj) = row.as_object_mut() {
        for key in ["created_at", "updated_at", "started_at", "stopped_at"] {
            if let Some(secs) = obj.get(key).and_then(serde_json::Value::as_i64) {
                obj.insert(key.into(), rfc3339(secs).into());
            }
        }
    }
    Ok(row)
}

/// Published ports as docker shows them: `127.0.0.1:8080->80/tcp, …`.
fn ports(s: &SandboxInfo) -> String {
    let shown: Vec<String> = s
        .spec
        .network
        .ports
        .iter()
        .map(|p| {
            let host = std::net::SocketAddr::new(p.host_ip, p.host_port);
            format!("{host}->{}/{}", p.guest_port, p.transport)
        })
        .collect();
    shown.join(", ")
}

/// `running 5 minutes`, `stopped 2 hours ago (idle timeout)`, `crashed …`.
fn status(s: &SandboxInfo) -> String {
    match s.state {
        SandboxState::Running => format!("running {}", span(now() - s.started_at.unwrap_or(s.created_at))),
        SandboxState::Created => "created".into(),
        state => {
            let when = s.stopped_at.map(ago).unwrap_or_default();
            let why = s.exit_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            format!("{} {when}{why}", state.as_str().to_lowercase())
        }
    }
}
