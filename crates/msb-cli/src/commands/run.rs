//! `msb run`: boot a microVM, run one command in it, and exit with its status.

use crate::session_io;
use anyhow::{bail, Context, Result};
use microsandbox::command::{exec_request, RunRequest};
use microsandbox::image::{self, PullSettings};
use microsandbox::vm::BootedVm;
use microsandbox::{DiskImageFormat, ImageRecord, MicrosandboxError, Paths, Resources, RootSpec, SandboxSpec};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `msb run`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["image", "rootfs"]))]
pub struct RunArgs {
    /// OCI image to boot (pulled first if it is not in the local store).
    image: Option<String>,
    /// Boot a host directory (shared read-write) or a disk image file (.raw, .img, .qcow2,
    /// .vmdk; attached read-write) as the guest's root filesystem instead of an image.
    #[arg(long, value_name = "DIR|FILE")]
    rootfs: Option<PathBuf>,
    /// Replace the image's entrypoint.
    #[arg(long, value_name = "PROGRAM")]
    entrypoint: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy the host's value).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the guest (absolute).
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<String>,
    /// User to run as: uid[:gid] or name[:group] from the guest's /etc/passwd.
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Number of virtual CPUs.
    #[arg(short = 'c', long, default_value_t = 1)]
    cpus: u32,
    /// Guest memory in MiB.
    #[arg(short = 'm', long, value_name = "MIB", default_value_t = 512)]
    memory: u64,
    /// Guest hostname (default: the sandbox name).
    #[arg(short = 'H', long)]
    hostname: Option<String>,
    /// Size of the writable layer of an image root (sparse), e.g. 4G, 512M; bare numbers are MiB.
    #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = crate::patch_args::parse_size_mib)]
    upper_size: u32,
    #[command(flatten)]
    patches: crate::patch_args::PatchArgs,
    /// Allocate a pseudo-terminal and attach the host terminal to it (raw mode).
    #[arg(short = 't', long)]
    tty: bool,
    /// Command and arguments to run in the guest (default: the image's entrypoint and cmd).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the command and returns the exit status for msb.
pub async fn run(args: RunArgs, matches: &clap::ArgMatches) -> Result<i32> {
    let paths = Paths::from_env();
    let patches = crate::patch_args::patches(matches)?;
    let (root, image) = match (&args.image, &args.rootfs) {
        (Some(reference), _) => {
            let record = ensure_image(&paths, reference).await?;
            (RootSpec::Oci(record.reference.clone()), Some(record))
        }
        (None, Some(path)) if path.is_file() => {
            let format = DiskImageFormat::from_path(path);
            (
                RootSpec::DiskImage {
                    path: path.clone(),
                    format,
                    fstype: None,
                },
                None,
            )
        }
        (None, Some(dir)) => (RootSpec::Bind(dir.clone()), None),
        (None, None) => bail!("give an IMAGE or --rootfs DIR"),
    };
    let mut spec = spec(&args, root)?;
    spec.patches = patches;
    let env = args
        .env
        .iter()
        .map(|e| microsandbox::parse_env(e))
        .collect::<Result<_, _>>();
    let run = RunRequest {
        args: args.command.clone(),
        entrypoint: args.entrypoint.clone().map(|e| vec![e]),
        env: env.map_err(anyhow::Error::msg)?,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        tty: args.tty.then(crate::terminal::window_size),
    };
    let request = exec_request(image.as_ref().map(|r| &r.config), run)?;
    if let Some(dir) = &request.workdir {
        if !dir.starts_with('/') {
            bail!("--workdir {dir}: must be an absolute path");
        }
    }
    let dir = paths.sandbox_dir(&spec.name);
    if let Err(e) = microsandbox::vm::prepare(&spec, &paths) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e.into());
    }
    let vm = BootedVm::boot(&spec, &paths).await;
    let vm = match vm {
        Ok(vm) => vm,
        Err(e) => {
            // Keep the console log of a failed boot (the error names it); drop the rest.
            let console = dir.join("logs/console.log");
            let booted = std::fs::metadata(&console).map(|m| m.len() > 0).unwrap_or(false);
            let _ = std::fs::remove_dir_all(if booted { dir.join("runtime") } else { dir });
            return Err(e.into());
        }
    };
    let t = vm.ready().timings;
    tracing::debug!(
        "booted in {:?} (guest: agent started at {} ms, ready at {} ms after kernel start)",
        vm.boot_time,
        t.agent_start_ns / 1_000_000,
        t.ready_ns / 1_000_000
    );
    if let Some(reason) = &vm.accel_note {
        session_io::notice(&format!(
            "KVM is not usable ({reason}); running under TCG software emulation (slow)"
        ));
    }
    let outcome = session_io::attach(&vm, request).await;
    vm.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// The image's record, pulling it first when it is not in the local store.
async fn ensure_image(paths: &Paths, reference: &str) -> Result<ImageRecord> {
    match image::inspect(paths, reference) {
        Err(MicrosandboxError::ImageNotFound(_)) => {
            let progress = crate::progress::PullProgress::new(false);
            let pulled = image::pull(paths, reference, &PullSettings::default(), &|e| progress.event(e)).await;
            progress.finish();
            Ok(pulled?)
        }
        other => Ok(other?),
    }
}

fn spec(args: &RunArgs, root: RootSpec) -> Result<SandboxSpec> {
    let resources = Resources::new(args.cpus, args.memory, host_memory_mib()?)?;
    let name = format!("msb-{:08x}", random_u32()?);
    Ok(SandboxSpec {
        hostname: args.hostname.clone().unwrap_or_else(|| name.clone()),
        resources,
        upper_size_mib: args.upper_size,
        ..SandboxSpec::new(name, root)
    })
}

fn host_memory_mib() -> Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .context("no MemTotal in /proc/meminfo")
}

fn random_u32() -> Result<u32> {
    let mut buf = [0u8; 4];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf).context("reading /dev/urandom")?;
    Ok(u32::from_ne_bytes(buf))
}
