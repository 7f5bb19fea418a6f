//! `msb ls` / `msb ps [-a] [--json]`: the sandboxes, running ones by default.

use crate::output::{ago, now, span};
use anyhow::Result;
use microsandbox::{Microsandbox, SandboxInfo, SandboxState};

/// Arguments of `msb ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Stopped and crashed sandboxes too.
    #[arg(short, long)]
    all: bool,
    /// JSON output (one array) for scripts.
    #[arg(long)]
    json: bool,
}

/// Prints the table (or JSON).
pub async fn run(args: LsArgs) -> Result<i32> {
    let sandboxes: Vec<SandboxInfo> = Microsandbox::from_env()
        .list()
        .await?
        .into_iter()
        .filter(|s| args.all || s.state == SandboxState::Running)
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sandboxes)?);
        return Ok(0);
    }
    if sandboxes.is_empty() {
        let hint = if args.all { "" } else { " running (see -a for all)" };
        eprintln!("no sandboxes{hint}");
        return Ok(0);
    }
    let rows: Vec<[String; 4]> = sandboxes
        .iter()
        .map(|s| [s.name.clone(), status(s), s.source(), ago(s.created_at)])
        .collect();
    print!("{}", table(["NAME", "STATUS", "IMAGE/ROOT", "CREATED"], &rows));
    Ok(0)
}

/// Rows under a header, each column as wide as its widest cell (two spaces between).
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(std::array::from_fn(|i| row[i].as_str())));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_whatever_the_cell_widths() {
        let rows = [
            [
                "a".to_string(),
                "stopped 2 hours ago (the guest kernel panicked: Attempted to kill init!)".into(),
                "img".into(),
                "now".into(),
            ],
            [
                "bb".to_string(),
                "running 5 seconds".into(),
                "/some/long/root/path".into(),
                "1 day ago".into(),
            ],
        ];
        let text = table(["NAME", "STATUS", "IMAGE/ROOT", "CREATED"], &rows);
        let starts: Vec<usize> = text
            .lines()
            .map(|l| l.find("img").or(l.find("/some")).or(l.find("IMAGE")).unwrap())
            .collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}
