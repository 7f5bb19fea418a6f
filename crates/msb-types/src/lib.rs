//! Shared plain data: what a user asks of a sandbox, with validation, and where things live.

mod detach_keys;
mod error;
mod image;
mod mount;
mod name;
mod net;
mod patch;
mod paths;
mod rlimit;
mod signal;
mod size;
mod spec;
mod users;

pub use detach_keys::{DetachKeys, DetachKeysError, DetachMatcher, Scanned};
pub use error::{Field, SpecError};
pub use image::{ImageConfig, ImageRecord, LayerRecord, Platform, PlatformError};
pub use mount::{check_guest_path, check_mounts, is_host_path, normal_guest_path, Mount};
pub use name::{validate_name, NameError};
pub use net::{
    domain_matches, host_pattern_matches, normalize_domain, normalize_host_pattern, suffix_matches, Action, Cidr,
    Destination, Direction, DnsSpec, Group, InterceptCa, NetPolicy, NetworkSpec, PortRange, Protocol, PublishedPort,
    Rule, SecretInjection, SecretSpec, TlsSpec, Transport, ViolationAction, DEFAULT_DNS_QUERY_TIMEOUT_MS,
    DEFAULT_INTERCEPT_PORT, DEFAULT_MAX_CONNECTIONS, DEFAULT_PUBLISH_IP,
};
pub use patch::{guest_path_components, GuestPathError, Patch};
pub use paths::Paths;
pub use rlimit::{merge_rlimits, Rlimit, RlimitResource};
pub use signal::parse_signal;
pub use size::parse_size_mib;
pub use spec::{
    parse_env, DiskImageFormat, PinnedImage, Resources, RootSpec, SandboxSpec, DEFAULT_CPUS, DEFAULT_MEMORY_MIB,
    DEFAULT_UPPER_SIZE_MIB, MAX_CPUS, MAX_SCRIPT_BYTES, MIN_MEMORY_MIB, MIN_UPPER_SIZE_MIB,
};
pub use users::{resolve_user, Identity};
