//! Reference figures for `cargo xtask bench net` (`net.rs`): our guest kernel under bare
//! QEMU with the two userspace network backends people use instead of ours — libslirp
//! (`-netdev user`) and passt (`-netdev stream` to passt's socket) — measured in the network
//! test world (`msb_e2e::networld`) exactly as a sandbox would be: QEMU and passt run inside
//! SBX, the servers in WORLD, and nothing leaves the machine.
//!
//! The guest is the floor's idea with a network: an initramfs of busybox (to bring `eth0`
//! up) and `msb-netprobe` (a static std-only client, built like the agent), whose init runs
//! the measurements, prints one JSON line each on the serial console and reboots, which
//! ends QEMU. The same probe can be copied into a sandbox's rootfs to measure msb's own
//! stack the same way ([`probe`]).
//!
//! Driven by the probe inside the guest, timed on the host from the world's request log
//! (the guest kernel has no usable TSC under TCG: its clock is jiffies, 4 ms steps):
//! - guest → host: `upload` of N MiB to WORLD's sink, from the sink's accept to its EOF;
//! - host → guest: `download` of N MiB from WORLD's source, from the request to the guest
//!   closing after the last byte (data flows host to guest; the guest opens the connection);
//! - connection setup: sequential connects (each closed at once) to WORLD's HTTP server,
//!   as accepts per second and the median gap between accepts;
//! - DNS: sequential A queries to the backend's own DNS forwarder (10.0.2.3), which asks
//!   the world's DNS server (SBX's resolv.conf), as the gaps between the queries reaching
//!   that server: one gap is one full round trip through the forwarder plus the probe's
//!   (tiny) turn-around.

use super::console;
use super::net_figures::{from_run, probe_script, Baseline, Params};
use crate::agent::{newc, CpioEntry};
use crate::{kernel, setup};
use anyhow::{bail, Context, Result};
use msb_e2e::networld::NetWorld;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Guest addressing, the same for both backends (slirp's defaults).
const GUEST_CIDR: &str = "10.0.2.15/24";
const GATEWAY: &str = "10.0.2.2";
const GUEST_DNS: &str = "10.0.2.3";
/// Kernel command line: the floor's (see floor.rs) under TCG.
const CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 quiet rdinit=/init";
const TCG_CMDLINE: &str = " nolapic_timer no_timer_check tsc=reliable";
/// The whole guest run, at most.
const VM_TIMEOUT: Duration = Duration::from_secs(900);

/// A userspace network backend of QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// libslirp, built into QEMU: `-netdev user`.
    Slirp,
    /// passt, a separate process: `-netdev stream` to its unix socket.
    Passt,
}

impl Backend {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Slirp => "slirp",
            Backend::Passt => "passt",
        }
    }
}

/// The guest artefacts: kernel, busybox, probe, QEMU, and a scratch directory.
#[derive(Debug)]
pub struct Guest {
    kernel: PathBuf,
    busybox: PathBuf,
    probe: PathBuf,
    qemu: PathBuf,
    passt: Option<PathBuf>,
    kvm: bool,
    /// Console logs and initramfs images; removed on drop.
    dir: tempfile::TempDir,
}

/// Builds (or finds) what the baselines boot.
pub fn prepare() -> Result<Guest> {
    setup::ensure_packages(&["busybox-static", "qemu-system-x86"])?;
    let kernel = kernel::build()?;
    let probe = probe()?;
    let busybox = PathBuf::from("/bin/busybox");
    if !busybox.is_file() {
        bail!("{} missing: install busybox-static", busybox.display());
    }
    let qemu = setup::find_in_path("qemu-system-x86_64").context("qemu-system-x86_64 not found")?;
    let passt = setup::find_in_path("passt");
    let kvm = super::is_kvm();
    let dir = tempfile::Builder::new()
        .prefix("msb-netbase-")
        .tempdir()
        .context("creating a temp dir")?;
    Ok(Guest {
        kernel,
        busybox,
        probe,
        qemu,
        passt,
        kvm,
        dir,
    })
}

/// Builds `msb-netprobe` as a static binary for the guest (like the agent) and returns it.
pub fn probe() -> Result<PathBuf> {
    crate::agent::build_static(&["-p", "msb-e2e", "--bin", "msb-netprobe"], "msb-netprobe")
}

/// Both backends (passt only when installed: `cargo xtask setup`), each in a world of its
/// own. Needs root (network namespaces).
pub fn measure_all(p: &Params) -> Result<Vec<Baseline>> {
    let guest = prepare()?;
    let mut out = Vec::new();
    for backend in [Backend::Slirp, Backend::Passt] {
        if backend == Backend::Passt && guest.passt.is_none() {
            eprintln!("net baseline: passt is not installed (cargo xtask setup); skipping it");
            continue;
        }
        console::progress("net", &format!("{} in a fresh world", backend.name()));
        let world = NetWorld::try_create().context("creating the network test world (needs root)")?;
        out.push(measure(&world, &guest, backend, p)?);
    }
    console::progress_done();
    Ok(out)
}

