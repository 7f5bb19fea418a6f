//! The supervisor's life: take the sandbox lock, boot the VM, record it running, report
//! ready, serve clients until something ends the sandbox, then record why and go.

use crate::ending::{finish, Ending};
use crate::execlog::{describe, ExecLog};
use crate::network::{self, Network};
use crate::relay::{self, Activity, Shared, StopHow, StopRequest};
use crate::{Error, ReadyLine, Result, SandboxLock, SupervisorInput, CONTROL_SOCKET};
use msb_boot::{BootPlan, BootedVm};
use msb_net::intercept::Interception;
use msb_protocol::client::ExecEvent;
use msb_protocol::ExecRequest;
use msb_store::{SandboxState, Store};
use msb_types::{Paths, SandboxSpec};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

/// How long a stopping supervisor waits for its clients to read the last replies.
const FAREWELL: Duration = Duration::from_secs(2);
/// How long an owned sandbox waits for its owner to connect after starting.
const OWNER_WAIT: Duration = Duration::from_secs(10);

/// A started sandbox, before it serves anyone.
struct Started {
    store: Store,
    spec: SandboxSpec,
    vm: BootedVm,
    saver: crate::snapshot::Saver,
    /// Resumed from a snapshot: its command runs already (from before the save).
    from_snapshot: bool,
    network: Option<Network>,
    interception: Option<Arc<Interception>>,
    listener: UnixListener,
    log: ExecLog,
    _lock: SandboxLock,
}

/// Boots the sandbox of `input` and supervises it until it stops. Reports how the start
/// went as one line on stdout ([`ReadyLine`]); returns the process exit status. An owned
/// sandbox belongs to whoever started it: it stops when that one is gone before connecting,
/// fails to connect in time, or disconnects.
pub async fn supervise(input: SupervisorInput) -> i32 {
    let SupervisorInput {
        home,
        name,
        owned,
        plan,
        ..
    } = input;
    let (paths, name) = (Paths::new(home), name.as_str());
    let started = match start(&paths, name, &plan).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("sandbox '{name}' did not start: {e}");
            let line = ReadyLine {
                pid: std::process::id(),
                vmm_pid: None,
                boot_ms: 0,
                accel_note: None,
                error: Some(e.to_string()),
            };
            line.emit();
            return 1;
        }
    };
    let heard = ReadyLine {
        pid: std::process::id(),
        vmm_pid: started.vm.pids().first().copied(),
        boot_ms: started.vm.boot_time.as_millis() as u64,
        accel_note: plan.accel_note.clone(),
        error: None,
    }
    .emit();
    // The VM is up: from here on the guest's bytes are parsed, so the walls go up. Landlock
    // first: the seccomp filter does not allow the call.
    match crate::landlock::confine(&paths, name, started.network.as_ref()).await {
        Ok(crate::landlock::Confined::Threads { left_out: 0 }) => {
            tracing::debug!("sandbox '{name}': its supervisor's view of files is shut")
        }
        Ok(crate::landlock::Confined::Threads { left_out }) => {
            tracing::warn!("sandbox '{name}': its supervisor's view of files is shut, but not for {left_out} thread(s) started before")
        }
        Ok(crate::landlock::Confined::Off) => {}
        Err(e) => tracing::warn!("sandbox '{name}': its supervisor's view of files is not (wholly) shut: {e}"),
    }
    // Then the filter.
    let mode = crate::syscalls::Mode::from_env();
    if let Err(e) = crate::syscalls::confine(mode) {
        tracing::warn!("sandbox '{name}': its supervisor runs without its seccomp filter: {e}");
    }
    let owner = match (owned, heard) {
        (false, _) => Owner::None,
        (true, true) => Owner::Expected,
        (true, false) => Owner::Gone,
    };
    match serve(started, &paths, name, owner).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("sandbox '{name}': {e}");
            1
        }
    }
}

