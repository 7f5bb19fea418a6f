//! Proptest strategies for every protocol message, with arbitrary field values.
//!
//! [`variant`] is an exhaustive `match` over [`Message`]: adding a variant does not compile
//! until it is listed there, and `codec_prop::the_strategy_covers_every_wire_variant` then
//! fails until [`message`] generates it too.

use msb_protocol::{
    BootTimings, Control, ExecRequest, ExitStatus, GuestConfig, GuestMetrics, GuestMount, GuestNetwork, Hello, Message,
    NetworkCounters, Ready, RootSource, SandboxMetrics, ShutdownRequest, SpawnErrorKind, SpawnFailure, StdinMode,
    StreamKind, WindowSize,
};
use msb_protocol::{FsEntry, FsErrorKind, FsEvent, FsEventKind, FsFailure, FsKind, FsOp, FsReply, FsRequest};
use msb_types::{Rlimit, RlimitResource};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use proptest::strategy::Union;

/// A message variant's name and whether it ends its session (what `ends_session` must say).
pub fn variant(msg: &Message) -> (&'static str, bool) {
    match msg {
        Message::Hello(_) => ("Hello", false),
        Message::Ready(_) => ("Ready", false),
        Message::Exec(_) => ("Exec", false),
        Message::Started { .. } => ("Started", false),
        Message::SpawnFailed(_) => ("SpawnFailed", true),
        Message::Stdin(_) => ("Stdin", false),
        Message::StdinEof => ("StdinEof", false),
        Message::Stdout(_) => ("Stdout", false),
        Message::Stderr(_) => ("Stderr", false),
        Message::Credit { .. } => ("Credit", false),
        Message::Signal(_) => ("Signal", false),
        Message::Resize(_) => ("Resize", false),
        Message::Exited(_) => ("Exited", true),
        Message::Shutdown(_) => ("Shutdown", false),
        Message::Error(_) => ("Error", true),
        Message::Connect { .. } => ("Connect", false),
        Message::MetricsRequest => ("MetricsRequest", false),
        Message::Metrics(_) => ("Metrics", true),
        Message::Control(_) => ("Control", false),
        Message::Done => ("Done", true),
        Message::SandboxMetrics(_) => ("SandboxMetrics", true),
        Message::Ping => ("Ping", false),
        Message::Pong => ("Pong", true),
        Message::ShutdownComplete { .. } => ("ShutdownComplete", false),
        Message::Release => ("Release", false),
        Message::Fs(_) => ("Fs", false),
        Message::FsWatching => ("FsWatching", false),
        Message::FsEvent(_) => ("FsEvent", false),
        Message::FsDone(_) => ("FsDone", true),
        Message::FsFailed(_) => ("FsFailed", true),
    }
}

