//! Describing a sandbox before creating it.

use crate::{Microsandbox, MicrosandboxError, MicrosandboxResult, Sandbox};
use msb_types::{
    DiskImageFormat, DnsSpec, Field, Mount, NetPolicy, NetworkSpec, Patch, PublishedPort, Resources, RootSpec,
    SandboxSpec, SpecError, Transport,
};
use std::path::PathBuf;
use std::time::Duration;

/// Builds a sandbox: `Sandbox::builder("worker").image("python").memory(1024).create()`.
///
/// Setters never fail; problems are reported by [`SandboxBuilder::build`] and `create`.
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    msb: Microsandbox,
    pub(crate) spec: SandboxSpec,
    root: Option<RootChoice>,
    disk_fstype: Option<String>,
    hostname: Option<String>,
    create: crate::lifecycle::CreateOptions,
    /// The snapshot it resumes, by name.
    snapshot: Option<String>,
    /// The values of its secrets (their specs are in `spec`).
    pub(crate) secret_values: crate::secrets::SecretSet,
    /// The first problem a setter met, reported by `build`.
    pub(crate) invalid: Option<SpecError>,
}

#[derive(Debug, Clone)]
enum RootChoice {
    Image(String),
    Path(PathBuf),
}

impl SandboxBuilder {
    pub(crate) fn new(msb: Microsandbox, name: String) -> SandboxBuilder {
        let mut spec = SandboxSpec::new(name, RootSpec::Bind(PathBuf::new()));
        // `config.json`'s defaults; an invalid file is reported by `build`.
        if let Ok(config) = msb.config() {
            let d = &config.sandbox_defaults;
            spec.resources.cpus = d.cpus.unwrap_or(spec.resources.cpus);
            spec.resources.memory_mib = d.memory_mib.unwrap_or(spec.resources.memory_mib);
            spec.shell = d.shell.clone();
            spec.workdir = d.workdir.clone();
            spec.log_level = config.log_level.clone();
        }
        SandboxBuilder {
            msb,
            spec,
            root: None,
            disk_fstype: None,
            hostname: None,
            create: Default::default(),
            snapshot: None,
            secret_values: Default::default(),
            invalid: None,
        }
    }

    /// Resumes snapshot `name` (see [`crate::Snapshots`]) where it was saved: its processes,
    /// memory and files. The sandbox takes the snapshot's settings (image, resources,
    /// network, command); only its name, hostname and the ports this builder publishes
    /// ([`SandboxBuilder::publish`]) are its own, and it gets no secrets.
    pub fn from_snapshot(mut self, name: impl Into<String>) -> Self {
        self.snapshot = Some(name.into());
        self
    }

    /// The filesystem type of a disk-image root (`ext4`, `xfs` …), for images whose
    /// filesystem cannot be probed (qcow2, vmdk); raw images are probed.
    pub fn rootfs_fstype(mut self, fstype: impl Into<String>) -> Self {
        self.disk_fstype = Some(fstype.into());
        self
    }

    /// Boots from an OCI image (`python`, `ghcr.io/org/app:1.2`), pulled if not stored yet.
    pub fn image(mut self, reference: impl Into<String>) -> Self {
        self.root = Some(RootChoice::Image(reference.into()));
        self
    }

    /// Boots from a host directory (shared read-write) or a disk image file (`.raw`,
    /// `.img`, `.qcow2`, `.vmdk`; attached read-write).
    pub fn rootfs(mut self, path: impl Into<PathBuf>) -> Self {
        self.root = Some(RootChoice::Path(path.into()));
        self
    }

