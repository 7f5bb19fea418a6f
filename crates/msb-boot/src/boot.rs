//! Executing a boot plan: launch the VM through a VMM, connect to its agent, hand it the
//! guest configuration.

use crate::console::{self, LastWords};
use crate::template::Template;
use crate::{BootError, BootPlan, BootResult, FileLink};
use msb_protocol::client::{AgentClient, ClientError, ExecSession};
use msb_protocol::{ExecRequest, Hello, Message, Ready, ShutdownRequest};
use msb_vmm::{Monitor, VmProcess, Vmm, VmmError};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long a guest may take from launch to a ready agent (generous: TCG is slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long recording and resuming a template may take together before the guest boots
/// cold instead.
const TEMPLATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a VM whose monitor or agent failed may take to exit with its reasons.
const EXIT_WAIT: Duration = Duration::from_millis(500);
/// Beyond the grace period, how long a stopping guest may take to sync, freeze its
/// filesystems and power off before it is killed (TCG is slow; a big dirty upper too).
const POWER_OFF_MARGIN: Duration = Duration::from_secs(10);

/// Links a single-file mount's file into the directory its share serves (afresh at each
/// boot: the file may have been replaced since).
fn stage(link: &FileLink) -> BootResult<()> {
    let io = BootError::io;
    if let Some(dir) = link.link.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    // What the guest left there (a read-write share: even a directory) goes; nothing in
    // it is followed.
    let removed = match std::fs::symlink_metadata(&link.link) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&link.link),
        Ok(_) => std::fs::remove_file(&link.link),
        Err(_) => Ok(()),
    };
    removed.map_err(io(format!("removing {}", link.link.display())))?;
    // The file itself, should its path have become a symlink since the sandbox was made.
    let source = std::fs::canonicalize(&link.source).map_err(io(format!("resolving {}", link.source.display())))?;
    std::fs::hard_link(&source, &link.link).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::CrossesDevices => format!(
                "{e}: a single file is shared through a hard link, which cannot cross into \
                 another filesystem than the sandbox's; share its directory instead"
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "{e}: a single file is shared through a hard link, which the kernel refuses \
                 for a file you neither own nor may write (fs.protected_hardlinks); share its \
                 directory instead, or run as its owner"
            ),
            _ => e.to_string(),
        };
        BootError::Spec(msb_types::SpecError::new(
            msb_types::Field::Mounts,
            format!("sharing {}: {why}", link.source.display()),
        ))
    })
}

/// A running VM with a connected agent.
#[derive(Debug)]
pub struct BootedVm {
    process: VmProcess,
    client: Arc<AgentClient>,
    monitor: Option<MonitorLink>,
    last_words: watch::Receiver<Option<LastWords>>,
    /// Host-measured time from launching the VMM to the agent's `Ready`.
    pub boot_time: Duration,
    /// Resumed from a template rather than booted.
    pub resumed: bool,
}

/// How a VM starts.
#[derive(Debug, Clone, Copy)]
enum Start<'a> {
    /// It boots.
    Cold,
    /// It resumes a saved guest (a template, a sandbox's snapshot).
    Resume(&'a Path),
    /// It resumes a saved guest's devices over a private copy of the memory it was saved
    /// with (a fork's copy).
    ResumeOver(&'a Path, &'a Path),
}

/// The connection to a VM's monitor, kept for the VM's life: begun at the first use (a
/// guest that booted cold never needed it; QEMU's greeting waits in the socket).
#[derive(Debug)]
pub struct MonitorLink {
    unused: Option<tokio::net::UnixStream>,
    connected: Option<Monitor>,
}

impl MonitorLink {
    /// The conversation, begun where it had not been.
    pub async fn monitor(&mut self) -> Result<&mut Monitor, VmmError> {
        if let Some(stream) = self.unused.take() {
            self.connected = Some(Monitor::connect(stream).await?);
        }
        self.connected.as_mut().ok_or_else(|| VmmError::Failed {
            what: "QEMU's monitor".into(),
            detail: "the connection was lost".into(),
        })
    }
}

/// How a requested shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// The agent stopped every process and froze the filesystems clean before powering off.
    pub clean: bool,
    /// Processes it had to kill because they outlived the grace period.
    pub killed_processes: u32,
    /// The VM did not power off in time and was killed.
    pub forced: bool,
}

