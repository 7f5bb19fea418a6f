//! Detach keys: the key sequence that lets go of an attached terminal session, leaving its
//! process running. Docker's syntax: comma-separated keys, each `ctrl-<c>` or one plain
//! character (`ctrl-p,ctrl-q`).

use std::fmt;
use std::str::FromStr;

/// A parsed detach sequence (one or more bytes as the terminal sends them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    bytes: Vec<u8>,
    spec: String,
}

/// Why a detach sequence did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid detach keys '{spec}': {problem} (write e.g. ctrl-p,ctrl-q or ctrl-])")]
pub struct DetachKeysError {
    spec: String,
    problem: String,
}

impl DetachKeys {
    /// The bytes the terminal sends for the sequence.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Default for DetachKeys {
    /// `ctrl-]`, as the reference (telnet's escape; Docker's `ctrl-p,ctrl-q` clashes with
    /// shells' history keys).
    fn default() -> Self {
        DetachKeys {
            bytes: vec![0x1d],
            spec: "ctrl-]".into(),
        }
    }
}

impl fmt::Display for DetachKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

impl FromStr for DetachKeys {
    type Err = DetachKeysError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |problem: String| DetachKeysError {
            spec: spec.into(),
            problem,
        };
        let bytes = spec
            .split(',')
            .map(|key| key_byte(key).ok_or_else(|| fail(format!("'{key}' is not a key"))))
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(DetachKeys {
            bytes,
            spec: spec.into(),
        })
    }
}

/// The byte of one key: a printable ASCII character, or `ctrl-` with `@`, a letter, or one
/// of `[\]^_` (the control codes 0–31).
fn key_byte(key: &str) -> Option<u8> {
    match key.strip_prefix("ctrl-") {
        Some(rest) => match rest.as_bytes() {
            [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
            [c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => Some(c - b'@'),
            _ => None,
        },
        None => match key.as_bytes() {
            [c] if c.is_ascii_graphic() => Some(*c),
            _ => None,
        },
    }
}

/// Watches input for a detach sequence. Bytes that might begin it are held back until it
/// is clear whether they do, so a sequence never reaches the guest. (Sequences are a few
/// bytes: re-checking the held bytes on a mismatch costs less than a KMP table.)
#[derive(Debug, Clone)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    matched: usize,
}

/// What [`DetachMatcher::feed`] found in a chunk of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned {
    /// No sequence: pass these bytes on.
    Input(Vec<u8>),
    /// The sequence was typed: pass on the bytes before it, then detach.
    Detach(Vec<u8>),
}

impl DetachMatcher {
    /// A matcher for `keys`.
    pub fn new(keys: &DetachKeys) -> Self {
        DetachMatcher {
            keys: keys.bytes.clone(),
            matched: 0,
        }
    }

    /// Scans `input`, keeping any partial match for the next chunk.
    pub fn feed(&mut self, input: &[u8]) -> Scanned {
        let mut pass = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return Scanned::Detach(pass);
                }
                continue;
            }
            // Not the sequence here: the held-back bytes plus this one are input, except
            // their longest tail that begins the sequence anew (`ctrl-p ctrl-p ctrl-q`).
            let mut held = self.keys[..self.matched].to_vec();
            held.push(b);
            let restart = (1..held.len())
                .rev()
                .find(|&k| held[held.len() - k..] == self.keys[..k])
                .unwrap_or(0);
            pass.extend_from_slice(&held[..held.len() - restart]);
            self.matched = restart;
        }
        Scanned::Input(pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(spec: &str) -> DetachKeys {
        spec.parse().unwrap()
    }

    #[test]
    fn docker_syntax_parses_to_terminal_bytes() {
        assert_eq!(keys("ctrl-p,ctrl-q").bytes(), [0x10, 0x11]);
        assert_eq!(keys("ctrl-]").bytes(), [0x1d]);
        assert_eq!(keys("ctrl-@,x").bytes(), [0, b'x']);
        assert_eq!(DetachKeys::default().bytes(), [0x1d]);
        for bad in ["", "ctrl-", "ctrl-1", "ab", "ctrl-p,", " "] {
            let e = bad.parse::<DetachKeys>().unwrap_err().to_string();
            assert!(e.contains("invalid detach keys"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_sequence_split_across_reads_detaches_and_never_leaks() {
        let mut m = DetachMatcher::new(&keys("ctrl-p,ctrl-q"));
        assert_eq!(m.feed(b"ls\x10"), Scanned::Input(b"ls".to_vec()));
        assert_eq!(m.feed(b"\x11rest"), Scanned::Detach(Vec::new()));
    }

    #[test]
    fn a_false_start_is_passed_on_whole() {
        let mut m = DetachMatcher::new(&keys("ctrl-p,ctrl-q"));
        assert_eq!(m.feed(b"\x10a"), Scanned::Input(b"\x10a".to_vec()));
        // ctrl-p ctrl-p ctrl-q: the first is input, the last two detach.
        assert_eq!(m.feed(b"\x10\x10\x11"), Scanned::Detach(b"\x10".to_vec()));
    }

    #[test]
    fn any_input_splits_the_same_way() {
        let k = keys("a,b,a,c");
        let input = b"xaabaabacy";
        let whole = DetachMatcher::new(&k).feed(input);
        // Every cut before the sequence's last key.
        for cut in 0..input.len() - 1 {
            let mut m = DetachMatcher::new(&k);
            let first = m.feed(&input[..cut]);
            let Scanned::Input(mut got) = first else {
                panic!("detached early at {cut}")
            };
            match m.feed(&input[cut..]) {
                Scanned::Detach(rest) => got.extend(rest),
                Scanned::Input(_) => panic!("missed at {cut}"),
            }
            assert_eq!(Scanned::Detach(got), whole, "cut at {cut}");
        }
    }
}