async fn start(paths: &Paths, name: &str, plan: &BootPlan) -> Result<Started> {
    let store = Store::open(paths)?;
    let record = store.get_sandbox(name)?.ok_or_else(|| Error::NotFound(name.into()))?;
    let spec: SandboxSpec = record.spec()?;
    let dir = paths.sandbox_dir(name);
    if !dir.is_dir() {
        return Err(Error::NotFound(name.into()));
    }
    let lock = SandboxLock::try_acquire(&dir)
        .map_err(Error::io(format!("locking sandbox '{name}'")))?
        .ok_or_else(|| Error::AlreadyRunning(name.into()))?;
    if record.state == SandboxState::Running {
        // We hold the lock, so whoever recorded this run is gone without saying so.
        store.set_crashed(name, "its supervisor died")?;
    }
    let logs = dir.join("logs");
    let log = std::fs::create_dir_all(&logs)
        .and_then(|()| ExecLog::open(&logs.join("exec.log")))
        .map_err(Error::io(format!("opening the exec log of {name}")))?;
    let ports = plan
        .network
        .as_ref()
        .map(|n| network::bind_ports(n, &store))
        .transpose()?;
    let interception = crate::secrets::interception(&spec, &dir)?;
    // The guest trusts this run's interception CA (and drops an earlier run's).
    let mut plan = plan.clone();
    plan.guest.tls_ca = interception.as_ref().map(|i| i.ca_pem());
    let mut vm = BootedVm::boot(&plan, &msb_vmm::Qemu::new(plan.vmm.clone())).await?;
    let network = match (&plan.network, ports, vm.take_network()) {
        (Some(net), Some(ports), Some(link)) => Some(network::start(net, link, ports, interception.clone())?),
        (Some(_), ..) => return Err(Error::Network("the VM came up without its network device".into())),
        _ => None,
    };
    let socket = dir.join("runtime").join(CONTROL_SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(Error::io(format!("listening on {}", socket.display())))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::io(format!("securing {}", socket.display())))?;
    let vmm_pid = vm.pids().first().copied().unwrap_or(0);
    store.set_running(name, std::process::id(), vmm_pid)?;
    let disks = plan
        .vm
        .disks
        .iter()
        .filter_map(|d| match (&d.backing, msb_boot::saved::saved_disk_file(d)) {
            (msb_vmm::DiskBacking::File { path, .. }, Some(file)) => Some((path.clone(), file)),
            _ => None,
        })
        .collect();
    let saver = crate::snapshot::Saver::new(vm.take_monitor(), dir.clone(), disks);
    let how = match (&plan.saved, vm.resumed) {
        (Some(_), _) => ", resumed from a snapshot",
        (None, true) => ", resumed from a template",
        (None, false) => "",
    };
    log.note(&format!("sandbox started (boot {} ms{how})", vm.boot_time.as_millis()));
    Ok(Started {
        store,
        spec,
        vm,
        saver,
        from_snapshot: plan.saved.is_some(),
        network,
        interception,
        listener,
        log,
        _lock: lock,
    })
}

/// Whether the sandbox waits for an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    None,
    Expected,
    Gone,
}

