//! The QEMU `-M microvm` backend: direct kernel boot, virtio-mmio devices only.

use crate::child::{spawn_owned, Confinement, VmProcess, PASSED_FD};
use crate::{joined, virtiofsd, Accel, DiskBacking, DiskFormat, VmSpec, Vmm, VmmError};
use serde::{Deserialize, Serialize};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Kernel command line. `reboot=t` + `-no-reboot` make the agent's reboot end QEMU (there is
/// no ACPI to power off); `panic=-1` turns a guest panic into an exit too.
const CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 quiet rdinit=/init";
/// Under TCG, calibrating the LAPIC timer busy-waits ~0.22 s and the timer check ~30 ms.
const TCG_CMDLINE: &str = " nolapic_timer no_timer_check tsc=reliable";

/// Where QEMU and its helpers are installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuConfig {
    /// `qemu-system-x86_64`.
    pub binary: PathBuf,
    /// virtiofsd (the Rust one), needed only for shared directories.
    pub virtiofsd: Option<PathBuf>,
}

/// QEMU system emulator for x86_64, `-M microvm`.
#[derive(Debug, Clone)]
pub struct Qemu {
    config: QemuConfig,
}

impl Qemu {
    /// QEMU as installed at the configured places.
    pub fn new(config: QemuConfig) -> Qemu {
        Qemu { config }
    }
}

/// Address space QEMU may map beyond the guest's RAM: TCG's 1 GiB translation buffer,
/// thread stacks (vCPUs, I/O workers), libraries; a 512 MiB guest under TCG peaked at
/// 1.8 GB. Under KVM most of it is never used.
const QEMU_OVERHEAD: u64 = 4 << 30;
/// Descriptors QEMU may hold; it uses a few dozen (eventfds per queue, disks, sockets).
const QEMU_OPEN_FILES: u64 = 4096;

/// The address space QEMU may map for a guest of `memory_mib` MiB.
fn qemu_address_space(memory_mib: u32) -> u64 {
    (u64::from(memory_mib) << 20) + QEMU_OVERHEAD
}

/// Files and sockets of one VM, all in its runtime directory.
struct RuntimeFiles {
    agent: PathBuf,
    shares: Vec<PathBuf>,
}