impl BootedVm {
    /// Launches the VM of `plan` through `vmm` and completes the agent handshake. The
    /// console log of the boot before is kept (rotated), this boot's starts empty.
    ///
    /// Where the plan allows a template (see [`crate::template`]), the VM resumes the
    /// template instead of booting, recording it first where there is none yet. A
    /// template that fails is removed, said at debug level, and the VM boots cold: a
    /// template never fails a boot.
    pub async fn boot(plan: &BootPlan, vmm: &impl Vmm) -> BootResult<BootedVm> {
        let log = &plan.console_log;
        if let Some(logs) = log.parent() {
            std::fs::create_dir_all(logs).map_err(BootError::io(format!("creating {}", logs.display())))?;
        }
        console::rotate(log).map_err(BootError::io(format!("rotating {}", log.display())))?;
        for link in &plan.file_links {
            stage(link)?;
        }
        if let Some(saved) = &plan.saved {
            // The sandbox's own saved state: it resumes, or the start fails.
            let how = match &plan.saved_memory {
                Some(memory) => Start::ResumeOver(saved, memory),
                None => Start::Resume(saved),
            };
            let resumed = Self::start(plan, vmm, how, BOOT_TIMEOUT).await;
            // Tried once: the guest may have written to its disks since, so the saved
            // memory no longer matches them; later starts boot the disks as they are.
            std::fs::remove_file(saved).map_err(BootError::io(format!("removing {}", saved.display())))?;
            return resumed.map_err(|cause| BootError::Unresumable {
                file: saved.clone(),
                cause: Box::new(cause),
            });
        }
        let Some(template) = plan.template.as_deref().and_then(|dir| Template::of(plan, vmm, dir)) else {
            return Self::start(plan, vmm, Start::Cold, BOOT_TIMEOUT).await;
        };
        // Recording and resuming share one limit, so that a cold boot after them still
        // fits in what a client waits for a start.
        let deadline = Instant::now() + TEMPLATE_TIMEOUT;
        if !template.exists() {
            if let Err(e) = template.record(plan, vmm, deadline).await {
                tracing::debug!("no template recorded: {e}");
            }
        }
        if !template.exists() {
            return Self::start(plan, vmm, Start::Cold, BOOT_TIMEOUT).await;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let failed = match Self::start(plan, vmm, Start::Resume(template.file()), left).await {
            Ok(vm) => {
                template.used();
                return Ok(vm);
            }
            Err(e) => e,
        };
        tracing::debug!(
            "the template {} failed ({failed}); booting cold",
            template.file().display()
        );
        let cold = Self::start(plan, vmm, Start::Cold, BOOT_TIMEOUT).await;
        // A guest that refused its setup after the resume may refuse it cold too: then the
        // sandbox's settings are at fault, not the template, which stays.
        let refused = matches!(failed, BootError::Agent(ClientError::Rejected(_)));
        if cold.is_ok() || !refused {
            template.discard();
        }
        cold
    }

    /// Launches the VM of `plan` as `how` says and completes the agent handshake.
    async fn start(plan: &BootPlan, vmm: &impl Vmm, how: Start<'_>, limit: Duration) -> BootResult<BootedVm> {
        let log = &plan.console_log;
        let mut spec = plan.vm.clone();
        match how {
            Start::Cold => {}
            Start::Resume(saved) => spec.resume_from = Some(saved.to_path_buf()),
            Start::ResumeOver(saved, memory) => {
                spec.resume_from = Some(saved.to_path_buf());
                spec.memory = msb_vmm::GuestMemory::CopyOf(memory.to_path_buf());
            }
        }
        let started = Instant::now();
        let mut process = vmm.launch(&spec).await?;
        let pipe = process
            .take_console()
            .ok_or_else(|| VmmError::InvalidSpec("the VMM gave no console".into()))?;
        let last_words =
            console::spawn_copier(pipe, log).map_err(BootError::io(format!("creating {}", log.display())))?;
        let (client, monitor) = match until_ready(plan, &mut process, how, limit).await {
            Ok(ready) => ready,
            Err(e) => {
                process.kill().await;
                return Err(with_console(e, log));
            }
        };
        Ok(BootedVm {
            process,
            client: Arc::new(client),
            monitor: Some(monitor),
            last_words,
            boot_time: started.elapsed(),
            resumed: !matches!(how, Start::Cold),
        })
    }

    /// What the guest said about its own end on its console so far, as it changes.
    pub fn last_words(&self) -> watch::Receiver<Option<LastWords>> {
        self.last_words.clone()
    }

    /// The agent's handshake answer, with the guest's own boot timings.
    pub fn ready(&self) -> &Ready {
        self.client.ready()
    }

    /// Pids of the host processes behind this VM.
    pub fn pids(&self) -> Vec<u32> {
        self.process.pids()
    }

    /// The host end of the guest's network device, once (see
    /// [`msb_vmm::VmProcess::take_network`]).
    pub fn take_network(&mut self) -> Option<std::os::unix::net::UnixStream> {
        self.process.take_network()
    }

    /// The connection to QEMU's monitor, once: to pause and save the guest.
    pub fn take_monitor(&mut self) -> Option<MonitorLink> {
        self.monitor.take()
    }

    /// The connection to the agent, to share with relays.
    pub fn client(&self) -> &Arc<AgentClient> {
        &self.client
    }

    /// Waits for the VMM to exit by itself and returns how it ended.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.process.wait().await
    }