/// Any message, every variant equally likely.
pub fn message() -> impl Strategy<Value = Message> {
    let bytes = || vec(any::<u8>(), 0..256);
    Union::new(vec![
        hello().prop_map(Message::Hello).boxed(),
        (any::<u32>(), any::<u64>(), any::<u64>())
            .prop_map(|(version, agent_start_ns, ready_ns)| {
                Message::Ready(Ready {
                    version,
                    timings: BootTimings {
                        agent_start_ns,
                        ready_ns,
                    },
                })
            })
            .boxed(),
        exec().prop_map(Message::Exec).boxed(),
        any::<u32>().prop_map(|pid| Message::Started { pid }).boxed(),
        (spawn_error_kind(), text())
            .prop_map(|(kind, message)| Message::SpawnFailed(SpawnFailure { kind, message }))
            .boxed(),
        bytes().prop_map(Message::Stdin).boxed(),
        Just(Message::StdinEof).boxed(),
        bytes().prop_map(Message::Stdout).boxed(),
        bytes().prop_map(Message::Stderr).boxed(),
        (stream_kind(), any::<u32>())
            .prop_map(|(stream, bytes)| Message::Credit { stream, bytes })
            .boxed(),
        any::<i32>().prop_map(Message::Signal).boxed(),
        window().prop_map(Message::Resize).boxed(),
        exit_status().prop_map(Message::Exited).boxed(),
        (any::<i32>(), any::<u32>())
            .prop_map(|(signal, grace_ms)| Message::Shutdown(ShutdownRequest { signal, grace_ms }))
            .boxed(),
        text().prop_map(Message::Error).boxed(),
        (any::<u32>(), any::<bool>())
            .prop_map(|(version, owner)| Message::Connect { version, owner })
            .boxed(),
        Just(Message::MetricsRequest).boxed(),
        guest_metrics().prop_map(Message::Metrics).boxed(),
        control().prop_map(Message::Control).boxed(),
        Just(Message::Done).boxed(),
        sandbox_metrics().prop_map(Message::SandboxMetrics).boxed(),
        Just(Message::Ping).boxed(),
        Just(Message::Pong).boxed(),
        any::<u32>()
            .prop_map(|killed| Message::ShutdownComplete { killed })
            .boxed(),
        Just(Message::Release).boxed(),
        (fs_op(), of(text()))
            .prop_map(|(op, user)| Message::Fs(FsRequest { op, user }))
            .boxed(),
        Just(Message::FsWatching).boxed(),
        (fs_event_kind(), text(), any::<bool>())
            .prop_map(|(kind, path, is_dir)| Message::FsEvent(FsEvent { kind, path, is_dir }))
            .boxed(),
        fs_reply().prop_map(Message::FsDone).boxed(),
        (fs_error_kind(), text())
            .prop_map(|(kind, message)| Message::FsFailed(FsFailure { kind, message }))
            .boxed(),
    ])
}

/// Any value of this enum.
pub fn fs_op() -> impl Strategy<Value = FsOp> {
    prop_oneof![
        text().prop_map(|path| FsOp::Stat { path }),
        text().prop_map(|path| FsOp::List { path }),
        text().prop_map(|path| FsOp::Read { path }),
        (text(), of(any::<u32>()), any::<bool>()).prop_map(|(path, mode, parents)| FsOp::Write { path, mode, parents }),
        (text(), of(any::<u32>()), any::<bool>()).prop_map(|(path, mode, parents)| FsOp::Mkdir { path, mode, parents }),
        text().prop_map(|path| FsOp::Remove { path }),
        text().prop_map(|path| FsOp::RemoveDir { path }),
        (text(), text()).prop_map(|(from, to)| FsOp::Rename { from, to }),
        (text(), text()).prop_map(|(from, to)| FsOp::Copy { from, to }),
        (text(), any::<u32>()).prop_map(|(path, mode)| FsOp::Chmod { path, mode }),
        text().prop_map(|path| FsOp::ReadLink { path }),
        (text(), text()).prop_map(|(target, link)| FsOp::Symlink { target, link }),
        (text(), text(), any::<bool>()).prop_map(|(path, root, hard_links)| FsOp::ReadTree { path, root, hard_links }),
        (text(), any::<bool>()).prop_map(|(dir, owners)| FsOp::WriteTree { dir, owners }),
        (text(), any::<bool>()).prop_map(|(path, recursive)| FsOp::Watch { path, recursive }),
    ]
}

/// Any value of this enum.
pub fn fs_event_kind() -> impl Strategy<Value = FsEventKind> {
    prop_oneof![
        Just(FsEventKind::Create),
        Just(FsEventKind::Write),
        Just(FsEventKind::Remove),
        Just(FsEventKind::Rename),
        Just(FsEventKind::Chmod),
        Just(FsEventKind::Overflow),
    ]
}

/// Any value of this enum.
pub fn fs_reply() -> impl Strategy<Value = FsReply> {
    prop_oneof![
        Just(FsReply::Done),
        fs_entry().prop_map(FsReply::Entry),
        vec(fs_entry(), 0..4).prop_map(FsReply::Entries),
        text().prop_map(FsReply::Target),
    ]
}

