//! How sandboxes are made, started, reconciled and removed: the state store, the sandbox
//! directory and the supervisor process, kept consistent with each other.

use crate::{env, Microsandbox, MicrosandboxError, MicrosandboxResult};
use msb_protocol::client::AgentClient;
use msb_store::{SandboxRecord, SandboxState, Store};
use msb_supervisor::{ReadyLine, SandboxLock, SupervisorInput, CONTROL_SOCKET};
use msb_types::{Paths, PinnedImage, RootSpec, SandboxSpec};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// How long a supervisor may take to boot the VM and report (TCG boots take seconds).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How a sandbox is created, beside its spec.
#[derive(Clone, Default)]
pub(crate) struct CreateOptions {
    /// Replace a sandbox of the same name.
    pub replace: bool,
    /// The sandbox stops when its starter goes.
    pub owned: bool,
    /// When to pull its image.
    pub pull: crate::image::PullPolicy,
    /// How the image is pulled (credentials, plain HTTP, CAs).
    pub registry: crate::image::PullSettings,
    /// Told how the pull goes.
    pub progress: Option<std::sync::Arc<dyn Fn(crate::image::PullProgress) + Send + Sync>>,
    /// The snapshot the sandbox resumes (its spec comes from it).
    pub snapshot: Option<crate::SnapshotInfo>,
    /// The fork the sandbox is a copy of (with `snapshot`, what was saved).
    pub fork: Option<crate::fork::ForkSource>,
}

impl std::fmt::Debug for CreateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateOptions")
            .field("replace", &self.replace)
            .field("owned", &self.owned)
            .field("pull", &self.pull)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// Records a new sandbox, makes its root and starts it; on any failure nothing of it is left.
