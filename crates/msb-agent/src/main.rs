//! `msb-agent`: PID 1 inside the microVM.
//!
//! It mounts the basic filesystems, finds the virtio-serial port named
//! [`msb_protocol::AGENT_PORT_NAME`], waits for the host's `Hello`, switches into the root
//! filesystem the host describes, answers `Ready`, and then serves exec sessions until the
//! host asks it to shut down.

mod files;
mod fresh;
mod init;
mod layers;
mod metrics;
mod net;
mod port;
mod power;
mod reaper;
mod server;
mod session;
mod shutdown;
mod spawn;
#[cfg(test)]
mod testutil;
mod tls;
mod watch;
mod workload;

use std::time::Duration;

fn main() {
    let start_ns = init::boottime_ns();
    if let Err(e) = init::early_mounts() {
        log(&format!("early mounts failed: {e}"));
    }
    // Before the port opens, so that templates hold them: see `layers` and `net`.
    if let Err(e) = layers::probe() {
        log(&format!("probing the layers' disks: {e}"));
    }
    if let Err(e) = net::bring_up_links() {
        log(&format!("bringing up the links: {e}"));
    }
    let code = match run(start_ns) {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("fatal: {e}"));
            1
        }
    };
    if std::process::id() == 1 {
        power::power_off();
    }
    std::process::exit(code);
}

fn run(start_ns: u64) -> std::io::Result<()> {
    let port = port::open(Duration::from_secs(10))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(server::serve(port, start_ns))
}

/// Writes one line to the console (the VM's log file on the host).
pub fn log(msg: &str) {
    eprintln!("msb-agent: {msg}");
}
