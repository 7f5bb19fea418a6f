//! What the CLI prints besides command output: notices, and times as people read them.

use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints a notice for a person at a terminal; stays quiet when stderr is piped.
pub fn notice(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("msb: {msg}");
    }
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
    fn spans_read_naturally() {
        assert_eq!(span(1), "1 second");
        assert_eq!(span(59), "59 seconds");
        assert_eq!(span(600), "10 minutes");
        assert_eq!(span(7200), "2 hours");
        assert_eq!(span(-5), "0 seconds");
        assert_eq!(span(3 * 86_400), "3 days");
    }
}
