//! Sandboxes as managed objects: find, start, stop, remove them, and run processes in them.

use crate::config::Config;
use crate::exec::{ExecHandle, ExecOutput};
use crate::info::{SandboxInfo, SandboxMetrics};
use crate::{env, lifecycle, MicrosandboxError, MicrosandboxResult, SandboxBuilder, SandboxState};
use msb_boot::command::{self, ExecOptions, Stdin};
use msb_boot::{BootPlan, HostConfig};
use msb_protocol::client::AgentClient;
use msb_protocol::{Control, Message};
use msb_types::{Paths, SandboxSpec};
use msb_vmm::Vmm;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where sandboxes live (`$MSB_HOME`, default `~/.microsandbox`): the entry point for
/// finding and making them. [`Sandbox`]'s associated functions use [`Microsandbox::from_env`].
///
/// ```no_run
/// # async fn demo() -> microsandbox::MicrosandboxResult<()> {
/// use microsandbox::Microsandbox;
/// let msb = Microsandbox::at("/srv/sandboxes");
/// for info in msb.list().await? {
///     println!("{} {:?}", info.name, info.state);
/// }
/// let sb = msb.builder("job-1").rootfs("/srv/roots/alpine").create_detached().await?;
/// sb.shell("echo started > /var/log/job").await?;
/// msb.stop("job-1", std::time::Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Microsandbox {
    paths: Paths,
    /// The host's settings, or why the environment's were invalid (said when they are used).
    host: Result<HostConfig, String>,
    /// The `msb` binary that supervises sandboxes, when set explicitly.
    supervisor: Option<PathBuf>,
    /// `$MSB_HOME/config.json`, or why it is invalid (said when it is used).
    config: Result<Config, String>,
}

impl Microsandbox {
    /// The layout under `$MSB_HOME` (else `~/.microsandbox`), with the host settings the
    /// `MSB_*` variables override (`MSB_KERNEL`, `MSB_INITRAMFS`, `MSB_QEMU`,
    /// `MSB_VIRTIOFSD`, `MSB_ACCEL`) and the supervisor `$MSB_BIN`. The one place the SDK
    /// reads the environment for these.
    pub fn from_env() -> Microsandbox {
        let var = env::process_var;
        let paths = Paths::new(env::home(&var));
        let config = Config::load(paths.home());
        let defaults = config.as_ref().map(|c| c.paths.clone()).unwrap_or_default();
        Microsandbox {
            host: env::host_config(&paths, &defaults, &var).map_err(|e| format!("MSB_ACCEL: {e}")),
            supervisor: env::supervisor(&var).or(defaults.msb),
            paths,
            config,
        }
    }

    /// The layout rooted at `home`, with the kernel and agent installed under it
    /// (`home/lib`); programs are found as installed (QEMU and virtiofsd on the `PATH`, the
    /// supervising `msb` at `$MSB_BIN` or on the `PATH`). The `MSB_*` overrides of the
    /// kernel, agent, QEMU, virtiofsd and accelerator do not apply: see
    /// [`Microsandbox::with_host`].
    pub fn at(home: impl Into<std::path::PathBuf>) -> Microsandbox {
        let var = env::process_var;
        let paths = Paths::new(home);
        let config = Config::load(paths.home());
        let defaults = config.as_ref().map(|c| c.paths.clone()).unwrap_or_default();
        let mut host = HostConfig::installed(&paths, &env::search_dirs(&var));
        env::apply_config_paths(&mut host, &defaults);
        Microsandbox {
            host: Ok(host),
            supervisor: env::supervisor(&var).or(defaults.msb),
            paths,
            config,
        }
    }

    /// Its `config.json` (defaults when there is none).
    pub fn config(&self) -> MicrosandboxResult<&Config> {
        self.config.as_ref().map_err(|e| MicrosandboxError::Config(e.clone()))
    }

    /// The same layout with other host settings (kernel, initramfs, programs, accelerator).
    pub fn with_host(mut self, host: HostConfig) -> Microsandbox {
        self.host = Ok(host);
        self
    }

    /// The same layout with sandboxes supervised by the `msb` binary at `msb`.
    pub fn with_supervisor(mut self, msb: impl Into<PathBuf>) -> Microsandbox {
        self.supervisor = Some(msb.into());
        self
    }