fn fs_entry() -> impl Strategy<Value = FsEntry> {
    (text(), fs_kind(), any::<(u64, u32, u32, u32, i64, u64)>()).prop_map(
        |(name, kind, (size, mode, uid, gid, modified_ns, nlink))| FsEntry {
            name,
            kind,
            size,
            mode,
            uid,
            gid,
            modified_ns,
            nlink,
        },
    )
}

/// Any value of this enum.
pub fn fs_kind() -> impl Strategy<Value = FsKind> {
    prop_oneof![
        Just(FsKind::File),
        Just(FsKind::Dir),
        Just(FsKind::Symlink),
        Just(FsKind::Other)
    ]
}

/// Any value of this enum.
pub fn fs_error_kind() -> impl Strategy<Value = FsErrorKind> {
    prop_oneof![
        Just(FsErrorKind::NotFound),
        Just(FsErrorKind::IsADirectory),
        Just(FsErrorKind::NotADirectory),
        Just(FsErrorKind::PermissionDenied),
        Just(FsErrorKind::AlreadyExists),
        Just(FsErrorKind::NotEmpty),
        Just(FsErrorKind::NoSpace),
        Just(FsErrorKind::ReadOnly),
        Just(FsErrorKind::InvalidPath),
        Just(FsErrorKind::Other),
    ]
}

/// Strings with any characters (NUL, newlines, multi-byte), short enough to keep cases fast.
fn text() -> impl Strategy<Value = String> {
    ".{0,24}"
}

fn hello() -> impl Strategy<Value = Hello> {
    let scripts = vec((text(), text()), 0..4);
    (
        any::<u32>(),
        root_source(),
        text(),
        any::<(i64, u32)>(),
        (scripts, of(any::<u32>()), any::<bool>(), vec(guest_mount(), 0..3)),
        (of(guest_network()), of(text())),
        (vec(any::<u8>(), 0..80), any::<bool>()),
    )
        .prop_map(
            |(
                version,
                root,
                hostname,
                host_time,
                (scripts, tmp_mib, write_identity_files, mounts),
                (network, tls_ca),
                (entropy, resumed),
            )| Hello {
                version,
                config: GuestConfig {
                    root,
                    hostname,
                    scripts,
                    tmp_mib,
                    write_identity_files,
                    mounts,
                    network,
                    tls_ca,
                },
                host_time,
                entropy,
                resumed,
            },
        )
}

/// Any guest network settings.
pub fn guest_network() -> impl Strategy<Value = GuestNetwork> {
    (
        any::<[u8; 6]>(),
        any::<[u8; 4]>(),
        any::<u8>(),
        any::<[u8; 4]>(),
        any::<u16>(),
    )
        .prop_map(|(mac, address, prefix_len, gateway, mtu)| GuestNetwork {
            mac,
            address,
            prefix_len,
            gateway,
            mtu,
        })
}

/// Any value of this enum.
pub fn guest_mount() -> impl Strategy<Value = GuestMount> {
    prop_oneof![
        (text(), text(), any::<bool>()).prop_map(|(tag, path, readonly)| GuestMount::VirtioFs { tag, path, readonly }),
        (text(), of(any::<u32>()), of(any::<u32>()), any::<(bool, bool)>()).prop_map(
            |(path, size_mib, mode, (noexec, readonly))| GuestMount::Tmpfs {
                path,
                size_mib,
                mode,
                noexec,
                readonly
            }
        ),
    ]
}

/// Any value of this enum.
pub fn root_source() -> impl Strategy<Value = RootSource> {
    prop_oneof![
        text().prop_map(|tag| RootSource::VirtioFs { tag }),
        (any::<u32>(), text()).prop_map(|(layers, upper)| RootSource::Overlay { layers, upper }),
        (text(), of(text())).prop_map(|(serial, fstype)| RootSource::Disk { serial, fstype }),
    ]
}