/// Boots the guest once with `backend` inside `world`'s SBX and returns its figures.
pub fn measure(world: &NetWorld, guest: &Guest, backend: Backend, p: &Params) -> Result<Baseline> {
    let tag = backend.name();
    let initrd = guest.dir.path().join(format!("{tag}.cpio"));
    std::fs::write(&initrd, initramfs(guest, p)?).with_context(|| format!("writing {}", initrd.display()))?;
    let console_log = guest.dir.path().join(format!("{tag}.console"));
    let _ = std::fs::remove_file(&console_log);
    let mut helper = None;
    let netdev = match backend {
        Backend::Slirp => "user,id=n0".to_string(),
        Backend::Passt => {
            let sock = passt_socket_path(guest.dir.path())?;
            let passt = guest.passt.as_ref().context("passt is not installed")?;
            let passt_log = guest.dir.path().join("passt.log");
            let passt_err = std::fs::File::create(&passt_log).context("creating passt's log")?;
            let child = Helper(
                world
                    .command(passt)
                    .args(["-f", "-q", "-s"])
                    .arg(&sock)
                    .args(["-a", "10.0.2.15", "-n", "24", "-g", GATEWAY])
                    // Queries to 10.0.2.3 go to the first resolver of SBX's resolv.conf (a
                    // `-D` would replace that list, and passt would forward to itself).
                    .args(["--dns-forward", GUEST_DNS])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(passt_err)
                    .spawn()
                    .context("starting passt")?,
            );
            wait_for_path(&sock, Duration::from_secs(10)).with_context(|| {
                let said = std::fs::read_to_string(&passt_log).unwrap_or_default();
                format!("passt never made its socket; it said: {said}")
            })?;
            helper = Some(child);
            format!("stream,id=n0,server=off,addr.type=unix,addr.path={}", sock.display())
        }
    };
    let (accel, cpu, cmdline) = if guest.kvm {
        ("kvm", "host", CMDLINE.to_string())
    } else {
        ("tcg", "max", format!("{CMDLINE}{TCG_CMDLINE}"))
    };
    let defaults = microsandbox::Resources::default();
    let mut cmd = world.command(&guest.qemu);
    cmd.args(["-M", "microvm,acpi=off,x-option-roms=off", "-accel", accel, "-cpu", cpu])
        .args([
            "-smp",
            &defaults.cpus.to_string(),
            "-m",
            &defaults.memory_mib.to_string(),
        ])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console_log.display()))
        .arg("-kernel")
        .arg(&guest.kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", &cmdline])
        .args(["-device", "virtio-rng-device"])
        .args(["-netdev", &netdev, "-device", "virtio-net-device,netdev=n0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    world.clear_log();
    let mut qemu = Helper(cmd.spawn().context("starting QEMU")?);
    let status = qemu.wait_within(VM_TIMEOUT);
    drop(helper);
    let log = std::fs::read_to_string(&console_log).unwrap_or_default();
    let status = status.with_context(|| format!("{tag} guest; console: {log}"))?;
    if !status.success() {
        bail!("QEMU ({tag}) failed: {status}; console:\n{log}");
    }
    let accel = if guest.kvm { "KVM" } else { "TCG" };
    let hits = world.hits();
    from_run(tag, accel, p, &log, &hits).with_context(|| format!("{tag} guest; console:\n{log}"))
}

/// The guest's initramfs: busybox, the probe, and an init that configures `eth0`, runs the
/// measurements and reboots.
fn initramfs(guest: &Guest, p: &Params) -> Result<Vec<u8>> {
    let busybox = std::fs::read(&guest.busybox).with_context(|| format!("reading {}", guest.busybox.display()))?;
    let probe = std::fs::read(&guest.probe).with_context(|| format!("reading {}", guest.probe.display()))?;
    let init = init_script(p);
    let mut entries: Vec<CpioEntry> = ["bin", "dev", "proc", "sys", "tmp"]
        .into_iter()
        .map(CpioEntry::dir)
        .collect();
    entries.push(CpioEntry::console());
    entries.push(CpioEntry::file("bin/busybox", 0o755, &busybox));
    entries.push(CpioEntry::file("bin/msb-netprobe", 0o755, &probe));
    entries.push(CpioEntry::file("init", 0o755, init.as_bytes()));
    Ok(newc(&entries))
}

fn init_script(p: &Params) -> String {
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         ip link set lo up\n\
         ip link set eth0 up\n\
         ip addr add {GUEST_CIDR} dev eth0\n\
         ip route add default via {GATEWAY}\n\
         {}\
         reboot -f\n",
        probe_script(p, "/bin/msb-netprobe", &format!("{GUEST_DNS}:53"))
    )
}

/// A child process (QEMU, passt, `msb run`) killed and reaped when dropped.
pub(super) struct Helper(pub(super) Child);

impl Helper {
    /// Waits for the exit, at most `limit`; past it the process is killed and that is an error.
    pub(super) fn wait_within(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().context("waiting for a child process")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                bail!("killed after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where passt is told to make its socket: passt drops root for `nobody` before binding
/// it, so the directory must be nobody's (and the bench's private dir traversable).
fn passt_socket_path(scratch: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    const NOBODY: u32 = 65534;
    let dir = scratch.join("passt");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY))
        .with_context(|| format!("giving {} to nobody", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o711))?;
    Ok(dir.join("passt.sock"))
}

/// Waits until `path` exists, at most `limit`.
fn wait_for_path(path: &Path, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() > deadline {
            bail!("{} did not appear within {limit:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_runs_every_measurement_then_reboots() {
        let s = init_script(&Params::default());
        for needle in [
            "upload 203.0.113.10:9 67108864",
            "download 203.0.113.10:19 67108864",
            "connect 203.0.113.10:80 200",
            "dns 10.0.2.3:53 allowed.test 200",
        ] {
            assert!(s.contains(needle), "{needle} in {s}");
        }
        assert!(s.trim_end().ends_with("reboot -f"));
    }
}
