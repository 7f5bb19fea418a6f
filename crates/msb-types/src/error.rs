//! Validation errors that name the field of the spec they are about.

use std::fmt;

/// A field of a sandbox spec, as validation errors name it. Front ends map fields to their
/// own spelling (the CLI to its flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The sandbox name.
    Name,
    /// The root filesystem (image or path).
    Root,
    /// Virtual CPUs.
    Cpus,
    /// Guest memory.
    Memory,
    /// Guest hostname.
    Hostname,
    /// Root filesystem patches.
    Patches,
    /// Size of the writable upper layer.
    UpperSize,
    /// Environment variables.
    Env,
    /// Working directory.
    Workdir,
    /// User processes run as.
    User,
    /// The idle timeout.
    IdleTimeout,
    /// The maximum duration.
    MaxDuration,
    /// The command (argv) of a process.
    Command,
    /// The signal that asks the sandbox's processes to stop.
    StopSignal,
    /// Resource limits of guest processes.
    Rlimits,
    /// Scripts put on the guest's PATH.
    Scripts,
    /// The shell of `shell` calls.
    Shell,
    /// Labels.
    Labels,
    /// Mounts besides the root (`-v`, `--tmpfs`).
    Mounts,
    /// The network as a whole (whether it exists).
    Network,
    /// Secrets (`--secret`).
    Secrets,
    /// TLS interception (`--tls-*`).
    Tls,
    /// The network policy: its preset and rules.
    NetPolicy,
    /// Published ports.
    Ports,
    /// DNS settings.
    Dns,
    /// Flows open at once.
    MaxConnections,
}

impl Field {
    /// The field's name in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Root => "root",
            Field::Cpus => "cpus",
            Field::Memory => "memory",
            Field::Hostname => "hostname",
            Field::Patches => "patches",
            Field::UpperSize => "upper_size",
            Field::Env => "env",
            Field::Workdir => "workdir",
            Field::User => "user",
            Field::IdleTimeout => "idle_timeout",
            Field::MaxDuration => "max_duration",
            Field::Command => "command",
            Field::StopSignal => "stop_signal",
            Field::Rlimits => "rlimits",
            Field::Scripts => "scripts",
            Field::Shell => "shell",
            Field::Labels => "labels",
            Field::Mounts => "mounts",
            Field::Network => "network",
            Field::Secrets => "secrets",
            Field::Tls => "tls",
            Field::NetPolicy => "network.policy",
            Field::Ports => "network.ports",
            Field::Dns => "network.dns",
            Field::MaxConnections => "network.max_connections",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A spec value that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// The field at fault.
    pub field: Field,
    /// What is wrong with its value, and what would be right.
    pub problem: String,
}

impl SpecError {
    /// An error about `field`.
    pub fn new(field: Field, problem: impl Into<String>) -> SpecError {
        SpecError {
            field,
            problem: problem.into(),
        }
    }
}
