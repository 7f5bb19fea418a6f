//! Executing a boot plan: launch the VM through a VMM, connect to its agent, hand it the
//! guest configuration.

use crate::{BootError, BootPlan, BootResult};
use msb_protocol::client::{AgentClient, ExecSession};
use msb_protocol::{ExecRequest, Ready};
use msb_vmm::{VmProcess, Vmm};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a guest may take from launch to a ready agent (generous: TCG is slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// A running VM with a connected agent.
#[derive(Debug)]
pub struct BootedVm {
    process: VmProcess,
    client: Arc<AgentClient>,
    /// Host-measured time from launching the VMM to the agent's `Ready`.
    pub boot_time: Duration,
}

impl BootedVm {
    /// Launches the VM of `plan` through `vmm` and completes the agent handshake.
    pub async fn boot(plan: &BootPlan, vmm: &impl Vmm) -> BootResult<BootedVm> {
        let logs = plan.vm.console_log.parent().unwrap_or(&plan.vm.runtime_dir);
        std::fs::create_dir_all(logs).map_err(BootError::io(format!("creating {}", logs.display())))?;
        let started = Instant::now();
        let mut process = vmm.launch(&plan.vm).await?;
        let stream = process.connect_agent(Duration::from_secs(10)).await?;
        let handshake = AgentClient::handshake(stream, plan.guest.clone(), now());
        let client = tokio::select! {
            r = tokio::time::timeout(BOOT_TIMEOUT, handshake) => match r {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    process.check_running()?;
                    return Err(e.into());
                }
                Err(_) => return Err(BootError::BootTimeout { secs: BOOT_TIMEOUT.as_secs(), log: plan.vm.console_log.clone() }),
            },
            e = watch_exit(&mut process) => return Err(e.into()),
        };
        Ok(BootedVm {
            process,
            client: Arc::new(client),
            boot_time: started.elapsed(),
        })
    }

    /// The agent's handshake answer, with the guest's own boot timings.
    pub fn ready(&self) -> &Ready {
        self.client.ready()
    }

    /// Pids of the host processes behind this VM.
    pub fn pids(&self) -> Vec<u32> {
        self.process.pids()
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

    /// Asks the guest to stop its processes, sync and power off; kills the VM if it has not
    /// exited within `grace`.
    pub async fn shutdown(&mut self, grace: Duration) {
        if self.client.shutdown().await.is_err() || !self.process.wait_exit(grace).await {
            self.process.kill().await;
        }
        // Helpers (virtiofsd) end when QEMU disconnects; make sure of it.
        self.process.kill().await;
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