impl RuntimeFiles {
    fn of(spec: &VmSpec) -> Result<RuntimeFiles, VmmError> {
        let dir = &spec.runtime_dir;
        Ok(RuntimeFiles {
            agent: socket_path(dir, "agent.sock")?,
            shares: (0..spec.shares.len())
                .map(|i| socket_path(dir, &format!("fs{i}.sock")))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The descriptor QEMU reads for joined disk number `index`.
fn descriptor_path(spec: &VmSpec, index: usize) -> PathBuf {
    spec.runtime_dir.join(format!("disk{index}.vmdk"))
}

fn format_name(format: DiskFormat) -> &'static str {
    match format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
        DiskFormat::Vmdk => "vmdk",
    }
}

/// The full QEMU argument list for `spec`.
fn args(spec: &VmSpec, files: &RuntimeFiles) -> Vec<String> {
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
        // QEMU's own seccomp filter: no exec or fork, no setuid, no scheduler or
        // resource changes, no obsolete syscalls. A guest that breaks into QEMU gets a
        // process that cannot start a shell.
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
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
    // The console goes into a pipe the launcher reads (see `VmProcess::take_console`).
    a.extend(["-chardev".into(), format!("file,id=console,path=/dev/fd/{PASSED_FD}")]);
    a.extend(["-serial".into(), "chardev:console".into()]);
    a.extend(["-device".into(), "virtio-serial-device".into()]);
    a.extend([
        "-chardev".into(),
        format!("socket,id=agent,path={},server=on,wait=off", path(&files.agent)),
    ]);
    a.extend([
        "-device".into(),
        format!("virtserialport,chardev=agent,name={}", msb_protocol::AGENT_PORT_NAME),
    ]);
    a.extend(["-device".into(), "virtio-rng-device".into()]);
    if let Some(net) = &spec.net {
        // The frames' socket is the second descriptor passed (after the console).
        let fd = PASSED_FD + 1;
        a.extend([
            "-netdev".into(),
            format!("stream,id=net0,server=off,addr.type=fd,addr.str={fd}"),
        ]);
        let mac = net.mac.map(|b| format!("{b:02x}")).join(":");
        a.extend(["-device".into(), format!("virtio-net-device,netdev=net0,mac={mac}")]);
    }
    for (i, disk) in spec.disks.iter().enumerate() {
        let (file, format) = match &disk.backing {
            DiskBacking::File { path, format } => (path.clone(), format_name(*format)),
            DiskBacking::Joined(_) => (descriptor_path(spec, i), "vmdk"),
        };
        let ro = if disk.readonly { ",readonly=on" } else { "" };
        // cache=unsafe on writable disks: flushes are the guest's business (it syncs
        // before powering off), and skipping host fsyncs keeps writes fast.
        let cache = if disk.readonly { "" } else { ",cache=unsafe" };
        a.extend([
            "-drive".into(),
            format!("file={},format={format},if=none,id=d{i}{ro}{cache}", path(&file)),
        ]);
        a.extend([
            "-device".into(),
            format!("virtio-blk-device,drive=d{i},serial={}", disk.serial),
        ]);
    }
    for (i, (share, sock)) in spec.shares.iter().zip(&files.shares).enumerate() {
        a.extend(["-chardev".into(), format!("socket,id=fs{i},path={}", path(sock))]);
        a.extend([
            "-device".into(),
            format!("vhost-user-fs-device,chardev=fs{i},tag={}", share.tag),
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

/// Checks what QEMU would refuse late or obscurely: the slot count, the files it needs.
fn check(spec: &VmSpec) -> Result<(), VmmError> {
    let needed = FIXED_DEVICES + spec.disks.len() + spec.shares.len() + usize::from(spec.net.is_some());
    if needed > VIRTIO_SLOTS {
        return Err(VmmError::TooManyDevices {
            needed,
            available: VIRTIO_SLOTS,
        });
    }
    if spec.cpus == 0 || spec.memory_mib == 0 {
        return Err(VmmError::InvalidSpec(
            "a VM needs at least one CPU and some memory".into(),
        ));
    }
    for share in &spec.shares {
        if share.tag.is_empty() || share.tag.contains([',', '=']) || share.tag.len() > 36 {
            return Err(VmmError::InvalidSpec(format!(
                "virtio-fs tag '{}' is not usable",
                share.tag
            )));
        }
    }
    for disk in &spec.disks {
        if disk.serial.is_empty() || disk.serial.contains([',', '=']) || disk.serial.len() > 20 {
            return Err(VmmError::InvalidSpec(format!(
                "disk serial '{}' is not usable",
                disk.serial
            )));
        }
        if let DiskBacking::Joined(parts) = &disk.backing {
            joined::vmdk_descriptor(parts)?;
        }
    }
    Ok(())
}

impl Vmm for Qemu {
    fn command_line(&self, spec: &VmSpec) -> Result<Vec<String>, VmmError> {
        check(spec)?;
        let files = RuntimeFiles::of(spec)?;
        Ok(std::iter::once(path(&self.config.binary))
            .chain(args(spec, &files))
            .collect())
    }

    async fn launch(&self, spec: &VmSpec) -> Result<VmProcess, VmmError> {
        check(spec)?;
        require(&spec.kernel, "guest kernel", "build it with `cargo xtask kernel`")?;
        require(
            &spec.initramfs,
            "guest agent initramfs",
            "build it with `cargo xtask agent`",
        )?;
        let files = RuntimeFiles::of(spec)?;
        let dir = &spec.runtime_dir;
        std::fs::create_dir_all(dir).map_err(VmmError::io(format!("creating {}", dir.display())))?;
        // The agent's socket gives whoever connects full control of the guest: owner only.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(VmmError::io(format!("securing {}", dir.display())))?;
        for (i, disk) in spec.disks.iter().enumerate() {
            if let DiskBacking::Joined(parts) = &disk.backing {
                joined::write_descriptor(&descriptor_path(spec, i), &joined::vmdk_descriptor(parts)?)?;
            }
        }
        let mut helpers = Vec::new();
        if !spec.shares.is_empty() {
            let binary = self.config.virtiofsd.as_deref().ok_or(VmmError::NotInstalled {
                program: "virtiofsd",
                hint: virtiofsd::HINT,
            })?;
            for (i, (share, sock)) in spec.shares.iter().zip(&files.shares).enumerate() {
                let log = dir.join(format!("virtiofsd-{i}.log"));
                helpers.push(virtiofsd::start(binary, share, sock, &log).await?);
            }
        }
        let _ = std::fs::remove_file(&files.agent);
        let stderr_log = dir.join("qemu.log");
        let stderr =
            std::fs::File::create(&stderr_log).map_err(VmmError::io(format!("creating {}", stderr_log.display())))?;
        let args = args(spec, &files);
        tracing::debug!("launching {} {:?}", self.config.binary.display(), args);
        let (console, console_in) = std::io::pipe().map_err(VmmError::io("making the console pipe"))?;
        let console = tokio::net::unix::pipe::Receiver::from_owned_fd(console.into())
            .map_err(VmmError::io("reading the console pipe"))?;
        let mut cmd = Command::new(&self.config.binary);
        cmd.args(&args).stdout(std::process::Stdio::null()).stderr(stderr);
        let (network, guest_end) = match &spec.net {
            Some(_) => {
                let (ours, theirs) =
                    std::os::unix::net::UnixStream::pair().map_err(VmmError::io("making the network socket"))?;
                (Some(ours), Some(theirs))
            }
            None => (None, None),
        };
        let mut fds = vec![console_in.as_raw_fd()];
        fds.extend(guest_end.as_ref().map(|s| s.as_raw_fd()));
        // QEMU needs no capability (every file it opens is msb's own or passed to it), and
        // no file beyond its own (`landlock::rules`).
        let ruleset = crate::landlock::qemu_ruleset(spec)?;
        let confinement = Confinement {
            drop_caps: true,
            landlock: ruleset.as_ref().map(|fd| fd.as_raw_fd()),
            address_space: Some(qemu_address_space(spec.memory_mib)),
            open_files: Some(QEMU_OPEN_FILES),
        };
        let spawned = spawn_owned(&mut cmd, "qemu-system-x86_64", &fds, confinement);
        drop(ruleset);
        // Only QEMU holds the console's write end and the guest's socket now, so they end
        // when QEMU does.
        drop(console_in);
        drop(guest_end);
        let vmm = spawned.map_err(|e| match e {
            VmmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => VmmError::NotInstalled {
                program: "qemu-system-x86_64",
                hint: "install it with `apt-get install qemu-system-x86` (or run `cargo xtask setup`), or set MSB_QEMU",
            },
            e => e,
        })?;
        Ok(VmProcess {
            vmm,
            helpers,
            agent_socket: files.agent,
            console: Some(console),
            network,
            stderr_log,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Disk, DiskPart, Share};

    fn spec(accel: Accel) -> VmSpec {
        VmSpec {
            kernel: "/k/vmlinux".into(),
            initramfs: "/k/init.cpio".into(),
            cpus: 2,
            memory_mib: 256,
            shares: vec![Share::private("root", "/srv/root,1")],
            disks: vec![
                Disk {
                    backing: DiskBacking::File {
                        path: "/l/a.erofs".into(),
                        format: DiskFormat::Raw,
                    },
                    readonly: true,
                    serial: "msb-l0".into(),
                },
                Disk {
                    backing: DiskBacking::Joined(vec![DiskPart {
                        path: "/l/b.erofs".into(),
                        len: 4096,
                    }]),
                    readonly: true,
                    serial: "msb-l1".into(),
                },
            ],
            runtime_dir: "/run/x".into(),
            accel,
            net: None,
        }
    }

    fn qemu() -> Qemu {
        Qemu::new(QemuConfig {
            binary: "/usr/bin/qemu-system-x86_64".into(),
            virtiofsd: None,
        })
    }

    #[test]
    fn tcg_gets_the_fast_timer_options_and_kvm_the_host_cpu() {
        let tcg = qemu().command_line(&spec(Accel::Tcg)).unwrap().join(" ");
        assert!(tcg.starts_with("/usr/bin/qemu-system-x86_64 -M microvm"));
        assert!(tcg.contains("-accel tcg -cpu max"));
        assert!(tcg.contains("-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"));
        assert!(tcg.contains("nolapic_timer"));
        assert!(tcg.contains("memory-backend-memfd,id=mem,size=256M,share=on"));
        assert!(tcg
            .contains("-chardev socket,id=fs0,path=/run/x/fs0.sock -device vhost-user-fs-device,chardev=fs0,tag=root"));
        assert!(tcg.contains("-smp 2 -m 256M"));
        assert!(tcg.contains(
            "file=/l/a.erofs,format=raw,if=none,id=d0,readonly=on -device virtio-blk-device,drive=d0,serial=msb-l0"
        ));
        assert!(tcg.contains("file=/run/x/disk1.vmdk,format=vmdk,if=none,id=d1,readonly=on"));
        let kvm = qemu().command_line(&spec(Accel::Kvm)).unwrap().join(" ");
        assert!(kvm.contains("-accel kvm -cpu host"));
        assert!(!kvm.contains("nolapic_timer"));
        assert!(!kvm.contains("-netdev"));
        let mut networked = spec(Accel::Kvm);
        networked.net = Some(crate::NetDevice {
            mac: [2, 0x6d, 0x73, 0x62, 0, 2],
        });
        let net = qemu().command_line(&networked).unwrap().join(" ");
        assert!(net.contains(
            "-netdev stream,id=net0,server=off,addr.type=fd,addr.str=4 -device virtio-net-device,netdev=net0,mac=02:6d:73:62:00:02"
        ));
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let long = PathBuf::from("/").join("d".repeat(120));
        assert!(matches!(
            socket_path(&long, "agent.sock"),
            Err(VmmError::SocketPathTooLong(_))
        ));
    }

    #[test]
    fn specs_qemu_would_refuse_are_refused_first() {
        let mut many = spec(Accel::Tcg);
        many.disks = vec![many.disks[0].clone(); 7];
        assert!(matches!(
            qemu().command_line(&many),
            Err(VmmError::TooManyDevices { .. })
        ));
        let mut comma = spec(Accel::Tcg);
        comma.disks[0].serial = "a,b".into();
        assert!(matches!(qemu().command_line(&comma), Err(VmmError::InvalidSpec(_))));
        let mut quoted = spec(Accel::Tcg);
        quoted.disks[1].backing = DiskBacking::Joined(vec![DiskPart {
            path: "/l/\"".into(),
            len: 1,
        }]);
        assert!(matches!(qemu().command_line(&quoted), Err(VmmError::InvalidSpec(_))));
    }
}
