//! Message types exchanged between host and agent.

use serde::{Deserialize, Serialize};

/// One protocol message. The variant order is part of the wire format: append only,
/// and bump [`crate::PROTOCOL_VERSION`] on any incompatible change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Host → agent, first message on the control session.
    Hello(Hello),
    /// Agent → host, answer to `Hello` once the guest root is ready.
    Ready(Ready),
    /// Host → agent: start a process; the frame's id names the new session.
    Exec(ExecRequest),
    /// Agent → host: the process of this session started.
    Started {
        /// Guest pid of the process.
        pid: u32,
    },
    /// Agent → host: the process could not be started; the session is over.
    SpawnFailed(SpawnFailure),
    /// Host → agent: bytes for the process's stdin (or PTY input).
    Stdin(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Host → agent: no more stdin.
    StdinEof,
    /// Agent → host: bytes the process wrote to stdout (or its PTY).
    Stdout(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Agent → host: bytes the process wrote to stderr.
    Stderr(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Either way: the receiver consumed `bytes` of `stream`; the sender may send that much more.
    Credit {
        /// Which stream the credit is for.
        stream: StreamKind,
        /// How many bytes were consumed.
        bytes: u32,
    },
    /// Host → agent: deliver a signal to the process.
    Signal(i32),
    /// Host → agent: the terminal was resized.
    Resize(WindowSize),
    /// Agent → host: the process ended and all its output was sent; the session is over.
    Exited(ExitStatus),
    /// Host → agent (control session): stop processes, sync filesystems, power off.
    Shutdown(ShutdownRequest),
    /// Agent → host: a request could not be served.
    Error(String),
    /// Client → supervisor: the first message of a client connection. With `owner`, the
    /// sandbox stops (and an ephemeral one is removed) when this connection closes.
    Connect {
        /// The client's protocol version.
        version: u32,
        /// Whether the sandbox lives only as long as this connection.
        owner: bool,
    },
    /// Host → agent: measure resource use; answered with `Metrics` on the same session.
    MetricsRequest,
    /// Agent → host: resource use inside the guest; the session is over.
    Metrics(GuestMetrics),
    /// Client → supervisor: act on the sandbox; answered with `Done`, `SandboxMetrics` or
    /// `Error` on the same session.
    Control(Control),
    /// Supervisor → client: the control request was carried out; the session is over.
    Done,
    /// Supervisor → client: the sandbox's resource use; the session is over.
    SandboxMetrics(SandboxMetrics),
    /// Host → agent: are you there? Answered with `Pong` on the same session.
    Ping,
    /// Agent → host: the answer to `Ping`; the session is over.
    Pong,
    /// Agent → host (control session): every process is gone and the writable filesystems
    /// are synced and frozen clean; the VM powers off next.
    ShutdownComplete {
        /// Processes that had to be killed because they outlived the grace period.
        killed: u32,
    },
    /// Client → supervisor, on an exec session: the client lets go of it (detach keys). The
    /// process runs on with its output discarded; the session no longer ends with the
    /// client's connection.
    Release,
    /// Host → agent: a file operation; the frame's id names the new session. Contents
    /// travel as `Stdin` (writes) and `Stdout` (reads) under stream credit.
    Fs(crate::fs::FsRequest),
    /// Agent → host: the `FsOp::Watch` is in place; changes from now on are reported.
    FsWatching,
    /// Agent → host: a change seen by an `FsOp::Watch` (charged to stdout credit).
    FsEvent(crate::fs::FsEvent),
    /// Agent → host: the file operation succeeded; the session is over.
    FsDone(crate::fs::FsReply),
    /// Agent → host: the file operation failed; the session is over.
    FsFailed(crate::fs::FsFailure),
}

/// How the guest is to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownRequest {
    /// Signal sent first to every process (the image's stop signal, usually SIGTERM).
    pub signal: i32,
    /// How long processes may take to exit after it, in milliseconds, before SIGKILL.
    pub grace_ms: u32,
}

impl Message {
    /// Whether this message is the last one of its session.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            Message::Exited(_)
                | Message::SpawnFailed(_)
                | Message::Error(_)
                | Message::Metrics(_)
                | Message::Done
                | Message::SandboxMetrics(_)
                | Message::Pong
                | Message::FsDone(_)
                | Message::FsFailed(_)
        )
    }

    /// For process output (and watch events), which stream's credit it uses and how much.
    pub fn output_len(&self) -> Option<(StreamKind, u32)> {
        match self {
            Message::Stdout(data) => Some((StreamKind::Stdout, data.len() as u32)),
            Message::Stderr(data) => Some((StreamKind::Stderr, data.len() as u32)),
            Message::FsEvent(event) => Some((StreamKind::Stdout, event.cost())),
            _ => None,
        }
    }
}