fn exec() -> impl Strategy<Value = ExecRequest> {
    (
        vec(text(), 0..6),
        vec((text(), text()), 0..6),
        of(text()),
        of(text()),
        of(window()),
        (stdin_mode(), vec(rlimit(), 0..4)),
    )
        .prop_map(|(argv, env, workdir, user, tty, (stdin, rlimits))| ExecRequest {
            argv,
            env,
            workdir,
            user,
            tty,
            stdin,
            rlimits,
        })
}

fn stdin_mode() -> impl Strategy<Value = StdinMode> {
    prop_oneof![Just(StdinMode::Null), Just(StdinMode::Pipe)]
}

fn rlimit() -> impl Strategy<Value = Rlimit> {
    (
        proptest::sample::select(RlimitResource::ALL.to_vec()),
        any::<(u64, u64)>(),
    )
        .prop_map(|(resource, (soft, hard))| Rlimit { resource, soft, hard })
}

fn window() -> impl Strategy<Value = WindowSize> {
    any::<(u16, u16)>().prop_map(|(rows, cols)| WindowSize { rows, cols })
}

/// Any value of this enum.
pub fn stream_kind() -> impl Strategy<Value = StreamKind> {
    prop_oneof![
        Just(StreamKind::Stdin),
        Just(StreamKind::Stdout),
        Just(StreamKind::Stderr)
    ]
}

/// Any value of this enum.
pub fn exit_status() -> impl Strategy<Value = ExitStatus> {
    prop_oneof![
        any::<i32>().prop_map(ExitStatus::Code),
        any::<i32>().prop_map(ExitStatus::Signal)
    ]
}

/// Any value of this enum.
pub fn spawn_error_kind() -> impl Strategy<Value = SpawnErrorKind> {
    prop_oneof![
        Just(SpawnErrorKind::NotFound),
        Just(SpawnErrorKind::NotExecutable),
        Just(SpawnErrorKind::BadWorkdir),
        Just(SpawnErrorKind::BadUser),
        Just(SpawnErrorKind::InvalidRequest),
        Just(SpawnErrorKind::Other),
    ]
}

/// Any value of this enum.
pub fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        any::<u32>().prop_map(|grace_ms| Control::Stop { grace_ms }),
        Just(Control::Kill),
        Just(Control::Metrics),
        Just(Control::Detach),
        Just(Control::Drain),
        Just(Control::Snapshot),
    ]
}

fn guest_metrics() -> impl Strategy<Value = GuestMetrics> {
    (any::<[u64; 5]>(), any::<[u64; 6]>()).prop_map(|(a, b)| GuestMetrics {
        cpu_busy_ticks: a[0],
        cpu_total_ticks: a[1],
        memory_total: a[2],
        memory_available: a[3],
        disk_total: a[4],
        disk_used: b[0],
        net_rx: b[1],
        net_tx: b[2],
        uptime_ms: b[3],
        disk_read: b[4],
        disk_written: b[5],
    })
}

fn network_counters() -> impl Strategy<Value = NetworkCounters> {
    (any::<[u64; 7]>(), any::<[u64; 7]>()).prop_map(|(a, b)| NetworkCounters {
        bytes_out: a[0],
        bytes_in: a[1],
        packets_out: a[2],
        packets_in: a[3],
        flows_open: a[4],
        frames_dropped: a[5],
        published_accepts: a[6],
        denied_policy: b[0],
        denied_limit: b[1],
        upstream_failed: b[2],
        dns_queries: b[3],
        dns_denied: b[4],
        dns_rebinding_dropped: b[5],
        dns_failed: b[6],
    })
}

fn sandbox_metrics() -> impl Strategy<Value = SandboxMetrics> {
    (
        guest_metrics(),
        any::<(u32, u64, u32, u64, u64)>(),
        of(network_counters()),
    )
        .prop_map(|(guest, (gc, rss, hc, limit, up), network)| SandboxMetrics {
            guest,
            guest_cpu_permille: gc,
            host_rss: rss,
            host_cpu_permille: hc,
            memory_limit: limit,
            uptime_ms: up,
            network,
        })
}
