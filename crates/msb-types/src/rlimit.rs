//! Resource limits for guest processes (`setrlimit`), as `RES=N` or `RES=SOFT:HARD`.

use crate::{Field, SpecError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A resource `setrlimit(2)` limits; names as in `ulimit`'s man page and the reference
/// (lowercase on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RlimitResource {
    /// CPU time, seconds.
    Cpu,
    /// Largest file a process may create, bytes.
    Fsize,
    /// Data segment, bytes.
    Data,
    /// Stack, bytes.
    Stack,
    /// Core file size, bytes.
    Core,
    /// Resident set (not enforced by Linux).
    Rss,
    /// Processes of the user.
    Nproc,
    /// Open files.
    Nofile,
    /// Locked memory, bytes.
    Memlock,
    /// Address space, bytes.
    As,
    /// File locks.
    Locks,
    /// Pending signals.
    Sigpending,
    /// POSIX message queues, bytes.
    Msgqueue,
    /// Nice ceiling.
    Nice,
    /// Real-time priority ceiling.
    Rtprio,
    /// Real-time CPU time, microseconds.
    Rttime,
}

impl RlimitResource {
    /// Every resource, in `RLIMIT_*` order.
    pub const ALL: [RlimitResource; 16] = [
        RlimitResource::Cpu,
        RlimitResource::Fsize,
        RlimitResource::Data,
        RlimitResource::Stack,
        RlimitResource::Core,
        RlimitResource::Rss,
        RlimitResource::Nproc,
        RlimitResource::Nofile,
        RlimitResource::Memlock,
        RlimitResource::As,
        RlimitResource::Locks,
        RlimitResource::Sigpending,
        RlimitResource::Msgqueue,
        RlimitResource::Nice,
        RlimitResource::Rtprio,
        RlimitResource::Rttime,
    ];

    /// The lowercase name (`nofile`).
    pub fn name(self) -> &'static str {
        match self {
            RlimitResource::Cpu => "cpu",
            RlimitResource::Fsize => "fsize",
            RlimitResource::Data => "data",
            RlimitResource::Stack => "stack",
            RlimitResource::Core => "core",
            RlimitResource::Rss => "rss",
            RlimitResource::Nproc => "nproc",
            RlimitResource::Nofile => "nofile",
            RlimitResource::Memlock => "memlock",
            RlimitResource::As => "as",
            RlimitResource::Locks => "locks",
            RlimitResource::Sigpending => "sigpending",
            RlimitResource::Msgqueue => "msgqueue",
            RlimitResource::Nice => "nice",
            RlimitResource::Rtprio => "rtprio",
            RlimitResource::Rttime => "rttime",
        }
    }

    /// The `RLIMIT_*` number on Linux (x86_64).
    pub fn linux_number(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for RlimitResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RlimitResource {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let wanted = s.trim().to_ascii_lowercase();
        let wanted = wanted.strip_prefix("rlimit_").unwrap_or(&wanted);
        RlimitResource::ALL
            .into_iter()
            .find(|r| r.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = RlimitResource::ALL.iter().map(|r| r.name()).collect();
                SpecError::new(
                    Field::Rlimits,
                    format!(
                        "'{}' is not a resource (use one of {})",
                        s.chars().take(40).collect::<String>(),
                        names.join(", ")
                    ),
                )
            })
    }
}

/// A limit on one resource: `soft` applies, `hard` is how far the process may raise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The resource.
    pub resource: RlimitResource,
    /// The limit in force.
    pub soft: u64,
    /// The ceiling for `soft`.
    pub hard: u64,
}

impl Rlimit {
    /// A limit whose soft and hard values are both `n`.
    pub fn new(resource: RlimitResource, n: u64) -> Rlimit {
        Rlimit {
            resource,
            soft: n,
            hard: n,
        }
    }

    /// Checks soft ≤ hard.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.soft > self.hard {
            return Err(SpecError::new(
                Field::Rlimits,
                format!(
                    "{}: the soft limit {} is above the hard limit {}",
                    self.resource, self.soft, self.hard
                ),
            ));
        }
        Ok(())
    }
}

impl FromStr for Rlimit {
    type Err = SpecError;

    /// `RES=N` or `RES=SOFT:HARD` (`unlimited` for no limit).
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = |why: &str| SpecError::new(Field::Rlimits, format!("'{s}': {why} (use RES=N or RES=SOFT:HARD)"));
        let (resource, value) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
        let resource: RlimitResource = resource.parse()?;
        let number = |v: &str| match v.trim() {
            "unlimited" | "-1" => Ok(u64::MAX),
            n => n.parse::<u64>().map_err(|_| bad("not a number")),
        };
        let limit = match value.split_once(':') {
            Some((soft, hard)) => Rlimit {
                resource,
                soft: number(soft)?,
                hard: number(hard)?,
            },
            None => Rlimit::new(resource, number(value)?),
        };
        limit.validate()?;
        Ok(limit)
    }
}

/// `base` with `over` applied on top: one limit per resource, `over` winning.
pub fn merge_rlimits(base: &[Rlimit], over: &[Rlimit]) -> Vec<Rlimit> {
    let mut out: Vec<Rlimit> = base
        .iter()
        .filter(|b| !over.iter().any(|o| o.resource == b.resource))
        .copied()
        .collect();
    out.extend(over.iter().copied());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_check() {
        assert_eq!(
            "nofile=1024".parse::<Rlimit>().unwrap(),
            Rlimit::new(RlimitResource::Nofile, 1024)
        );
        let r: Rlimit = "NPROC=10:20".parse().unwrap();
        assert_eq!((r.resource, r.soft, r.hard), (RlimitResource::Nproc, 10, 20));
        assert_eq!("core=unlimited".parse::<Rlimit>().unwrap().soft, u64::MAX);
        for bad in ["nofile", "nofiles=1", "nofile=x", "nofile=20:10", "=1"] {
            assert_eq!(bad.parse::<Rlimit>().unwrap_err().field, Field::Rlimits, "{bad}");
        }
        assert!("nofil=1".parse::<Rlimit>().unwrap_err().problem.contains("nofile"));
        assert_eq!(RlimitResource::Nofile.linux_number(), 7);
        assert_eq!(RlimitResource::Rttime.linux_number(), 15);
    }

    #[test]
    fn later_limits_win_per_resource() {
        let base = [
            Rlimit::new(RlimitResource::Nofile, 10),
            Rlimit::new(RlimitResource::Nproc, 5),
        ];
        let over = [Rlimit::new(RlimitResource::Nofile, 99)];
        assert_eq!(
            merge_rlimits(&base, &over),
            [
                Rlimit::new(RlimitResource::Nproc, 5),
                Rlimit::new(RlimitResource::Nofile, 99)
            ]
        );
    }
}