/// Returns why KVM is not used, when it is not.
pub(crate) async fn create(
    msb: &Microsandbox,
    mut spec: SandboxSpec,
    secrets: msb_store::SecretValues,
    opts: &CreateOptions,
) -> MicrosandboxResult<Option<String>> {
    let (replace, owned) = (opts.replace, opts.owned);
    spec.validate()?;
    let paths = msb.paths();
    // The store is opened where it is used, never held across an await: a connection is not
    // `Sync`, and the SDK's futures must be `Send` for multi-threaded runtimes.
    if replace {
        remove(paths, &spec.name, true).await.or_else(|e| match e {
            MicrosandboxError::SandboxNotFound(_) => Ok(()),
            e => Err(e),
        })?;
    } else {
        let store = Store::open(paths)?;
        if let Some(existing) = store.get_sandbox(&spec.name)? {
            // A crashed ephemeral sandbox of the same name goes away here.
            reconcile(paths, &store, existing)?;
        }
    }
    for name in msb.volumes().ensure(&spec.mounts)? {
        tracing::info!("volume '{name}' did not exist: created it for sandbox '{}'", spec.name);
    }
    let json = to_json(&spec)?;
    Store::open(paths)?.insert_sandbox(&spec.name, &json)?;
    let dir = paths.sandbox_dir(&spec.name);
    let made = async {
        // The name is ours now: a directory left by a crash halfway through a create or
        // remove is stale.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(MicrosandboxError::io(format!("removing stale {}", dir.display())))?;
        }
        if let Some(snapshot) = &opts.snapshot {
            // The image's layers are this sandbox's too: pinned, so no prune removes them.
            let digest = spec.image.as_ref().map(|i| i.manifest_digest.as_str());
            Store::open(paths)?.set_sandbox_spec(&spec.name, &to_json(&spec)?, digest)?;
            match &opts.fork {
                Some(fork) => crate::snapshots::restore_files(&fork.dir, crate::fork::DEVICES_FILE, snapshot, &dir)?,
                None => crate::snapshots::restore_files(
                    &paths.snapshot_dir(&snapshot.name),
                    msb_boot::saved::MEMORY_FILE,
                    snapshot,
                    &dir,
                )?,
            }
            crate::snapshots::check_build(snapshot, &msb_boot::plan(&spec, paths, msb.host()?)?)?;
            let memory = opts.fork.as_ref().map(|fork| fork.memory.as_fd());
            return start_supervisor(msb, &spec, owned, memory).await;
        }
        if let RootSpec::Oci(reference) = &spec.root {
            let progress = |e| {
                if let Some(report) = &opts.progress {
                    report(e);
                }
            };
            let record = crate::image::obtain(paths, reference, opts.pull, &opts.registry, &progress).await?;
            spec.image = Some(PinnedImage {
                reference: record.reference.clone(),
                manifest_digest: record.manifest_digest.clone(),
                config: record.config.clone(),
            });
            Store::open(paths)?.set_sandbox_spec(&spec.name, &to_json(&spec)?, Some(&record.manifest_digest))?;
        }
        msb_boot::prepare(&spec, paths)?;
        if !secrets.is_empty() {
            secrets
                .write(&dir)
                .map_err(MicrosandboxError::io(format!("writing the secrets of '{}'", spec.name)))?;
        }
        start_supervisor(msb, &spec, owned, None).await
    }
    .await;
    if made.is_err() {
        if let Ok(store) = Store::open(paths) {
            let _ = store.remove_sandbox(&spec.name);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    made
}

/// Starts a stopped (or crashed, or never started) sandbox; an `owned` one stops when its
/// starter (which must connect as owner) goes away. Returns why KVM is not used, when it
/// is not.
pub(crate) async fn start(msb: &Microsandbox, name: &str, owned: bool) -> MicrosandboxResult<Option<String>> {
    let record = get(msb.paths(), name)?;
    if record.state == SandboxState::Running {
        return Err(MicrosandboxError::SandboxStillRunning(name.into()));
    }
    start_supervisor(msb, &record.spec()?, owned, None).await
}

/// The record of `name`, reconciled with reality.
pub(crate) fn get(paths: &Paths, name: &str) -> MicrosandboxResult<SandboxRecord> {
    msb_types::validate_name(name).map_err(|e| msb_types::SpecError::new(msb_types::Field::Name, e.to_string()))?;
    let store = Store::open(paths)?;
    let record = store
        .get_sandbox(name)?
        .ok_or_else(|| MicrosandboxError::SandboxNotFound(name.into()))?;
    reconcile(paths, &store, record)?.ok_or_else(|| MicrosandboxError::SandboxNotFound(name.into()))
}

/// Every sandbox, reconciled, oldest first.
pub(crate) fn list(paths: &Paths) -> MicrosandboxResult<Vec<SandboxRecord>> {
    let store = Store::open(paths)?;
    let mut out = Vec::new();
    for record in store.list_sandboxes()? {
        out.extend(reconcile(paths, &store, record)?);
    }
    Ok(out)
}

/// A record that says `Running` while no supervisor holds the sandbox lock belongs to a
/// supervisor that died (killed, say): it is marked crashed, and an ephemeral sandbox is
/// removed. Returns the record as it is now (`None` if removed).
fn reconcile(paths: &Paths, store: &Store, record: SandboxRecord) -> MicrosandboxResult<Option<SandboxRecord>> {
    let dir = paths.sandbox_dir(&record.name);
    let dead = record.state == SandboxState::Running && !SandboxLock::is_held(&dir);
    if !dead {
        return Ok(Some(record));
    }
    match store.set_crashed(&record.name, "its supervisor died without recording a stop") {
        // Another process reconciled or restarted it meanwhile: take its word.
        Ok(()) | Err(msb_store::StoreError::InvalidTransition { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let ephemeral = record.spec::<SandboxSpec>().map(|s| s.ephemeral).unwrap_or(false);
    if ephemeral {
        if let Some(_lock) = SandboxLock::try_acquire(&dir).ok().flatten() {
            store.remove_sandbox(&record.name)?;
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(None);
        }
    }
    Ok(store.get_sandbox(&record.name)?)
}

/// Removes a sandbox that is not running (with `force`, a running one is killed first).
pub(crate) async fn remove(paths: &Paths, name: &str, force: bool) -> MicrosandboxResult<()> {
    let record = get(paths, name)?;
    let killed = record.state == SandboxState::Running;
    if killed {
        if !force {
            return Err(MicrosandboxError::SandboxStillRunning(name.into()));
        }
        kill(paths, name).await?;
    }
    let dir = paths.sandbox_dir(name);
    wait_released(paths, name).await;
    // Holding the lock keeps a concurrent start out while the sandbox goes.
    let _lock = match std::fs::create_dir_all(&dir) {
        Ok(()) => SandboxLock::try_acquire(&dir)
            .map_err(MicrosandboxError::io(format!("locking sandbox '{name}'")))?
            .ok_or_else(|| MicrosandboxError::SandboxStillRunning(name.into()))?,
        Err(e) => return Err(MicrosandboxError::io(format!("opening {}", dir.display()))(e)),
    };
    if !Store::open(paths)?.remove_sandbox(name)? {
        // Someone else removed it meanwhile; taking the lock may have made its directory
        // again, with nothing but the lock file in it.
        let only_lock = std::fs::read_dir(&dir)
            .map(|entries| entries.flatten().all(|e| e.file_name() == "lock"))
            .unwrap_or(false);
        if only_lock {
            let _ = std::fs::remove_dir_all(&dir);
        }
        // An ephemeral sandbox we killed is removed by its own supervisor as it stops:
        // gone, as asked.
        let ephemeral = record.spec::<SandboxSpec>().map(|s| s.ephemeral).unwrap_or(false);
        return if killed && ephemeral {
            Ok(())
        } else {
            Err(MicrosandboxError::SandboxNotFound(name.into()))
        };
    }
    std::fs::remove_dir_all(&dir).map_err(MicrosandboxError::io(format!("removing {}", dir.display())))
}

/// Kills a running sandbox's VM at once: through its supervisor, or, if that does not
/// answer, by killing the supervisor (its VM dies with it).
pub(crate) async fn kill(paths: &Paths, name: &str) -> MicrosandboxResult<()> {
    let asked = control(paths, name, msb_protocol::Control::Kill);
    if tokio::time::timeout(Duration::from_secs(10), asked)
        .await
        .is_ok_and(|r| r.is_ok())
    {
        return Ok(());
    }
    let record = get(paths, name)?;
    if let (SandboxState::Running, Some(pid)) = (record.state, record.supervisor_pid) {
        // The lock shows the recorded supervisor is alive; it is the process to kill.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        wait_released(paths, name).await;
        get(paths, name)?;
    }
    Ok(())
}

/// Asks the supervisor of `name` to stop or kill it, and waits until it has let go of the
/// sandbox.
pub(crate) async fn control(paths: &Paths, name: &str, what: msb_protocol::Control) -> MicrosandboxResult<()> {
    let client = connect(paths, name, false).await?;
    control_on(client, paths, name, what).await
}

/// Like [`control`], over an existing connection, which is closed afterwards so the
/// supervisor need not wait for it to leave.
pub(crate) async fn control_on(
    client: AgentClient,
    paths: &Paths,
    name: &str,
    what: msb_protocol::Control,
) -> MicrosandboxResult<()> {
    let answer = client.request(msb_protocol::Message::Control(what)).await;
    drop(client);
    match answer {
        // The supervisor may end the connection as it goes, before its answer arrives.
        Ok(_) | Err(msb_protocol::client::ClientError::Disconnected) => {}
        Err(e) => return Err(e.into()),
    }
    wait_released(paths, name).await;
    Ok(())
}

/// How long a supervisor may take to let go of its sandbox after stopping its VM (on a
/// loaded machine, with many VMs under TCG, seconds).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits (a bounded while) until no supervisor holds the lock of `name`.
pub(crate) async fn wait_released(paths: &Paths, name: &str) {
    let dir = paths.sandbox_dir(name);
    let deadline = tokio::time::Instant::now() + RELEASE_TIMEOUT;
    while SandboxLock::is_held(&dir) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connects to the supervisor of running sandbox `name`.
pub(crate) async fn connect(paths: &Paths, name: &str, owner: bool) -> MicrosandboxResult<AgentClient> {
    let socket = paths.sandbox_dir(name).join("runtime").join(CONTROL_SOCKET);
    let stream = match tokio::net::UnixStream::connect(&socket).await {
        Ok(s) => s,
        Err(_) => {
            let record = get(paths, name)?;
            return Err(MicrosandboxError::SandboxNotRunning {
                name: name.into(),
                state: record.state.to_string().to_lowercase(),
            });
        }
    };
    Ok(AgentClient::connect(stream, owner).await?)
}

/// Plans the boot of `spec`, runs its supervisor with the plan and waits for its report.
/// `memory` is a fork's frozen memory, which the saved guest resumes over (handed to the
/// supervisor as its descriptor [`HANDED_MEMORY`]). Returns why KVM is not used, when it is
/// not.
async fn start_supervisor(
    msb: &Microsandbox,
    spec: &SandboxSpec,
    owned: bool,
    memory: Option<BorrowedFd<'_>>,
) -> MicrosandboxResult<Option<String>> {
    let paths = msb.paths();
    msb.volumes().check_disks_free(spec, &list(paths)?)?;
    let name = spec.name.as_str();
    let mut plan = msb_boot::plan(spec, paths, msb.host()?)?;
    if memory.is_some() {
        plan.saved_memory = Some(msb_boot::fork::fd_path(HANDED_MEMORY));
    }
    let input = SupervisorInput {
        home: paths.home().to_path_buf(),
        name: name.to_string(),
        owned,
        log_level: spec.log_level.clone(),
        plan,
    };
    let input = serde_json::to_vec(&input)
        .map_err(|e| MicrosandboxError::Supervisor(format!("encoding the boot plan: {e}")))?;
    let program = supervisor_program(msb)?;
    let logs = paths.sandbox_dir(name).join("logs");
    std::fs::create_dir_all(&logs).map_err(MicrosandboxError::io(format!("creating {}", logs.display())))?;
    let log_path = logs.join("supervisor.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(MicrosandboxError::io(format!("opening {}", log_path.display())))?;
    let mut command = tokio::process::Command::new(&program);
    command
        .arg("__supervise")
        .arg(name)
        .env_clear()
        .envs(supervisor_env(spec))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(memory) = memory {
        hand(&mut command, memory.as_raw_fd(), HANDED_MEMORY);
    }
    let mut child = command
        .spawn()
        .map_err(|e| MicrosandboxError::Supervisor(format!("running the supervisor {}: {e}", program.display())))?;
    // The detached supervisor reads its input while this side waits for its report.
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let stdout = child.stdout.take();
    // The process we started detaches its supervisor and exits at once.
    let _ = child.wait().await;
    let mut line = String::new();
    if let Some(stdout) = stdout {
        let mut reader = tokio::io::BufReader::new(stdout);
        let read = tokio::time::timeout(START_TIMEOUT, reader.read_line(&mut line)).await;
        if read.is_err() {
            return Err(MicrosandboxError::Supervisor(format!(
                "the supervisor of '{name}' did not report within {} s (see {})",
                START_TIMEOUT.as_secs(),
                log_path.display()
            )));
        }
    }
    let report: ReadyLine = serde_json::from_str(line.trim()).map_err(|_| {
        MicrosandboxError::Supervisor(format!(
            "the supervisor of '{name}' ended without reporting (see {})",
            log_path.display()
        ))
    })?;
    match report.error {
        None => Ok(report.accel_note),
        Some(message) => Err(MicrosandboxError::StartFailed {
            name: name.into(),
            message,
        }),
    }
}

/// The descriptor a fork's copy finds its frozen memory at in its supervisor (the first
/// after the standard three).
const HANDED_MEMORY: RawFd = 3;

/// Makes `fd` of this process descriptor `at` of the program `command` runs.
fn hand(command: &mut tokio::process::Command, fd: RawFd, at: RawFd) {
    // SAFETY: the hook runs in the child between fork and exec, and calls only dup2 and
    // fcntl, which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: then it is cleared by hand.
            let placed = if fd == at {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, at)
            };
            if placed < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What of this process's environment the supervisor (and so QEMU) gets: the settings it
/// reads, never the rest. A shell holding a secret's value (`--secret-env`) must not pass it
/// on, so no variable named after one of the sandbox's secrets goes either.
fn supervisor_env(spec: &SandboxSpec) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    // SSL_CERT_*: the host roots interception checks upstream servers against.
    const KEPT: &[&str] = &[
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "RUST_LOG",
        "RUST_BACKTRACE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ];
    std::env::vars_os()
        .filter(|(key, _)| {
            let key = key.to_string_lossy();
            let named = KEPT.contains(&key.as_ref()) || key.starts_with("MSB_");
            named && !spec.network.secrets.iter().any(|s| s.env == key)
        })
        .collect()
}

/// The `msb` binary that supervises sandboxes: the one set on `msb` (`$MSB_BIN`), this
/// very program if it is `msb`, `$MSB_HOME/bin/msb`, or `msb` on the search path.
fn supervisor_program(msb: &Microsandbox) -> MicrosandboxResult<PathBuf> {
    if let Some(bin) = msb.supervisor() {
        return Ok(bin.to_path_buf());
    }
    if let Ok(me) = std::env::current_exe() {
        if me.file_name().is_some_and(|n| n == "msb") {
            return Ok(me);
        }
    }
    let installed = msb.paths().home().join("bin").join("msb");
    if installed.is_file() {
        return Ok(installed);
    }
    msb_boot::find_program("msb", &env::search_dirs(&env::process_var)).ok_or_else(|| {
        MicrosandboxError::Supervisor(
            "cannot find the `msb` binary that supervises sandboxes: install it on the PATH or set MSB_BIN".into(),
        )
    })
}

fn to_json(spec: &SandboxSpec) -> MicrosandboxResult<String> {
    serde_json::to_string(spec).map_err(|e| MicrosandboxError::Supervisor(format!("encoding the sandbox spec: {e}")))
}