    /// Virtual CPUs (default 1; at most 64).
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.spec.resources.cpus = cpus;
        self
    }

    /// Guest memory: MiB as a bare number, or with units (`512.mib()`, `1.gib()`; see
    /// [`crate::size`]); default 512 MiB.
    pub fn memory(mut self, size: impl Into<crate::size::Mebibytes>) -> Self {
        self.spec.resources.memory_mib = size.into().0;
        self
    }

    /// Sets an environment variable for every process (over the image's).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.spec.env.retain(|(k, _)| *k != key);
        self.spec.env.push((key, value.into()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<K: Into<String>, V: Into<String>>(self, vars: impl IntoIterator<Item = (K, V)>) -> Self {
        vars.into_iter().fold(self, |b, (k, v)| b.env(k, v))
    }

    /// Working directory of processes (absolute), over the image's.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.spec.workdir = Some(dir.into());
        self
    }

    /// User processes run as: `name`, `uid`, `name:group` or `uid:gid`, over the image's.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.spec.user = Some(user.into());
        self
    }

    /// Replaces the image's entrypoint.
    pub fn entrypoint<S: Into<String>>(mut self, argv: impl IntoIterator<Item = S>) -> Self {
        self.spec.entrypoint = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// A command started at boot (after the entrypoint, replacing the image's Cmd); the
    /// sandbox stops when it ends, its output goes to the sandbox's `output.log`.
    pub fn command<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.spec.command = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Guest hostname (default: the sandbox name).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// Adds patches, applied to the root filesystem before the first boot, in order.
    pub fn patch(mut self, f: impl FnOnce(PatchBuilder) -> PatchBuilder) -> Self {
        self.spec.patches.extend(f(PatchBuilder::default()).patches);
        self
    }

    /// Adds one patch.
    pub fn add_patch(mut self, patch: Patch) -> Self {
        self.spec.patches.push(patch);
        self
    }

    /// Stops the sandbox after this long without any process started through it.
    pub fn idle_timeout(mut self, after: Duration) -> Self {
        self.spec.idle_timeout_secs = Some(after.as_secs().max(1));
        self
    }

    /// Stops the sandbox this long after each start.
    pub fn max_duration(mut self, limit: Duration) -> Self {
        self.spec.max_duration_secs = Some(limit.as_secs().max(1));
        self
    }

    /// Size of an image root's writable layer: MiB, or with units (`8.gib()`); default
    /// 4 GiB, sparse.
    pub fn upper_size(mut self, size: impl Into<crate::size::Mebibytes>) -> Self {
        self.spec.upper_size_mib = size.into().0;
        self
    }

    /// Limits `resource` to `n` (soft and hard) for every process it runs.
    pub fn rlimit(self, resource: msb_types::RlimitResource, n: u64) -> Self {
        self.rlimit_range(resource, n, n)
    }

    /// Limits `resource` to `soft`, raisable to `hard`, for every process it runs (checked
    /// at [`SandboxBuilder::build`]).
    pub fn rlimit_range(mut self, resource: msb_types::RlimitResource, soft: u64, hard: u64) -> Self {
        self.spec.rlimits.retain(|l| l.resource != resource);
        self.spec.rlimits.push(msb_types::Rlimit { resource, soft, hard });
        self
    }

    /// The shell `Sandbox::shell` runs scripts with (default `/bin/sh`).
    pub fn shell(mut self, shell: impl Into<String>) -> Self {
        self.spec.shell = Some(shell.into());
        self
    }

    /// A script put on the guest's PATH as `/.msb/scripts/NAME` (mode 0755).
    pub fn script(mut self, name: impl Into<String>, content: impl Into<String>) -> Self {
        self.spec.scripts.insert(name.into(), content.into());
        self
    }

    /// Several scripts (see [`SandboxBuilder::script`]).
    pub fn scripts<N: Into<String>, C: Into<String>>(self, scripts: impl IntoIterator<Item = (N, C)>) -> Self {
        scripts.into_iter().fold(self, |b, (n, c)| b.script(n, c))
    }

    /// Mounts host directory `host` at `guest`, read-write (`-v HOST:GUEST`). The host path
    /// is made absolute and canonical when the sandbox is built; it must exist.
    pub fn volume(self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.bind(host.into(), guest.into(), false)
    }

    /// Mounts host directory `host` at `guest`, read-only (`-v HOST:GUEST:ro`). The host's
    /// file server refuses writes, so not even root in the guest remounting it can write.
    pub fn volume_ro(self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.bind(host.into(), guest.into(), true)
    }

    fn bind(self, host: PathBuf, guest: String, readonly: bool) -> Self {
        self.mount(Mount::Bind { host, guest, readonly })
    }

    /// A tmpfs at `guest` of at most `size_mib` MiB (`--tmpfs GUEST:size=…`); other options
    /// through [`SandboxBuilder::mount`] with [`Mount::parse_tmpfs`] or a [`Mount::Tmpfs`].
    pub fn tmpfs(self, guest: impl Into<String>, size_mib: Option<u32>) -> Self {
        self.mount(Mount::Tmpfs {
            guest: guest.into(),
            size_mib,
            mode: None,
            noexec: false,
            readonly: false,
        })
    }

    /// Any mount (checked, with the others, at [`SandboxBuilder::build`]).
    pub fn mount(mut self, mount: Mount) -> Self {
        self.spec.mounts.push(mount);
        self
    }

    /// A label (free-form metadata, shown by `inspect`).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.labels.insert(key.into(), value.into());
        self
    }

    /// Several labels.
    pub fn labels<K: Into<String>, V: Into<String>>(self, labels: impl IntoIterator<Item = (K, V)>) -> Self {
        labels.into_iter().fold(self, |b, (k, v)| b.label(k, v))
    }

    /// How much its supervisor logs into `logs/supervisor.log` (`error`, `warn`, `info`,
    /// `debug`, `trace`, or `MSB_LOG`-style filters); default `warn`.
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.spec.log_level = Some(level.into());
        self
    }

    /// The signal that asks its processes to stop (`SIGTERM`, `SIGQUIT`, `15` …); default:
    /// the image's `StopSignal`, else SIGTERM.
    pub fn stop_signal(mut self, signal: impl Into<String>) -> Self {
        self.spec.stop_signal = Some(signal.into());
        self
    }

    /// Replaces a sandbox of the same name (stopping it if it runs) instead of failing.
    pub fn replace(mut self) -> Self {
        self.create.replace = true;
        self
    }

    /// When its image is pulled (default: only when missing).
    pub fn pull_policy(mut self, policy: crate::image::PullPolicy) -> Self {
        self.create.pull = policy;
        self
    }

    /// How the image is pulled: `.registry(|r| r.auth("me", token).ca_cert("/etc/ca.pem"))`.
    /// Credentials given here come before stored ones and are never written anywhere.
    pub fn registry(mut self, f: impl FnOnce(crate::image::PullSettings) -> crate::image::PullSettings) -> Self {
        self.create.registry = f(std::mem::take(&mut self.create.registry));
        self
    }

    /// Reports the image pull's progress to `report` (called from the creating task).
    pub fn on_pull_progress(mut self, report: impl Fn(crate::image::PullProgress) + Send + Sync + 'static) -> Self {
        self.create.progress = Some(std::sync::Arc::new(report));
        self
    }

    /// Its whole network: policy, DNS, published ports, flow limit (default:
    /// [`NetworkSpec::default`], the public-only policy).
    pub fn network(mut self, network: NetworkSpec) -> Self {
        self.spec.network = network;
        self
    }

    /// No network interface at all: the guest has only `lo`.
    pub fn no_network(self) -> Self {
        self.network(NetworkSpec::disabled())
    }

    /// What the guest may reach and what may reach it (default
    /// [`NetPolicy::public_only`]).
    pub fn net_policy(mut self, policy: NetPolicy) -> Self {
        self.spec.network.policy = policy;
        self
    }

    /// Forwards TCP `host_port` on 127.0.0.1 to `guest_port`.
    pub fn port(self, host_port: u16, guest_port: u16) -> Self {
        self.publish(PublishedPort::new(host_port, guest_port, Transport::Tcp))
    }

    /// Forwards UDP `host_port` on 127.0.0.1 to `guest_port`.
    pub fn port_udp(self, host_port: u16, guest_port: u16) -> Self {
        self.publish(PublishedPort::new(host_port, guest_port, Transport::Udp))
    }

    /// Forwards a host port (on any host address, see [`PublishedPort::parse`]) into the
    /// guest.
    pub fn publish(mut self, port: PublishedPort) -> Self {
        self.spec.network.ports.push(port);
        self
    }

    /// Most flows open at once; new ones past it are refused (default
    /// [`msb_types::DEFAULT_MAX_CONNECTIONS`]).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.spec.network.max_connections = n;
        self
    }

    /// How the gateway answers DNS: blocked names, rebind protection, upstreams, timeout.
    pub fn dns(mut self, dns: DnsSpec) -> Self {
        self.spec.network.dns = dns;
        self
    }

    /// Always boots its VM, never resuming it from a template (templates are on by
    /// default for sandboxes without shared directories; `MSB_NO_TEMPLATE=1` turns them
    /// off for all).
    pub fn cold_boot(mut self) -> Self {
        self.spec.cold_boot = true;
        self
    }

    /// Removes the sandbox as soon as it stops.
    pub fn ephemeral(mut self) -> Self {
        self.spec.ephemeral = true;
        self
    }

    /// Checks everything that can be checked without creating anything.
    pub fn build(&self) -> MicrosandboxResult<SandboxSpec> {
        self.msb.config()?;
        if let Some(problem) = &self.invalid {
            return Err(problem.clone().into());
        }
        let mut spec = self.spec.clone();
        spec.root = match &self.root {
            None => return Err(SpecError::new(Field::Root, "a sandbox needs one: an image or a rootfs path").into()),
            Some(RootChoice::Path(path)) if path.is_file() => RootSpec::DiskImage {
                path: path.clone(),
                format: DiskImageFormat::from_path(path),
                fstype: self.disk_fstype.clone(),
            },
            Some(_) if self.disk_fstype.is_some() => {
                return Err(SpecError::new(Field::Root, "a filesystem type is for a disk-image root only").into())
            }
            Some(RootChoice::Image(reference)) => RootSpec::Oci(crate::image::canonical(reference)?),
            Some(RootChoice::Path(path)) => RootSpec::Bind(path.clone()),
        };
        let asked = self.spec.resources;
        spec.resources = Resources::new(asked.cpus, asked.memory_mib, host_memory_mib()?)?;
        spec.hostname = self.hostname.clone().unwrap_or_else(|| spec.name.clone());
        for mount in &mut spec.mounts {
            if let Mount::Bind { host, guest, .. } | Mount::Disk { image: host, guest, .. } = mount {
                *host = std::fs::canonicalize(&*host).map_err(|e| {
                    SpecError::new(
                        Field::Mounts,
                        format!("host path '{}' for {guest}: {e}", host.display()),
                    )
                })?;
            }
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Creates the sandbox and starts it; it stops (and an ephemeral one is removed) when
    /// the last clone of the returned handle is dropped, or this process ends.
    pub async fn create(self) -> MicrosandboxResult<Sandbox> {
        self.create_owned(true).await
    }

    /// Creates the sandbox and starts it in the background, independent of this process.
    pub async fn create_detached(self) -> MicrosandboxResult<Sandbox> {
        self.create_owned(false).await
    }

    /// [`SandboxBuilder::create`] on a task of its own, with the image pull's progress on a
    /// channel as it goes (the reference's `create_with_pull_progress`).
    pub fn create_with_pull_progress(self) -> PullingCreate {
        self.pulling_create(true)
    }

    /// [`SandboxBuilder::create_detached`] on a task of its own, with the image pull's
    /// progress on a channel as it goes.
    pub fn create_detached_with_pull_progress(self) -> PullingCreate {
        self.pulling_create(false)
    }

    fn pulling_create(self, owned: bool) -> PullingCreate {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let builder = self.on_pull_progress(move |event| {
            let _ = tx.send(event);
        });
        (rx, tokio::spawn(builder.create_owned(owned)))
    }

    async fn create_owned(mut self, owned: bool) -> MicrosandboxResult<Sandbox> {
        let spec = match &self.snapshot {
            Some(snapshot) => {
                let snapshot = self.msb.snapshots().get(snapshot)?;
                // Published ports are the host's side, which the guest does not see: this
                // builder's own.
                let ports = self.spec.network.ports.clone();
                let spec = crate::snapshot_spec::spec_from(&snapshot, &self.spec.name, self.msb.paths(), ports)?;
                self.create.snapshot = Some(snapshot);
                spec
            }
            None => self.build()?,
        };
        self.create.owned = owned;
        let secrets = self.secret_values.values();
        let note = crate::lifecycle::create(&self.msb, spec.clone(), secrets, &self.create).await?;
        self.msb.connect_as(&spec.name, owned, note).await
    }
}

/// A create running on a task of its own: the pull's progress events, and the sandbox.
pub type PullingCreate = (
    tokio::sync::mpsc::UnboundedReceiver<crate::image::PullProgress>,
    tokio::task::JoinHandle<MicrosandboxResult<Sandbox>>,
);

/// Collects patches: `.patch(|p| p.text("/etc/motd", "hi", None, false).mkdir("/data", None))`.
/// Arguments mirror the fields of [`Patch`].
#[derive(Debug, Clone, Default)]
pub struct PatchBuilder {
    patches: Vec<Patch>,
}

impl PatchBuilder {
    fn push(mut self, patch: Patch) -> Self {
        self.patches.push(patch);
        self
    }

    /// A text file (mode 0644 unless given).
    pub fn text(self, path: impl Into<String>, content: impl Into<String>, mode: Option<u32>, replace: bool) -> Self {
        let (path, content) = (path.into(), content.into());
        self.push(Patch::Text {
            path,
            content,
            mode,
            replace,
        })
    }

    /// A file with binary contents (mode 0644 unless given).
    pub fn file(self, path: impl Into<String>, content: impl Into<Vec<u8>>, mode: Option<u32>, replace: bool) -> Self {
        let (path, content) = (path.into(), content.into());
        self.push(Patch::File {
            path,
            content,
            mode,
            replace,
        })
    }

    /// A copy of a host file (its mode unless given).
    pub fn copy_file(self, src: impl Into<PathBuf>, dst: impl Into<String>, mode: Option<u32>, replace: bool) -> Self {
        let (src, dst) = (src.into(), dst.into());
        self.push(Patch::CopyFile {
            src,
            dst,
            mode,
            replace,
        })
    }

    /// A recursive copy of a host directory.
    pub fn copy_dir(self, src: impl Into<PathBuf>, dst: impl Into<String>, replace: bool) -> Self {
        let (src, dst) = (src.into(), dst.into());
        self.push(Patch::CopyDir { src, dst, replace })
    }

    /// A symlink at `link` to `target`.
    pub fn symlink(self, target: impl Into<String>, link: impl Into<String>, replace: bool) -> Self {
        let (target, link) = (target.into(), link.into());
        self.push(Patch::Symlink { target, link, replace })
    }

    /// A directory (0755 unless given; an existing one is kept as it is).
    pub fn mkdir(self, path: impl Into<String>, mode: Option<u32>) -> Self {
        self.push(Patch::Mkdir {
            path: path.into(),
            mode,
        })
    }

    /// Removes a path, recursively.
    pub fn remove(self, path: impl Into<String>) -> Self {
        self.push(Patch::Remove { path: path.into() })
    }

    /// Appends to an existing file.
    pub fn append(self, path: impl Into<String>, content: impl Into<String>) -> Self {
        let (path, content) = (path.into(), content.into());
        self.push(Patch::Append { path, content })
    }
}

/// This host's RAM in MiB, the upper bound of a sandbox's memory.
fn host_memory_mib() -> MicrosandboxResult<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").map_err(MicrosandboxError::io("reading /proc/meminfo"))?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .ok_or_else(|| MicrosandboxError::io("reading /proc/meminfo")(std::io::Error::other("it has no MemTotal line")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn network_settings_reach_the_spec() {
        let msb = Microsandbox::at("/nonexistent");
        let spec = msb
            .builder("net")
            .rootfs("/r")
            .port(8080, 80)
            .port_udp(5353, 53)
            .max_connections(9)
            .net_policy(NetPolicy::non_local())
            .build()
            .unwrap();
        let net = spec.network;
        assert!(net.enabled);
        assert_eq!(net.policy, NetPolicy::non_local());
        assert_eq!(net.max_connections, 9);
        let ports: Vec<String> = net.ports.iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["127.0.0.1:8080:80/tcp", "127.0.0.1:5353:53/udp"]);

        let offline = msb.builder("net").rootfs("/r").no_network().build().unwrap();
        assert_eq!(offline.network, NetworkSpec::disabled());
        let err = msb
            .builder("net")
            .rootfs("/r")
            .no_network()
            .port(1, 2)
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, MicrosandboxError::InvalidSpec(e) if e.field == Field::Ports),
            "{err}"
        );
    }
}
