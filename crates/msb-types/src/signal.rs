//! Signal names as images and users write them (`SIGTERM`, `TERM`, `15`), as numbers.

use crate::{Field, SpecError};

/// Standard Linux signal numbers by name (x86_64, as the guest runs).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// First real-time signal (glibc's SIGRTMIN; the kernel's is 32).
const RTMIN: i32 = 34;
/// Last real-time signal.
const RTMAX: i32 = 64;

/// The number of a signal written as `SIGTERM`, `TERM`, `term`, `15` or `SIGRTMIN+3`.
pub fn parse_signal(text: &str, field: Field) -> Result<i32, SpecError> {
    let bad = || {
        SpecError::new(
            field,
            format!(
                "'{}' is not a signal (use a name like SIGTERM or a number 1-64)",
                text.chars().take(40).collect::<String>()
            ),
        )
    };
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=RTMAX).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = SIGNALS.iter().find(|(s, _)| *s == name) {
        return Ok(*n);
    }
    let rt = |base: i32, offset: &str| -> Option<i32> {
        let n = if offset.is_empty() {
            0
        } else {
            offset.parse::<i32>().ok()?
        };
        let sig = base + n;
        (RTMIN..=RTMAX).contains(&sig).then_some(sig)
    };
    match (name.strip_prefix("RTMIN"), name.strip_prefix("RTMAX")) {
        (Some(rest), _) => rt(RTMIN, rest.strip_prefix('+').unwrap_or(rest)),
        (_, Some(rest)) => rt(RTMAX, rest),
        _ => None,
    }
    .ok_or_else(bad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse() {
        for (text, n) in [
            ("SIGTERM", 15),
            ("TERM", 15),
            ("sigint", 2),
            ("9", 9),
            ("SIGRTMIN+3", 37),
            ("RTMAX-1", 63),
            ("SIGRTMIN", 34),
        ] {
            assert_eq!(parse_signal(text, Field::StopSignal).unwrap(), n, "{text}");
        }
        for bad in ["", "0", "65", "-1", "SIGFOO", "RTMIN+40", "TERM2"] {
            assert_eq!(
                parse_signal(bad, Field::StopSignal).unwrap_err().field,
                Field::StopSignal,
                "{bad}"
            );
        }
    }
}
