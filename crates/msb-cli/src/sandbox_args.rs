//! The options `msb run` and `msb create` share, turned into an SDK builder.

use crate::patch_args::PatchArgs;
use anyhow::Result;
use clap::ArgMatches;
use microsandbox::parse_size_mib;
use microsandbox::{ExecOptions, Microsandbox, SandboxBuilder};
use std::path::PathBuf;
use std::time::Duration;

/// Per-process options: of every process of a sandbox (`run`, `create`), or of one
/// (`exec`, `shell`).
#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// Set an environment variable (KEY=VALUE, or KEY to copy the host's value).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the guest (absolute).
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<String>,
    /// User to run as: uid[:gid] or name[:group] from the guest's /etc/passwd.
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Resource limit: RES=N or RES=SOFT:HARD (nofile, nproc, as, cpu, fsize, core …;
    /// `unlimited` allowed); repeatable.
    #[arg(long = "rlimit", value_name = "RES=N|SOFT:HARD")]
    rlimits: Vec<microsandbox::Rlimit>,
}

impl ProcessArgs {
    /// The SDK options.
    pub fn options(&self) -> Result<ExecOptions> {
        let env = self
            .env
            .iter()
            .map(|e| microsandbox::parse_env(e, |key| std::env::var(key).ok()))
            .collect::<Result<_, _>>()?;
        Ok(ExecOptions {
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            rlimits: self.rlimits.clone(),
            ..ExecOptions::default()
        })
    }
}

/// How a sandbox is made, beside the image it boots.
#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// Boot a host directory (shared read-write) or a disk image file (.raw, .img, .qcow2,
    /// .vmdk; attached read-write) as the guest's root filesystem instead of an image.
    #[arg(long, value_name = "DIR|FILE")]
    pub rootfs: Option<PathBuf>,
    /// Filesystem type of a disk-image --rootfs (ext4, xfs …; default: probed on raw images).
    #[arg(long, value_name = "TYPE", requires = "rootfs")]
    rootfs_fstype: Option<String>,
    /// Replace the image's entrypoint.
    #[arg(long, value_name = "PROGRAM")]
    entrypoint: Option<String>,
    #[command(flatten)]
    process: ProcessArgs,
    /// Number of virtual CPUs [default: 1].
    #[arg(short = 'c', long)]
    cpus: Option<u32>,
    /// Guest memory, e.g. 1G, 768M; bare numbers are MiB [default: 512M].
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = parse_size_mib)]
    memory: Option<u32>,
    /// Guest hostname (default: the sandbox name).
    #[arg(short = 'H', long)]
    hostname: Option<String>,
    /// Size of the writable layer of an image root (sparse), e.g. 4G, 512M; bare numbers
    /// are MiB [default: 4G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size_mib)]
    upper_size: Option<u32>,
    /// Stop the sandbox after this long without any exec or attach (e.g. 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// Stop the sandbox this long after it starts (e.g. 10m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_duration: Option<Duration>,
    /// A script put on the guest's PATH: NAME:HOSTFILE (the file is read now); repeatable.
    #[arg(long = "script", value_name = "NAME:HOSTFILE", value_parser = parse_script)]
    scripts: Vec<(String, String)>,
    /// The shell for `msb shell` and for a TTY run or exec without a command (default
    /// /bin/sh).
    #[arg(long, value_name = "PATH")]
    shell: Option<String>,
    /// Mount a host directory (HOST starts with / or ./) or a named volume (made if
    /// missing): SOURCE:GUEST[:ro]; read-only is enforced on the host; repeatable.
    #[arg(short = 'v', long = "volume", value_name = "HOST|NAME:GUEST[:ro]", value_parser = parse_volume)]
    volumes: Vec<microsandbox::Mount>,
    /// Mount the filesystem of a disk image (raw, qcow2, vmdk; type probed):
    /// IMAGE:GUEST[:ro]; repeatable.
    #[arg(long = "disk", value_name = "IMAGE:GUEST[:ro]", value_parser = parse_disk)]
    disks: Vec<microsandbox::Mount>,
    /// Mount a tmpfs: GUEST[:size=64m,mode=1777,noexec,ro]; repeatable.
    #[arg(long = "tmpfs", value_name = "GUEST[:OPTIONS]", value_parser = parse_tmpfs)]
    tmpfs: Vec<microsandbox::Mount>,
    /// A label: KEY=VALUE; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// When to pull the image: always, if-missing (default) or never.
    #[arg(long = "pull", value_name = "POLICY", default_value = "if-missing")]
    pub pull: microsandbox::image::PullPolicy,
    /// How much the sandbox's supervisor logs (error, warn, info, debug, trace).
    #[arg(long = "sandbox-log-level", value_name = "LEVEL")]
    sandbox_log_level: Option<String>,
    /// Signal that asks the sandbox's processes to stop (default: the image's, else SIGTERM).
    #[arg(long, value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// Replace a sandbox of the same name (stopping it if it runs).
    #[arg(long)]
    replace: bool,
    #[command(flatten)]
    pub quiet: crate::output::QuietArg,
    #[command(flatten)]
    patches: PatchArgs,
    #[command(flatten)]
    network: crate::net_args::NetArgs,
    #[command(flatten)]
    secrets: crate::secret_args::SecretArgs,
}