async fn serve(s: Started, paths: &Paths, name: &str, owner: Owner) -> Result<()> {
    let Started {
        store,
        spec,
        mut vm,
        saver,
        from_snapshot,
        network,
        interception,
        listener,
        log,
        _lock,
    } = s;
    let (stop_tx, mut stop_rx) = mpsc::channel(8);
    let (connections, mut open) = watch::channel(0usize);
    let shared = Arc::new(Shared {
        agent: vm.client().clone(),
        ready: vm.ready().clone(),
        activity: Activity::new(),
        log,
        stop: stop_tx,
        connections,
        vm_pids: vm.pids(),
        memory_limit: u64::from(spec.resources.memory_mib) << 20,
        cpus: spec.resources.cpus,
        started: Instant::now(),
        owner_seen: false.into(),
        main_exit: Mutex::new(None),
        draining: false.into(),
        network,
        saver,
    });
    if let Some(args) = spec.command.as_ref().filter(|_| !from_snapshot) {
        let output = paths.sandbox_dir(name).join("logs").join("output.log");
        match msb_boot::command::run_request(&spec, args.clone(), Default::default()) {
            Ok(req) => {
                tokio::spawn(run_main(req, shared.clone(), output));
            }
            Err(e) => shared.log.note(&format!("the sandbox's command cannot run: {e}")),
        }
    }
    let deadline = spec.max_duration_secs.map(|s| Instant::now() + Duration::from_secs(s));
    let idle_limit = spec.idle_timeout_secs.map(Duration::from_secs);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::io("watching SIGTERM"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::io("watching SIGINT"))?;
    let graceful = |reason: &str| StopRequest {
        how: StopHow::Graceful(Duration::from_secs(10)),
        reason: reason.into(),
        exit_code: None,
        done: None,
    };
    let owner_deadline = Instant::now() + OWNER_WAIT;
    let saving = shared.saver.saving();
    let mut watchdog = std::pin::pin!(crate::watchdog::watch(vm.client().clone(), vm.last_words(), saving));
    let ending = loop {
        if owner == Owner::Gone {
            break Ending::Requested(graceful("whoever started it went away"));
        }
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(relay::serve_client(stream, shared.clone()));
                }
            }
            status = vm.wait() => break Ending::VmExited(status),
            () = violated(&interception) => break Ending::Requested(StopRequest {
                how: StopHow::Kill,
                reason: "a secret's placeholder was sent where its value may not go (block-and-terminate)".into(),
                exit_code: None,
                done: None,
            }),
            gone = &mut watchdog => break Ending::GuestGone(gone),
            Some(request) = stop_rx.recv() => break Ending::Requested(request),
            _ = terminate.recv() => break Ending::Requested(graceful("its supervisor was terminated")),
            _ = interrupt.recv() => break Ending::Requested(graceful("its supervisor was interrupted")),
            _ = tick.tick() => {
                if idle_limit.is_some_and(|limit| shared.activity.idle_for() >= limit) {
                    break Ending::Requested(graceful("idle timeout"));
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break Ending::Requested(graceful("max duration reached"));
                }
                let unclaimed = owner == Owner::Expected && !shared.owner_seen.load(std::sync::atomic::Ordering::SeqCst);
                if unclaimed && Instant::now() >= owner_deadline {
                    break Ending::Requested(graceful("its owner never connected"));
                }
            }
        }
    };
    drop(listener);
    // Stop requests from now on are answered at once (the sandbox is stopping already);
    // their clients then wait for this process to let go of the sandbox. Requests still
    // queued are answered the same way as their channel goes.
    drop(stop_rx);
    let stop_signal = msb_boot::command::stop_signal(&spec);
    let (mut outcome, done) = finish(ending, &mut vm, stop_signal).await;
    // The command may have ended while the sandbox was being stopped.
    if outcome.exit_code.is_none() {
        outcome.exit_code = shared.main_exit.lock().ok().and_then(|e| *e);
    }
    if outcome.crashed {
        shared.log.note(&format!("sandbox crashed: {}", outcome.reason));
        store.set_crashed(name, &outcome.reason)?;
    } else {
        shared.log.note(&format!("sandbox stopped: {}", outcome.reason));
        store.set_stopped(name, outcome.exit_code, &outcome.reason)?;
    }
    if spec.ephemeral {
        store.remove_sandbox(name)?;
        let _ = std::fs::remove_dir_all(paths.sandbox_dir(name));
    }
    if let Some(done) = done {
        let _ = done.send(());
    }
    // Let clients read their last replies before the process (and its sockets) goes.
    let _ = tokio::time::timeout(FAREWELL, open.wait_for(|n| *n == 0)).await;
    Ok(())
}

/// Resolves once a secret violation asks for the sandbox to be stopped; never without
/// interception.
async fn violated(interception: &Option<Arc<Interception>>) {
    match interception {
        Some(interception) => interception.terminated().await,
        None => std::future::pending().await,
    }
}

/// Runs the sandbox's main command, its output into `output`; the sandbox stops when it
/// ends, with its exit code.
async fn run_main(req: ExecRequest, shared: Arc<Shared>, output: std::path::PathBuf) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&output).ok();
    shared.activity.begin();
    let entry = shared.log.started(&req);
    let started = Instant::now();
    let (outcome, code) = match shared.agent.exec(req).await {
        Ok(mut session) => loop {
            match session.next().await {
                Ok(Some(ExecEvent::Stdout(b) | ExecEvent::Stderr(b))) => {
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(&b);
                    }
                }
                Ok(Some(ExecEvent::Exited(status))) => break (describe(status), status.shell_code()),
                Ok(Some(ExecEvent::SpawnFailed(f))) => {
                    break (format!("failed to start: {}", f.message), f.kind.exit_code())
                }
                Ok(Some(ExecEvent::Started(_))) => {}
                Ok(None) | Err(_) => break ("ended: the sandbox stopped".into(), 255),
            }
        },
        Err(e) => (format!("failed to start: {e}"), 125),
    };
    shared.log.ended(entry, &outcome, started.elapsed());
    shared.activity.end();
    if let Ok(mut exit) = shared.main_exit.lock() {
        *exit = Some(code);
    }
    let request = StopRequest {
        how: StopHow::Graceful(Duration::from_secs(10)),
        reason: format!("its command ended ({outcome})"),
        exit_code: Some(code),
        done: None,
    };
    let _ = shared.stop.send(request).await;
}