    /// Its image store.
    pub fn images(&self) -> crate::Images {
        crate::Images::of(self.clone())
    }

    /// The host settings sandboxes boot with.
    pub fn host(&self) -> MicrosandboxResult<&HostConfig> {
        self.host.as_ref().map_err(|e| MicrosandboxError::Config(e.clone()))
    }

    /// The `msb` binary set to supervise sandboxes, if one was.
    pub(crate) fn supervisor(&self) -> Option<&Path> {
        self.supervisor.as_deref()
    }

    /// How sandbox `name` would boot now: its [`BootPlan`] and the exact VMM command line
    /// (resuming its template, if one is recorded), without booting anything.
    pub async fn boot_plan(&self, name: &str) -> MicrosandboxResult<PlannedBoot> {
        let info = self.get(name).await?;
        let plan = msb_boot::plan(&info.spec, &self.paths, self.host()?)?;
        let qemu = msb_vmm::Qemu::new(plan.vmm.clone());
        let command_line = qemu
            .command_line(&msb_boot::template::first_launch(&plan, &qemu))
            .map_err(msb_boot::BootError::from)?;
        Ok(PlannedBoot { plan, command_line })
    }

    /// The on-disk layout.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Starts describing a new sandbox called `name`.
    pub fn builder(&self, name: impl Into<String>) -> SandboxBuilder {
        SandboxBuilder::new(self.clone(), name.into())
    }

    /// The sandbox called `name`.
    pub async fn get(&self, name: &str) -> MicrosandboxResult<SandboxInfo> {
        SandboxInfo::from_record(lifecycle::get(&self.paths, name)?)
    }

    /// Every sandbox, newest first.
    pub async fn list(&self) -> MicrosandboxResult<Vec<SandboxInfo>> {
        lifecycle::list(&self.paths)?
            .into_iter()
            .rev()
            .map(SandboxInfo::from_record)
            .collect()
    }

    /// The resource use of every running sandbox, by name (measured at once).
    pub async fn all_metrics(&self) -> MicrosandboxResult<std::collections::BTreeMap<String, SandboxMetrics>> {
        let running: Vec<SandboxInfo> = self
            .list()
            .await?
            .into_iter()
            .filter(|s| s.state == SandboxState::Running)
            .collect();
        let measured = futures::future::join_all(running.iter().map(|s| async move {
            let sb = self.connect(&s.name).await?;
            Ok::<_, MicrosandboxError>((s.name.clone(), sb.metrics().await?))
        }))
        .await;
        // A sandbox that stopped meanwhile is simply not in the answer.
        Ok(measured.into_iter().filter_map(Result::ok).collect())
    }

    /// Starts a stopped sandbox; it stops again when the last clone of the handle is dropped.
    pub async fn start(&self, name: &str) -> MicrosandboxResult<Sandbox> {
        let note = lifecycle::start(self, name, true).await?;
        self.connect_as(name, true, note).await
    }

    /// Starts a stopped sandbox in the background, independent of this process.
    pub async fn start_detached(&self, name: &str) -> MicrosandboxResult<Sandbox> {
        let note = lifecycle::start(self, name, false).await?;
        self.connect_as(name, false, note).await
    }

    /// A handle on a running sandbox; dropping it leaves the sandbox running.
    pub async fn connect(&self, name: &str) -> MicrosandboxResult<Sandbox> {
        self.connect_as(name, false, None).await
    }

    /// Stops a running sandbox gracefully: the stop signal to its processes, up to `grace`
    /// for them to end, then the guest syncs and powers off. Returns how it ended (`None`:
    /// it was ephemeral and is gone).
    pub async fn stop(&self, name: &str, grace: Duration) -> MicrosandboxResult<Option<SandboxInfo>> {
        let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
        lifecycle::control(&self.paths, name, Control::Stop { grace_ms }).await?;
        self.record_after_end(name).await
    }