    /// Kills the VM at once.
    pub async fn kill(&mut self) {
        self.process.kill().await;
    }

    /// Starts a process in the guest.
    pub async fn exec(&self, req: ExecRequest) -> BootResult<ExecSession> {
        Ok(self.client.exec(req).await?)
    }

    /// Asks the guest to stop: `request.signal` to every process, up to its grace period
    /// for them to exit, SIGKILL for the rest, then sync, freeze the filesystems clean and
    /// power off. Kills the VM if it has not gone within the grace period and a margin.
    pub async fn shutdown(&mut self, request: ShutdownRequest) -> Shutdown {
        let limit = Duration::from_millis(u64::from(request.grace_ms)) + POWER_OFF_MARGIN;
        let progress = self.client.shutdown(request).await;
        let exited = progress.is_ok() && self.process.wait_exit(limit).await;
        // Helpers (virtiofsd) end when QEMU disconnects; make sure of it.
        self.process.kill().await;
        let mut killed_processes = None;
        if let Ok(mut progress) = progress {
            while let Ok(msg) = progress.try_recv() {
                if let Message::ShutdownComplete { killed } = msg {
                    killed_processes = Some(killed);
                }
            }
        }
        Shutdown {
            clean: killed_processes.is_some(),
            killed_processes: killed_processes.unwrap_or(0),
            forced: !exited,
        }
    }
}

/// Brings the launched VM to a ready agent (resuming the saved guest it loaded, if `how`
/// says so), unless the VM ends first or the guest takes too long.
async fn until_ready(
    plan: &BootPlan,
    process: &mut VmProcess,
    how: Start<'_>,
    limit: Duration,
) -> BootResult<(AgentClient, MonitorLink)> {
    let stream = process.take_agent()?;
    let deferred = process.deferred_load().map(str::to_owned);
    let mut monitor = MonitorLink {
        unused: Some(process.take_monitor()?),
        connected: None,
    };
    let ready = async {
        let resumed = !matches!(how, Start::Cold);
        if resumed {
            let loading = Instant::now();
            monitor.monitor().await?.resume_loaded(deferred.as_deref()).await?;
            tracing::debug!("the saved guest loaded in {} ms", loading.elapsed().as_millis());
        }
        let hello = Hello::new(plan.guest.clone(), now(), entropy()?, resumed);
        Ok::<_, BootError>(AgentClient::handshake(stream, hello).await?)
    };
    tokio::select! {
        r = tokio::time::timeout(limit, ready) => match r {
            Ok(Ok(client)) => Ok((client, monitor)),
            Ok(Err(e)) => Err(qemu_words_or(process, e).await),
            Err(_) => Err(BootError::BootTimeout { secs: limit.as_secs(), log: plan.console_log.clone() }),
        },
        e = watch_exit(process) => Err(e.into()),
    }
}

/// QEMU's own words where QEMU is ending (its monitor closes before it exits, so a
/// failure seen there first says less), else `e`.
pub(crate) async fn qemu_words_or(process: &mut VmProcess, e: BootError) -> BootError {
    if process.wait_exit(EXIT_WAIT).await {
        if let Err(words) = process.check_running() {
            return words.into();
        }
    }
    e
}

/// Fresh host randomness for the guest's pool.
fn entropy() -> BootResult<Vec<u8>> {
    let mut bytes = vec![0u8; msb_protocol::HELLO_ENTROPY];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes))
        .map_err(BootError::io("reading host randomness for the guest"))?;
    Ok(bytes)
}

/// A boot failure with the end of the console added, where the VM itself failed.
fn with_console(e: BootError, log: &Path) -> BootError {
    match e {
        BootError::Vmm(VmmError::Failed { what, detail }) => {
            let console = console::tail(log, 8);
            let detail = if console.is_empty() {
                detail
            } else {
                format!(
                    "{detail}\nguest console ({}):\n  {}",
                    log.display(),
                    console.replace('\n', "\n  ")
                )
            };
            BootError::Vmm(VmmError::Failed { what, detail })
        }
        e => e,
    }
}

/// Resolves once the VMM has exited, with the reason.
async fn watch_exit(process: &mut VmProcess) -> msb_vmm::VmmError {
    loop {
        if let Err(e) = process.check_running() {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now() -> (i64, u32) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}
