//! What the CLI prints besides command output: notices, and times as people read them.

use microsandbox::{BootError, Field, MicrosandboxError, SpecError};
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

/// Set by `-q`: no notices or progress on stderr, errors only.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Silences notices and progress for the rest of this run.
pub fn set_quiet() {
    QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `-q` silenced notices and progress.
pub fn is_quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// `-q, --quiet`: no notices, progress or names of what was done; errors only.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct QuietArg {
    /// No notices or progress on stderr, nothing on stdout for what succeeded (errors only).
    #[arg(short = 'q', long)]
    quiet: bool,
}

impl QuietArg {
    /// Silences this run if `-q` was given.
    pub fn apply(self) {
        if self.quiet {
            set_quiet();
        }
    }
}

/// Prints a notice for a person at a terminal; stays quiet when stderr is piped.
pub fn notice(msg: &str) {
    if std::io::stderr().is_terminal() && !is_quiet() {
        eprintln!("msb: {msg}");
    }
}

/// `arg` as one POSIX shell word: as it is when it holds only characters no shell treats
/// specially, else single-quoted.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=,:@%+".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Ends `msb` for a command line it cannot parse: help and version as clap prints them,
/// anything else as one `msb: error:` line (plus clap's tip, if any, as a hint) and 125.
pub fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let (message, hint) = usage_lines(&text);
    eprintln!("msb: error: {message}");
    eprintln!("hint: {}", hint.unwrap_or("see `msb --help`, or `msb COMMAND --help`"));
    std::process::exit(crate::EXIT_MSB_ERROR)
}

/// Clap's first line without its `error: ` and its tip, from its rendered error.
fn usage_lines(text: &str) -> (&str, Option<&str>) {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid command line");
    let message = first.strip_prefix("error:").map_or(first, str::trim);
    let hint = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("tip:"))
        .map(str::trim);
    (message, hint)
}

/// The one line that says why `msb` failed: each cause in turn, spec fields named by the
/// flags that set them.
pub fn error_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|cause| match spec_error(cause) {
            Some(spec) => match flag(spec.field) {
                Some(flag) => format!("{flag} {}", spec.problem),
                None => spec.problem.clone(),
            },
            None => cause.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

fn spec_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a SpecError> {
    if let Some(spec) = cause.downcast_ref::<SpecError>() {
        return Some(spec);
    }
    match cause.downcast_ref::<MicrosandboxError>()? {
        MicrosandboxError::InvalidSpec(spec) => Some(spec),
        MicrosandboxError::Boot(boot) => match &**boot {
            BootError::Spec(spec) => Some(spec),
            _ => None,
        },
        _ => None,
    }
}

/// The flag that sets a spec field; `None` for fields whose problems name themselves (the
/// name, the root, patches, the command, mounts, the network as a whole, DNS).
fn flag(field: Field) -> Option<&'static str> {
    Some(match field {
        Field::Name | Field::Root | Field::Patches | Field::Command | Field::Mounts | Field::Network | Field::Dns => {
            return None
        }
        Field::Cpus => "--cpus",
        Field::Memory => "--memory",
        Field::Hostname => "--hostname",
        Field::UpperSize => "--upper-size",
        Field::Env => "--env",
        Field::Workdir => "--workdir",
        Field::User => "--user",
        Field::IdleTimeout => "--idle-timeout",
        Field::MaxDuration => "--max-duration",
        Field::StopSignal => "--stop-signal",
        Field::Rlimits => "--rlimit",
        Field::Scripts => "--script",
        Field::Shell => "--shell",
        Field::Labels => "--label",
        Field::NetPolicy => "--net-rule",
        Field::Ports => "--port",
        Field::MaxConnections => "--max-connections",
        Field::Secrets => "--secret",
        Field::Tls => "--tls-*",
    })
}

/// Rows under a header, each column as wide as its widest cell (two spaces between).
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
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

/// How listing verbs print: a table for people, JSON or bare names for scripts.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ListFormat {
    /// JSON output (one array) for scripts.
    #[arg(long)]
    pub json: bool,
    /// Output format: `table` (default) or `json` (the same as --json).
    #[arg(long, value_name = "FORMAT", value_parser = ["table", "json"])]
    pub format: Option<String>,
    /// Names only, one per line.
    #[arg(short, long)]
    pub quiet: bool,
}

impl ListFormat {
    /// Whether JSON was asked for (`--json` or `--format json`).
    pub fn json(&self) -> bool {
        self.json || self.format.as_deref() == Some("json")
    }
}

/// RFC 3339 (UTC) of a time in seconds since the epoch.
pub fn rfc3339(secs: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `text` cut to `max` characters with an ellipsis, unless `full`.
pub fn trunc(text: &str, max: usize, full: bool) -> String {
    if full || text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `12 seconds`, `5 minutes`, `3 hours`, `2 days`: how long `secs` is, roughly.
pub fn span(secs: i64) -> String {
    let secs = secs.max(0);
    let (n, unit) = match secs {
        0..=119 => (secs, "second"),
        120..=7199 => (secs / 60, "minute"),
        7200..=172_799 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `5 minutes ago` for a time in seconds since the epoch.
pub fn ago(at: i64) -> String {
    format!("{} ago", span(now() - at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_only_when_needed_and_read_back_whole() {
        assert_eq!(shell_quote("-M"), "-M");
        assert_eq!(shell_quote("file=/a/b,format=raw"), "file=/a/b,format=raw");
        assert_eq!(shell_quote("console=ttyS0 quiet"), "'console=ttyS0 quiet'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let tricky = "a 'b' $c \"d\" `e` \\ *";
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {}", shell_quote(tricky))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), tricky);
    }

    #[test]
    fn usage_errors_become_one_line_and_a_hint() {
        let text = "error: unexpected argument '--cpu' found\n\n  tip: a similar argument exists: '--cpus'\n\nUsage: msb run [OPTIONS]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_lines(text),
            (
                "unexpected argument '--cpu' found",
                Some("a similar argument exists: '--cpus'")
            )
        );
        assert_eq!(usage_lines("error: bad\n"), ("bad", None));
    }

    #[test]
    fn spec_errors_name_flags() {
        let cpus = SpecError::new(Field::Cpus, "0 is out of range: use 1 to 64");
        let sdk: anyhow::Error = MicrosandboxError::InvalidSpec(cpus.clone()).into();
        assert_eq!(error_line(&sdk), "--cpus 0 is out of range: use 1 to 64");
        let boot: anyhow::Error = MicrosandboxError::from(BootError::Spec(cpus.clone())).into();
        assert_eq!(error_line(&boot), "--cpus 0 is out of range: use 1 to 64");
        let wrapped = anyhow::Error::new(SpecError::new(Field::Patches, "patch /x: bad")).context("--text x");
        assert_eq!(error_line(&wrapped), "--text x: patch /x: bad");
        assert_eq!(error_line(&anyhow::anyhow!("plain")), "plain");
    }

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

    #[test]
    fn long_cells_are_cut_unless_asked() {
        assert_eq!(trunc("abcdef", 4, false), "abc…");
        assert_eq!(trunc("abcdef", 4, true), "abcdef");
        assert_eq!(trunc("abc", 4, false), "abc");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(1), "1 second");
        assert_eq!(span(59), "59 seconds");
        assert_eq!(span(600), "10 minutes");
        assert_eq!(span(7200), "2 hours");
        assert_eq!(span(-5), "0 seconds");
        assert_eq!(span(3 * 86_400), "3 days");
    }
}