    /// The record of a sandbox that has just ended (`None`: it was ephemeral and is gone).
    async fn record_after_end(&self, name: &str) -> MicrosandboxResult<Option<SandboxInfo>> {
        match self.get(name).await {
            Ok(info) => Ok(Some(info)),
            Err(MicrosandboxError::SandboxNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Kills a running sandbox's VM at once.
    pub async fn kill(&self, name: &str) -> MicrosandboxResult<()> {
        lifecycle::kill(&self.paths, name).await
    }

    /// Removes a sandbox and everything it wrote; with `force` a running one is killed first.
    pub async fn remove(&self, name: &str, force: bool) -> MicrosandboxResult<()> {
        lifecycle::remove(&self.paths, name, force).await
    }

    pub(crate) async fn connect_as(
        &self,
        name: &str,
        owner: bool,
        accel_note: Option<String>,
    ) -> MicrosandboxResult<Sandbox> {
        let info = self.get(name).await?;
        let client = lifecycle::connect(&self.paths, name, owner).await?;
        Ok(Sandbox {
            inner: Arc::new(Inner {
                msb: self.clone(),
                spec: info.spec,
                client,
                accel_note,
            }),
        })
    }
}

/// How a sandbox would boot: its plan and the VMM command line that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedBoot {
    /// Every device, share, disk, kernel argument and guest setting.
    pub plan: BootPlan,
    /// The VMM's command line, program first.
    pub command_line: Vec<String>,
}

/// A running sandbox: a connection to its supervisor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    msb: Microsandbox,
    spec: SandboxSpec,
    client: AgentClient,
    accel_note: Option<String>,
}

impl Sandbox {
    /// Starts describing a new sandbox called `name` (under `$MSB_HOME`).
    pub fn builder(name: impl Into<String>) -> SandboxBuilder {
        Microsandbox::from_env().builder(name)
    }

    /// The sandbox called `name`.
    pub async fn get(name: &str) -> MicrosandboxResult<SandboxInfo> {
        Microsandbox::from_env().get(name).await
    }

    /// Every sandbox, newest first.
    pub async fn list() -> MicrosandboxResult<Vec<SandboxInfo>> {
        Microsandbox::from_env().list().await
    }

    /// Starts a stopped sandbox (see [`Microsandbox::start`]).
    pub async fn start(name: &str) -> MicrosandboxResult<Sandbox> {
        Microsandbox::from_env().start(name).await
    }

    /// A handle on a running sandbox (see [`Microsandbox::connect`]).
    pub async fn connect(name: &str) -> MicrosandboxResult<Sandbox> {
        Microsandbox::from_env().connect(name).await
    }