/// What a client asks of a sandbox's supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Stop gracefully: the guest syncs and powers off; after `grace_ms` the VM is killed.
    Stop {
        /// How long the guest may take, in milliseconds.
        grace_ms: u32,
    },
    /// Kill the VM at once.
    Kill,
    /// Measure resource use (guest and host side).
    Metrics,
    /// This connection no longer owns the sandbox: it keeps running when the connection
    /// closes.
    Detach,
    /// Accept no new processes, wait for the running ones to end, then stop.
    Drain,
    /// Save the running sandbox for a snapshot (into its directory's `snapshot.partial/`);
    /// it runs on afterwards.
    Snapshot,
}

/// Counters read inside the guest at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestMetrics {
    /// CPU time spent busy, in clock ticks, all CPUs together (`/proc/stat`).
    pub cpu_busy_ticks: u64,
    /// CPU time in total, in clock ticks, all CPUs together.
    pub cpu_total_ticks: u64,
    /// Guest RAM the kernel manages, bytes.
    pub memory_total: u64,
    /// Guest RAM available to programs, bytes.
    pub memory_available: u64,
    /// Size of the root filesystem (an image root: its writable layer), bytes.
    pub disk_total: u64,
    /// Bytes used on it.
    pub disk_used: u64,
    /// Bytes received on network interfaces other than loopback.
    pub net_rx: u64,
    /// Bytes sent on network interfaces other than loopback.
    pub net_tx: u64,
    /// Time since the guest kernel started, milliseconds.
    pub uptime_ms: u64,
    /// Bytes read from the guest's disks.
    pub disk_read: u64,
    /// Bytes written to the guest's disks.
    pub disk_written: u64,
}

/// A sandbox's resource use, measured by its supervisor over a short window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxMetrics {
    /// The guest's counters at the end of the window.
    pub guest: GuestMetrics,
    /// Guest CPU use over the window, in tenths of a percent of one CPU.
    pub guest_cpu_permille: u32,
    /// Resident memory of the host processes (VMM and helpers), bytes.
    pub host_rss: u64,
    /// Host CPU use of those processes over the window, in tenths of a percent of one CPU.
    pub host_cpu_permille: u32,
    /// Guest RAM configured, bytes.
    pub memory_limit: u64,
    /// Time since the sandbox started, milliseconds.
    pub uptime_ms: u64,
    /// The supervisor's network stack's counters, when the sandbox has a network.
    pub network: Option<NetworkCounters>,
}

/// What a sandbox's network stack has carried and refused since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCounters {
    /// Bytes of frames from the guest.
    pub bytes_out: u64,
    /// Bytes of frames to the guest.
    pub bytes_in: u64,
    /// Frames from the guest.
    pub packets_out: u64,
    /// Frames to the guest.
    pub packets_in: u64,
    /// Flows (TCP connections, UDP associations) open now.
    pub flows_open: u64,
    /// Frames from the guest dropped as malformed or of a kind the stack does not serve.
    pub frames_dropped: u64,
    /// Connections accepted on published ports and let in.
    pub published_accepts: u64,
    /// Flows the policy refused.
    pub denied_policy: u64,
    /// Flows refused because the sandbox had its maximum open.
    pub denied_limit: u64,
    /// Flows the upstream refused or could not be reached.
    pub upstream_failed: u64,
    /// DNS queries the gateway answered.
    pub dns_queries: u64,
    /// DNS queries answered NXDOMAIN because the name is blocked or denied.
    pub dns_denied: u64,
    /// Addresses dropped from DNS answers as rebinding attempts.
    pub dns_rebinding_dropped: u64,
    /// DNS queries answered SERVFAIL because the upstream failed or was overloaded.
    pub dns_failed: u64,
}

