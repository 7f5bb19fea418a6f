//! What the CLI prints besides command output: notices, and times as people read them.

use microsandbox::{BootError, Field, MicrosandboxError, SpecError};
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints a notice for a person at a terminal; stays quiet when stderr is piped.
pub fn notice(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("msb: {msg}");
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
/// name, the root, patches, the command).
fn flag(field: Field) -> Option<&'static str> {
    Some(match field {
        Field::Name | Field::Root | Field::Patches | Field::Command => return None,
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
    })
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
    fn spans_read_naturally() {
        assert_eq!(span(1), "1 second");
        assert_eq!(span(59), "59 seconds");
        assert_eq!(span(600), "10 minutes");
        assert_eq!(span(7200), "2 hours");
        assert_eq!(span(-5), "0 seconds");
        assert_eq!(span(3 * 86_400), "3 days");
    }
}
