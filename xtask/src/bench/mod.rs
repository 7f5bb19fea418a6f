//! Benchmarks: `cargo xtask bench <name>`. Each prints its figures and, where a reference
//! exists on the machine, the ratio against it measured in the same run.

mod boot;
mod console;
mod e2b;
mod floor;
mod fs;
mod lifecycle;
mod net;
mod net_baseline;
mod net_figures;
mod net_host;
mod net_policy;
mod procmem;
mod procs;
mod pull;
mod pull_report;
mod report;
mod rootfs;
mod sdk;
mod serve;
mod snapshot;
mod stats;
mod template;
mod tls;
mod tls_host;
mod tls_vm;

/// Ends a run whose scratch directory is `tmp`: closes its progress line, fails when a
/// process it started outlived it, then prints the figures (`as_json`, or `as_text`).
fn finish(
    tmp: &std::path::Path,
    measured: anyhow::Result<()>,
    json: bool,
    as_json: impl FnOnce() -> serde_json::Value,
    as_text: impl FnOnce(),
) -> anyhow::Result<()> {
    console::progress_done();
    let sweep = procs::sweep(tmp);
    measured?;
    if !sweep.leftovers.is_empty() {
        anyhow::bail!("processes outlived the bench: {:?}", sweep.leftovers);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&as_json())?);
    } else {
        as_text();
    }
    Ok(())
}

/// Whether this host's VMs run on KVM (else TCG, software emulation).
fn is_kvm() -> bool {
    matches!(
        msb_vmm::accel::detect(msb_vmm::AccelSetting::Auto).accel,
        msb_vmm::Accel::Kvm
    )
}

/// The accelerator this host's VMs run on, as the figures' heading says it.
fn accel_label() -> String {
    match is_kvm() {
        true => "KVM".into(),
        false => "TCG (software emulation; not a KVM figure)".into(),
    }
}

/// Which benchmark to run.
#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// Boot time (`msb run true`, SDK launch → agent ready), exec round trip and idle memory,
    /// against the same kernel booted by bare QEMU.
    Boot {
        /// Rounds per boot figure (after one warm-up round).
        #[arg(long, default_value_t = 9)]
        runs: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cold pull + convert of the python fixture from the local registry against `skopeo copy`
    /// and `skopeo copy` + `umoci unpack`; tar → EROFS conversion throughput.
    Pull {
        /// Rounds of the three (after one warm-up round).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Managed sandboxes: create + start → first output, exec round trips, stop, rm, and
    /// ten sandboxes at once (time until ready, host memory each).
    Lifecycle {
        /// Rounds of create/exec/stop/rm (after one warm-up round).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Files into and out of a running sandbox: the file API against `msb exec` pipes and
    /// the virtio-fs share, for one 256 MiB file and 10,000 small ones.
    Fs {
        /// Rounds (no warm-up: each round moves over 1 GiB).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The network (needs root): TCP throughput both ways, connection setup rate and DNS
    /// latency through msb's stack beside bare QEMU with libslirp and with passt, inside
    /// the network test world; policy evaluation time and frame-harness throughput from a
    /// release build.
    Net {
        /// MiB per transfer, each way.
        #[arg(long, default_value_t = 64)]
        mib: u64,
        /// Sequential connects timed.
        #[arg(long, default_value_t = 200)]
        connects: u64,
        /// Sequential DNS queries timed.
        #[arg(long, default_value_t = 200)]
        queries: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The host-only part of `net` (run by `net` in a release build of xtask).
    #[command(hide = true)]
    NetHost {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// TLS interception (secret substitution) against pass-through (needs root): request
    /// time, throughput and handshakes on msb-net's frame harness from a release build, then
    /// through a VM with curl inside the network test world.
    Tls {
        #[command(flatten)]
        host: tls_host::HostParams,
        /// VM: sequential small GETs, each path.
        #[arg(long, default_value_t = 50)]
        vm_requests: u32,
        /// VM: handshakes of each kind.
        #[arg(long, default_value_t = 20)]
        vm_handshakes: u32,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The host-only part of `tls` (run by `tls` in a release build of xtask).
    #[command(hide = true)]
    TlsHost {
        #[command(flatten)]
        host: tls_host::HostParams,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// `msb serve`: exec round trips through the HTTP API beside the SDK in-process,
    /// create → first output, and requests per second with many clients.
    Serve {
        #[command(flatten)]
        params: serve::Params,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// An E2B program through the E2B listener (stock `e2b` SDK: create, run `true`, kill)
    /// against the same through microsandbox's Python SDK, from the same image.
    E2b {
        /// Rounds each (after one warm-up round each).
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Upper image build time (empty and 1,000 patched files) against mke2fs, and
    /// `msb run IMAGE true` against `msb run --rootfs DIR true` on the same files.
    Rootfs {
        /// Rounds (after one warm-up round).
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the chosen benchmark.
pub fn run(which: Which) -> anyhow::Result<()> {
    match which {
        Which::Boot { runs, json } => boot::run(runs, json),
        Which::Pull { runs, json } => pull::run(runs, json),
        Which::Rootfs { runs, json } => rootfs::run(runs, json),
        Which::Lifecycle { runs, json } => lifecycle::run(runs, json),
        Which::Fs { runs } => fs::run(runs),
        Which::Net {
            mib,
            connects,
            queries,
            json,
        } => net::run(&net_figures::Params { mib, connects, queries }, json),
        Which::NetHost { json } => net_host::run(json),
        Which::Tls {
            host,
            vm_requests,
            vm_handshakes,
            json,
        } => tls::run(
            &host,
            &tls_vm::VmParams {
                requests: vm_requests,
                handshakes: vm_handshakes,
            },
            json,
        ),
        Which::TlsHost { host, json } => tls_host::run(&host, json),
        Which::Serve { params, json } => serve::run(params, json),
        Which::E2b { runs, json } => e2b::run(runs, json),
    }
}