/// The handshake's opening: protocol version and how the guest should set itself up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The host's protocol version.
    pub version: u32,
    /// Guest setup to perform before answering `Ready`.
    pub config: GuestConfig,
    /// Host wall-clock time (seconds, nanoseconds since the epoch) to set the guest clock.
    pub host_time: (i64, u32),
    /// Fresh host randomness the agent adds to the guest's pool before forcing a reseed,
    /// so guests resumed from one saved state do not share their random numbers.
    pub entropy: Vec<u8>,
    /// The guest was resumed from a saved state (a template) rather than booted: its
    /// disks were scanned with other backing files, so the agent drops what it read.
    pub resumed: bool,
}

/// How many bytes of host randomness a `Hello` carries.
pub const HELLO_ENTROPY: usize = 64;

impl Hello {
    /// The `Hello` of this protocol version for `config`, at `host_time`, with `entropy`,
    /// to a guest that was `resumed` or booted.
    pub fn new(config: GuestConfig, host_time: (i64, u32), entropy: Vec<u8>, resumed: bool) -> Hello {
        Hello {
            version: crate::PROTOCOL_VERSION,
            config,
            host_time,
            entropy,
            resumed,
        }
    }
}

/// What the agent sets up at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConfig {
    /// The root filesystem to switch into.
    pub root: RootSource,
    /// Hostname of the guest.
    pub hostname: String,
    /// Scripts to put on the PATH of every process (`/.msb/scripts/NAME`), by name.
    pub scripts: Vec<(String, String)>,
    /// Mount a tmpfs of this many MiB at `/tmp` (image roots; a directory root keeps its own).
    pub tmp_mib: Option<u32>,
    /// Write `/etc/hostname` and `/etc/hosts` for the hostname (image roots).
    pub write_identity_files: bool,
    /// Mounts made once the root is entered, in order (their mount points are made).
    pub mounts: Vec<GuestMount>,
    /// The network interface to bring up, if the guest has one (else only `lo`).
    pub network: Option<GuestNetwork>,
    /// The CA (PEM) that signs intercepted TLS, for the guest's trust stores; `None`
    /// removes one an earlier boot installed.
    pub tls_ca: Option<String>,
}

/// Where the guest keeps the interception CA alone (for `NODE_EXTRA_CA_CERTS`).
pub const GUEST_TLS_CA: &str = "/.msb/tls/ca.pem";
/// Where the guest keeps its system roots plus the interception CA (for `SSL_CERT_FILE`,
/// `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`, `PIP_CERT`).
pub const GUEST_TLS_BUNDLE: &str = "/.msb/tls/ca-bundle.pem";

/// The guest's one network interface: its address, gateway (also its DNS server and
/// `host.microsandbox.internal`) and MTU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    /// The interface's MAC address, to find it by.
    pub mac: [u8; 6],
    /// Its IPv4 address.
    pub address: [u8; 4],
    /// The prefix length of its subnet.
    pub prefix_len: u8,
    /// The default gateway and DNS server.
    pub gateway: [u8; 4],
    /// The interface's MTU.
    pub mtu: u16,
}

/// A mount besides the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestMount {
    /// A host directory shared over virtio-fs under `tag`.
    VirtioFs {
        /// The virtio-fs mount tag.
        tag: String,
        /// Where it is mounted.
        path: String,
        /// Mounted read-only (the host refuses writes as well).
        readonly: bool,
    },
    /// One file of a virtio-fs share (`tag`, holding only it) mounted over `path`.
    File {
        /// The virtio-fs mount tag.
        tag: String,
        /// The file's name in the share.
        name: String,
        /// Where it is mounted (an empty file is made there if nothing is).
        path: String,
        /// Mounted read-only (the host refuses writes as well).
        readonly: bool,
    },
    /// The filesystem on a disk (found by its serial), its type probed.
    Disk {
        /// Serial of the disk.
        serial: String,
        /// Where it is mounted.
        path: String,
        /// Mounted read-only (the disk is attached read-only too).
        readonly: bool,
    },
    /// A tmpfs.
    Tmpfs {
        /// Where it is mounted.
        path: String,
        /// Most it holds, in MiB (tmpfs's default when absent).
        size_mib: Option<u32>,
        /// Permission bits of its root (1777 when absent).
        mode: Option<u32>,
        /// Mounted `noexec`.
        noexec: bool,
        /// Mounted read-only.
        readonly: bool,
    },
}