impl SandboxArgs {
    /// Says which named volumes the sandbox will mount that do not exist yet (creating the
    /// sandbox creates them, as docker does).
    pub async fn announce_new_volumes(&self, msb: &Microsandbox) {
        for mount in &self.volumes {
            if let microsandbox::Mount::Volume { name, .. } = mount {
                if let Err(microsandbox::MicrosandboxError::VolumeNotFound(_)) = msb.volumes().get(name).await {
                    crate::output::notice(&format!("volume '{name}' does not exist: creating it"));
                }
            }
        }
    }

    /// Whether `--replace` was given.
    pub fn replaces(&self) -> bool {
        self.replace
    }

    /// The ports `-p` publishes.
    pub fn published_ports(&self) -> &[microsandbox::PublishedPort] {
        self.network.ports()
    }

    /// A builder for sandbox `name` booting `image` (or the `--rootfs`), with every option
    /// applied; `matches` orders the patch flags.
    pub fn builder(
        &self,
        msb: &Microsandbox,
        name: &str,
        image: Option<&str>,
        matches: &ArgMatches,
    ) -> Result<SandboxBuilder> {
        let mut b = msb.builder(name);
        if let Some(cpus) = self.cpus {
            b = b.cpus(cpus);
        }
        if let Some(mib) = self.memory {
            b = b.memory(mib);
        }
        if let Some(mib) = self.upper_size {
            b = b.upper_size(mib);
        }
        b = match (image, &self.rootfs) {
            (Some(reference), _) => b.image(reference),
            (None, Some(path)) => b.rootfs(path),
            (None, None) => anyhow::bail!("give an image or --rootfs DIR|FILE"),
        };
        if let Some(fstype) = &self.rootfs_fstype {
            b = b.rootfs_fstype(fstype);
        }
        let process = self.process.options()?;
        b = b.envs(process.env);
        if let Some(dir) = process.workdir {
            b = b.workdir(dir);
        }
        if let Some(user) = process.user {
            b = b.user(user);
        }
        for limit in process.rlimits {
            b = b.rlimit_range(limit.resource, limit.soft, limit.hard);
        }
        if let Some(program) = &self.entrypoint {
            b = b.entrypoint([program]);
        }
        if let Some(host) = &self.hostname {
            b = b.hostname(host);
        }
        if let Some(d) = self.idle_timeout {
            b = b.idle_timeout(d);
        }
        if let Some(d) = self.max_duration {
            b = b.max_duration(d);
        }
        if let Some(signal) = &self.stop_signal {
            b = b.stop_signal(signal);
        }
        b = b
            .scripts(self.scripts.clone())
            .labels(self.labels.clone())
            .pull_policy(self.pull);
        if let Some(shell) = &self.shell {
            b = b.shell(shell);
        }
        if let Some(level) = &self.sandbox_log_level {
            b = b.log_level(level);
        }
        if self.replace {
            b = b.replace();
        }
        for mount in self.volumes.iter().chain(&self.disks).chain(&self.tmpfs) {
            b = b.mount(mount.clone());
        }
        for patch in crate::patch_args::patches(matches)? {
            b = b.add_patch(patch);
        }
        self.secrets.apply(self.network.apply(b))
    }
}

/// Parses `NAME:HOSTFILE`, reading the file now.
fn parse_script(text: &str) -> Result<(String, String), String> {
    let (name, file) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not NAME:HOSTFILE"))?;
    let body = std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}"))?;
    Ok((name.to_string(), body))
}

fn parse_volume(text: &str) -> Result<microsandbox::Mount, String> {
    microsandbox::Mount::parse_volume(text).map_err(|e| e.to_string())
}

fn parse_disk(text: &str) -> Result<microsandbox::Mount, String> {
    microsandbox::Mount::parse_disk(text).map_err(|e| e.to_string())
}

fn parse_tmpfs(text: &str) -> Result<microsandbox::Mount, String> {
    microsandbox::Mount::parse_tmpfs(text).map_err(|e| e.to_string())
}

/// Parses `KEY=VALUE`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))
}

/// Parses `30s`, `5m`, `1h`, `2d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c @ ('s' | 'm' | 'h' | 'd'))) => (&t[..i], c),
        _ => (t, 's'),
    };
    let value: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (use e.g. 30s, 5m, 1h)"))?;
    let secs = match unit {
        'm' => value.checked_mul(60),
        'h' => value.checked_mul(3600),
        'd' => value.checked_mul(86_400),
        _ => Some(value),
    };
    match secs {
        Some(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(format!("duration '{text}' must be at least one second")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1.5h").is_err());
    }
}
