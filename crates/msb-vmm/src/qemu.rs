//! The QEMU `-M microvm` backend: direct kernel boot, virtio-mmio devices only.

use crate::child::{spawn_owned, VmProcess};
use crate::{virtiofsd, Accel, VmSpec, Vmm, VmmError};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Kernel command line. `reboot=t` + `-no-reboot` make the agent's reboot end QEMU (there is
/// no ACPI to power off); `panic=-1` turns a guest panic into an exit too.
const CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 quiet rdinit=/init";
/// Under TCG, calibrating the LAPIC timer busy-waits ~0.22 s and the timer check ~30 ms.
const TCG_CMDLINE: &str = " nolapic_timer no_timer_check tsc=reliable";

/// QEMU system emulator for x86_64.
#[derive(Debug, Clone)]
pub struct Qemu {
    binary: PathBuf,
}

impl Qemu {
    /// Finds `qemu-system-x86_64` (`$MSB_QEMU` overrides).
    pub fn locate() -> Result<Self, VmmError> {
        if let Some(p) = std::env::var_os("MSB_QEMU") {
            return Ok(Qemu { binary: p.into() });
        }
        std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("qemu-system-x86_64"))
                    .find(|p| p.is_file())
            })
            .map(|binary| Qemu { binary })
            .ok_or(VmmError::NotInstalled {
                program: "qemu-system-x86_64",
                hint: "install it with `apt-get install qemu-system-x86` (or run `cargo xtask setup`)",
            })
    }
}

/// Socket paths of one VM.
struct Sockets {
    agent: PathBuf,
    shares: Vec<(String, PathBuf)>,
}

/// The full QEMU argument list for `spec`.
fn args(spec: &VmSpec, sockets: &Sockets) -> Vec<String> {
    let mem = spec.memory_mib;
    let mut cmdline = CMDLINE.to_string();
    let (accel, cpu) = match spec.accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => {
            cmdline.push_str(TCG_CMDLINE);
            ("tcg", "max")
        }
    };
    let mut a: Vec<String> = [
        "-M",
        "microvm,acpi=off,x-option-roms=off,memory-backend=mem",
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["-smp".into(), spec.cpus.to_string(), "-m".into(), format!("{mem}M")]);
    // vhost-user-fs needs guest RAM shareable with virtiofsd.
    a.extend([
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
    ]);
    a.extend([
        "-kernel".into(),
        path(&spec.kernel),
        "-initrd".into(),
        path(&spec.initramfs),
    ]);
    a.extend(["-append".into(), cmdline]);
    a.extend([
        "-chardev".into(),
        format!("file,id=console,path={}", path(&spec.console_log)),
    ]);
    a.extend(["-serial".into(), "chardev:console".into()]);
    a.extend(["-device".into(), "virtio-serial-device".into()]);
    a.extend([
        "-chardev".into(),
        format!("socket,id=agent,path={},server=on,wait=off", path(&sockets.agent)),
    ]);
    a.extend([
        "-device".into(),
        format!("virtserialport,chardev=agent,name={}", msb_protocol::AGENT_PORT_NAME),
    ]);
    a.extend(["-device".into(), "virtio-rng-device".into()]);
    for (i, disk) in spec.disks.iter().enumerate() {
        let ro = if disk.readonly { ",readonly=on" } else { "" };
        // cache=unsafe on the writable upper: flushes are the guest's business (it syncs
        // before powering off), and skipping host fsyncs keeps writes fast.
        let cache = if disk.readonly { "" } else { ",cache=unsafe" };
        a.extend([
            "-drive".into(),
            format!(
                "file={},format={},if=none,id=d{i}{ro}{cache}",
                path(&disk.path),
                disk.format.qemu_name()
            ),
        ]);
        a.extend([
            "-device".into(),
            format!("virtio-blk-device,drive=d{i},serial={}", disk.serial),
        ]);
    }
    for (i, (tag, sock)) in sockets.shares.iter().enumerate() {
        a.extend(["-chardev".into(), format!("socket,id=fs{i},path={}", path(sock))]);
        a.extend([
            "-device".into(),
            format!("vhost-user-fs-device,chardev=fs{i},tag={tag}"),
        ]);
    }
    a
}

/// virtio-mmio transports QEMU's microvm machine provides.
const VIRTIO_SLOTS: usize = 8;
/// Devices every VM has: virtio-serial (agent channel) and virtio-rng.
const FIXED_DEVICES: usize = 2;

fn path(p: &Path) -> String {
    // QEMU option values separate with ','; a comma in a path is escaped by doubling it.
    p.display().to_string().replace(',', ",,")
}