    /// Its connection to the supervisor.
    pub(crate) fn client(&self) -> &AgentClient {
        &self.inner.client
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// What it was created with.
    pub fn spec(&self) -> &SandboxSpec {
        &self.inner.spec
    }

    /// Why its VM runs without KVM (under TCG, slow), when this handle started it and it
    /// does.
    pub fn accel_note(&self) -> Option<&str> {
        self.inner.accel_note.as_deref()
    }

    /// Its current record.
    pub async fn info(&self) -> MicrosandboxResult<SandboxInfo> {
        self.inner.msb.get(self.name()).await
    }

    /// Runs `cmd args…` and collects its output.
    pub async fn exec<S: Into<String>>(
        &self,
        cmd: &str,
        args: impl IntoIterator<Item = S>,
    ) -> MicrosandboxResult<ExecOutput> {
        self.exec_with(cmd, args, ExecOptions::default()).await
    }

    /// Runs `cmd args…` with per-process settings and collects its output.
    pub async fn exec_with<S: Into<String>>(
        &self,
        cmd: &str,
        args: impl IntoIterator<Item = S>,
        opts: ExecOptions,
    ) -> MicrosandboxResult<ExecOutput> {
        self.exec_stream_with(cmd, args, opts).await?.collect().await
    }

    /// Runs `SHELL -c script` (the sandbox's shell, default `/bin/sh`) and collects its
    /// output.
    pub async fn shell(&self, script: &str) -> MicrosandboxResult<ExecOutput> {
        self.exec(self.shell_program(), ["-c", script]).await
    }

    /// Starts `SHELL -c script` and returns its event stream and stdin.
    pub async fn shell_stream(&self, script: &str) -> MicrosandboxResult<ExecHandle> {
        self.exec_stream(self.shell_program(), ["-c", script]).await
    }

    /// The sandbox's shell.
    pub fn shell_program(&self) -> &str {
        self.inner.spec.shell.as_deref().unwrap_or("/bin/sh")
    }

    /// Starts `cmd args…` and returns its event stream and stdin.
    ///
    /// ```no_run
    /// # async fn demo(sb: microsandbox::Sandbox) -> microsandbox::MicrosandboxResult<()> {
    /// use microsandbox::ExecEvent;
    /// let mut proc = sb.exec_stream("cat", Vec::<String>::new()).await?;
    /// let stdin = proc.stdin();
    /// stdin.write(b"hello\n").await?;
    /// stdin.close().await?;
    /// while let Some(event) = proc.recv().await? {
    ///     if let ExecEvent::Stdout(bytes) = event {
    ///         print!("{}", String::from_utf8_lossy(&bytes));
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn exec_stream<S: Into<String>>(
        &self,
        cmd: &str,
        args: impl IntoIterator<Item = S>,
    ) -> MicrosandboxResult<ExecHandle> {
        self.exec_stream_with(cmd, args, ExecOptions::new().stdin_pipe()).await
    }

    /// Starts `cmd args…` with per-process settings; returns its event stream and stdin
    /// (a pipe only with `Stdin::Pipe`; `Stdin::Bytes` are written and closed here).
    pub async fn exec_stream_with<S: Into<String>>(
        &self,
        cmd: &str,
        args: impl IntoIterator<Item = S>,
        opts: ExecOptions,
    ) -> MicrosandboxResult<ExecHandle> {
        let argv = std::iter::once(cmd.to_string())
            .chain(args.into_iter().map(Into::into))
            .collect();
        let (timeout, input) = (opts.timeout, opts.stdin.clone());
        let req = command::exec_request(&self.inner.spec, argv, opts)?;
        let handle = ExecHandle::new(self.inner.client.exec(req).await?, timeout);
        if let Stdin::Bytes(bytes) = input {
            // Fed from a task: input beyond the credit window waits for the process to read.
            let sink = handle.stdin();
            tokio::spawn(async move {
                if sink.write(&bytes).await.is_ok() {
                    let _ = sink.close().await;
                }
            });
        }
        Ok(handle)
    }

    /// Runs `argv` attached to this process's terminal (raw mode and a guest PTY when
    /// `opts.tty` is set): output as it comes, stdin forwarded. Returns the shell-style
    /// exit status, or [`DETACHED`](crate::DETACHED) when the user typed the detach keys
    /// (`opts.detach_keys`, default `ctrl-]`; on a terminal only): the process runs on.
    pub async fn attach(&self, argv: Vec<String>, opts: ExecOptions) -> MicrosandboxResult<i32> {
        let (timeout, keys) = (opts.timeout, opts.detach_keys.clone());
        let req = command::exec_request(&self.inner.spec, argv, opts.stdin_pipe())?;
        crate::attach::attach(&self.inner.client, req, timeout, keys).await
    }

    /// Opens the sandbox's shell on this process's terminal, always with a guest PTY (of
    /// the terminal's size unless `opts` gives one); returns its exit status or
    /// [`DETACHED`](crate::DETACHED).
    pub async fn attach_shell(&self, opts: ExecOptions) -> MicrosandboxResult<i32> {
        let size = opts.tty.unwrap_or_else(crate::terminal_size);
        self.attach(vec![self.shell_program().to_string()], opts.tty(Some(size)))
            .await
    }

    /// Runs the sandbox's command as docker would (`args` replace the image's Cmd, after its
    /// entrypoint) attached to this process's terminal; returns the shell-style status.
    pub async fn attach_command(&self, args: Vec<String>, opts: ExecOptions) -> MicrosandboxResult<i32> {
        let (timeout, keys) = (opts.timeout, opts.detach_keys.clone());
        let req = command::run_request(&self.inner.spec, args, opts.stdin_pipe())?;
        crate::attach::attach(&self.inner.client, req, timeout, keys).await
    }

    /// Its resource use now (measured over a quarter of a second).
    pub async fn metrics(&self) -> MicrosandboxResult<SandboxMetrics> {
        match self.inner.client.request(Message::Control(Control::Metrics)).await? {
            Message::SandboxMetrics(m) => Ok(m.into()),
            other => Err(MicrosandboxError::Supervisor(format!(
                "unexpected answer to metrics: {other:?}"
            ))),
        }
    }

    /// Stops it gracefully (its processes get 10 s after the stop signal) and waits until it
    /// has; returns how it ended (`None`: it was ephemeral and is gone).
    pub async fn stop(self) -> MicrosandboxResult<Option<SandboxInfo>> {
        self.stop_with(Duration::from_secs(10)).await
    }

    /// Stops it gracefully, killing it if the guest has not powered off within `grace`.
    pub async fn stop_with(self, grace: Duration) -> MicrosandboxResult<Option<SandboxInfo>> {
        let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
        self.control(Control::Stop { grace_ms }).await
    }

    /// Takes no new processes, waits for the running ones to end, then stops; returns how it
    /// ended.
    pub async fn drain(self) -> MicrosandboxResult<Option<SandboxInfo>> {
        self.control(Control::Drain).await
    }

    /// Lets go of the sandbox: an owning handle no longer stops it when dropped.
    pub async fn detach(self) -> MicrosandboxResult<()> {
        match self.inner.client.request(Message::Control(Control::Detach)).await? {
            Message::Done => Ok(()),
            other => Err(MicrosandboxError::Supervisor(format!(
                "unexpected answer to detach: {other:?}"
            ))),
        }
    }

    /// Its resource use every `interval` (at least 250 ms, the measuring window), until it
    /// stops.
    pub fn metrics_stream(
        &self,
        interval: Duration,
    ) -> impl futures::Stream<Item = MicrosandboxResult<SandboxMetrics>> + '_ {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(250)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        futures::stream::unfold(tick, move |mut tick| async move {
            tick.tick().await;
            match self.metrics().await {
                Err(MicrosandboxError::Agent(msb_protocol::client::ClientError::Disconnected)) => None,
                m => Some((m, tick)),
            }
        })
    }

    /// Kills its VM at once and waits until it is gone.
    pub async fn kill(self) -> MicrosandboxResult<Option<SandboxInfo>> {
        self.control(Control::Kill).await
    }

    /// Stops it and removes it with everything it wrote.
    pub async fn remove(self) -> MicrosandboxResult<()> {
        let msb = self.inner.msb.clone();
        let name = self.name().to_string();
        self.stop().await?;
        msb.remove(&name, false).await.or_else(|e| match e {
            // An ephemeral sandbox removes itself as it stops.
            MicrosandboxError::SandboxNotFound(_) => Ok(()),
            e => Err(e),
        })
    }

    /// Sends `what` over this handle's own connection (so an owning handle does not stop
    /// the sandbox merely by going away first), lets go of it, and returns the record as
    /// the sandbox ended (`None`: ephemeral, gone).
    async fn control(self, what: Control) -> MicrosandboxResult<Option<SandboxInfo>> {
        let msb = self.inner.msb.clone();
        let name = self.name().to_string();
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => lifecycle::control_on(inner.client, msb.paths(), &name, what).await?,
            // Other clones keep this connection open: use a connection of our own.
            Err(_) => lifecycle::control(msb.paths(), &name, what)
                .await
                .or_else(tolerate_gone)?,
        }
        msb.record_after_end(&name).await
    }

    /// Waits until it stops (by itself, a timeout, or someone else's stop) and returns its
    /// final record; `None` when it was ephemeral and is gone.
    pub async fn wait(&self) -> MicrosandboxResult<Option<SandboxInfo>> {
        self.inner.client.mux().closed().await;
        lifecycle::wait_released(self.inner.msb.paths(), self.name()).await;
        match self.info().await {
            Ok(info) => Ok(Some(info)),
            Err(MicrosandboxError::SandboxNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A stop of a sandbox that had already stopped or gone (an ephemeral one) is not an error.
fn tolerate_gone(e: MicrosandboxError) -> MicrosandboxResult<()> {
    match e {
        MicrosandboxError::SandboxNotRunning { .. } | MicrosandboxError::SandboxNotFound(_) => Ok(()),
        e => Err(e),
    }
}