impl GuestConfig {
    /// Boot into `root` as `hostname`, with no scripts, no `/tmp` tmpfs and the root's own
    /// `/etc` files.
    pub fn new(root: RootSource, hostname: impl Into<String>) -> GuestConfig {
        GuestConfig {
            root,
            hostname: hostname.into(),
            scripts: Vec::new(),
            tmp_mib: None,
            write_identity_files: false,
            mounts: Vec::new(),
            network: None,
            tls_ca: None,
        }
    }
}

/// Where the guest's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootSource {
    /// A host directory shared over virtio-fs under this tag.
    VirtioFs {
        /// The virtio-fs mount tag.
        tag: String,
    },
    /// Read-only EROFS layers stacked by overlayfs under a writable ext4 upper.
    Overlay {
        /// How many layers: LUN 0 (the bottom layer), 1, … on target 0 of the guest's
        /// virtio-scsi controller.
        layers: u32,
        /// Serial of the writable disk (ext4) holding `upper/` and `work/`.
        upper: String,
    },
    /// A disk image with a filesystem on it, mounted read-write as the root.
    Disk {
        /// Serial of the disk.
        serial: String,
        /// Filesystem type; probed when absent.
        fstype: Option<String>,
    },
}

/// The agent's answer to `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The agent's protocol version.
    pub version: u32,
    /// Boot timings measured in the guest.
    pub timings: BootTimings,
}

/// Guest-side boot timings, as CLOCK_BOOTTIME nanoseconds (0 = kernel start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootTimings {
    /// When the agent (PID 1) started.
    pub agent_start_ns: u64,
    /// When the agent had the root mounted and answered the handshake.
    pub ready_ns: u64,
}

/// A process to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments; the program is looked up in the guest's PATH.
    pub argv: Vec<String>,
    /// Environment variables, in order; later entries win.
    pub env: Vec<(String, String)>,
    /// Working directory (absolute); `/` when absent.
    pub workdir: Option<String>,
    /// `uid[:gid]` or `name[:group]`, resolved in the guest; root when absent.
    pub user: Option<String>,
    /// Run on a pseudo-terminal of this size instead of pipes.
    pub tty: Option<WindowSize>,
    /// Where the process's stdin comes from (ignored on a terminal).
    pub stdin: StdinMode,
    /// Resource limits set before the program starts.
    pub rlimits: Vec<msb_types::Rlimit>,
}

impl ExecRequest {
    /// `argv` as root in `/`, with the default environment, stdin `/dev/null`, no terminal
    /// and no limits; set the fields to change that.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> ExecRequest {
        ExecRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            workdir: None,
            user: None,
            tty: None,
            stdin: StdinMode::Null,
            rlimits: Vec::new(),
        }
    }
}

/// A process's standard input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdinMode {
    /// `/dev/null`: a program that reads input gets end of file at once.
    #[default]
    Null,
    /// A pipe fed by `Stdin` messages until `StdinEof`.
    Pipe,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// The data streams of a session that credit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamKind {
    /// Host → process.
    Stdin,
    /// Process → host.
    Stdout,
    /// Process → host.
    Stderr,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// The status a shell would report: the code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128i32.saturating_add(s),
        }
    }

    /// Whether a Linux process can end this way: an exit code is one byte, a signal is
    /// numbered 1 to 64. A guest that says otherwise is lying.
    pub fn is_possible(self) -> bool {
        match self {
            ExitStatus::Code(c) => (0..=255).contains(&c),
            ExitStatus::Signal(s) => (1..=64).contains(&s),
        }
    }
}

/// Why a process could not be started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnFailure {
    /// The class of failure.
    pub kind: SpawnErrorKind,
    /// A human-readable explanation naming the program, directory or user.
    pub message: String,
}

/// Classes of spawn failure; each maps to a conventional exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpawnErrorKind {
    /// The program does not exist in the guest.
    NotFound,
    /// The program exists but cannot be executed.
    NotExecutable,
    /// The working directory does not exist or is not a directory.
    BadWorkdir,
    /// The user or group could not be resolved.
    BadUser,
    /// The request itself was invalid (empty argv, NUL bytes …).
    InvalidRequest,
    /// Anything else.
    Other,
}

impl SpawnErrorKind {
    /// Exit code a shell uses for this failure (127 not found, 126 not executable, else 125).
    pub fn exit_code(self) -> i32 {
        match self {
            SpawnErrorKind::NotFound => 127,
            SpawnErrorKind::NotExecutable => 126,
            _ => 125,
        }
    }
}