fn socket_path(dir: &Path, name: &str) -> Result<PathBuf, VmmError> {
    let p = dir.join(name);
    if p.as_os_str().len() > 107 {
        return Err(VmmError::SocketPathTooLong(p));
    }
    Ok(p)
}

fn require(path: &Path, what: &'static str, hint: &'static str) -> Result<(), VmmError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(VmmError::Missing {
            what,
            path: path.to_path_buf(),
            hint,
        })
    }
}

impl Vmm for Qemu {
    async fn launch(&self, spec: &VmSpec) -> Result<VmProcess, VmmError> {
        let needed = FIXED_DEVICES + spec.disks.len() + spec.shares.len();
        if needed > VIRTIO_SLOTS {
            return Err(VmmError::TooManyDevices {
                needed,
                available: VIRTIO_SLOTS,
            });
        }
        require(&spec.kernel, "guest kernel", "build it with `cargo xtask kernel`")?;
        require(
            &spec.initramfs,
            "guest agent initramfs",
            "build it with `cargo xtask agent`",
        )?;
        let dir = &spec.runtime_dir;
        std::fs::create_dir_all(dir).map_err(VmmError::io(format!("creating {}", dir.display())))?;
        // The agent's socket gives whoever connects full control of the guest: owner only.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(VmmError::io(format!("securing {}", dir.display())))?;
        let mut helpers = Vec::new();
        let mut shares = Vec::new();
        if !spec.shares.is_empty() {
            let binary = virtiofsd::locate()?;
            for (i, (tag, host_dir)) in spec.shares.iter().enumerate() {
                let sock = socket_path(dir, &format!("fs{i}.sock"))?;
                let log = dir.join(format!("virtiofsd-{i}.log"));
                helpers.push(virtiofsd::start(&binary, host_dir, &sock, &log).await?);
                shares.push((tag.clone(), sock));
            }
        }
        let sockets = Sockets {
            agent: socket_path(dir, "agent.sock")?,
            shares,
        };
        let _ = std::fs::remove_file(&sockets.agent);
        let stderr_log = dir.join("qemu.log");
        let stderr =
            std::fs::File::create(&stderr_log).map_err(VmmError::io(format!("creating {}", stderr_log.display())))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(args(spec, &sockets))
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        tracing::debug!("launching {} {:?}", self.binary.display(), args(spec, &sockets));
        let vmm = spawn_owned(&mut cmd, "qemu-system-x86_64")?;
        Ok(VmProcess {
            vmm,
            helpers,
            agent_socket: sockets.agent,
            console_log: spec.console_log.clone(),
            stderr_log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(accel: Accel) -> VmSpec {
        VmSpec {
            kernel: "/k/vmlinux".into(),
            initramfs: "/k/init.cpio".into(),
            cpus: 2,
            memory_mib: 256,
            shares: vec![("root".into(), "/srv/root,1".into())],
            disks: vec![crate::Disk {
                path: "/l/a.erofs".into(),
                format: crate::DiskFormat::Raw,
                readonly: true,
                serial: "msb-l0".into(),
            }],
            runtime_dir: "/run/x".into(),
            console_log: "/log/console.log".into(),
            accel,
        }
    }

    #[test]
    fn tcg_gets_the_fast_timer_options_and_kvm_the_host_cpu() {
        let sockets = Sockets {
            agent: "/run/x/agent.sock".into(),
            shares: vec![("root".into(), "/run/x/fs0.sock".into())],
        };
        let tcg = args(&spec(Accel::Tcg), &sockets).join(" ");
        assert!(tcg.contains("-accel tcg -cpu max"));
        assert!(tcg.contains("nolapic_timer"));
        assert!(tcg.contains("memory-backend-memfd,id=mem,size=256M,share=on"));
        assert!(tcg.contains("vhost-user-fs-device,chardev=fs0,tag=root"));
        assert!(tcg.contains("-smp 2 -m 256M"));
        assert!(tcg.contains(
            "file=/l/a.erofs,format=raw,if=none,id=d0,readonly=on -device virtio-blk-device,drive=d0,serial=msb-l0"
        ));
        let kvm = args(&spec(Accel::Kvm), &sockets).join(" ");
        assert!(kvm.contains("-accel kvm -cpu host"));
        assert!(!kvm.contains("nolapic_timer"));
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let long = PathBuf::from("/").join("d".repeat(120));
        assert!(matches!(
            socket_path(&long, "agent.sock"),
            Err(VmmError::SocketPathTooLong(_))
        ));
    }
}
