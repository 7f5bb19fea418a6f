//! The QEMU `-M microvm` backend: direct kernel boot, virtio-mmio devices only.

use crate::child::{spawn_owned, Confinement, OwnIds, VmProcess, PASSED_FD};
use crate::handed::{self, Handed};
use crate::{own_ids, virtiofsd, Accel, DiskBacking, DiskFormat, GuestMemory, VmSpec, Vmm, VmmError};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Kernel command line. `reboot=t` + `-no-reboot` make the agent's reboot end QEMU (there is
/// no ACPI to power off); `panic=-1` turns a guest panic into an exit too.
const CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 quiet rdinit=/init";
/// Under TCG, calibrating the LAPIC timer busy-waits ~0.22 s and the timer check ~30 ms.
const TCG_CMDLINE: &str = " nolapic_timer no_timer_check tsc=reliable";
/// With a virtio-scsi controller: the kernel does not scan it at boot (its 256 targets
/// cost ~70 ms under TCG); the agent scans target 0, where the LUNs are, when it needs them.
const SCSI_CMDLINE: &str = " scsi_mod.scan=manual";

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

/// The socket virtiofsd listens on for share number `index`.
fn share_socket(spec: &VmSpec, index: usize) -> Result<PathBuf, VmmError> {
    socket_path(&spec.runtime_dir, &format!("fs{index}.sock"))
}

fn format_name(format: DiskFormat) -> &'static str {
    match format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
        DiskFormat::Vmdk => "vmdk",
    }
}

/// Whether QEMU is launched inside its walls. `MSB_QEMU_CONFINEMENT=off` launches it
/// without them (no `-sandbox`, Landlock, ids of its own, emptied capabilities or rlimits),
/// only so `cargo xtask bench boot` can measure what they cost.
fn confined() -> bool {
    std::env::var_os("MSB_QEMU_CONFINEMENT").is_none_or(|v| v != "off")
}

/// The full QEMU argument list for `spec`, with QEMU's own seccomp filter if `confined`.
fn args(spec: &VmSpec, confined: bool) -> Vec<String> {
    let mem = spec.memory_mib;
    let mut cmdline = CMDLINE.to_string();
    if spec.disks.iter().any(|d| matches!(d.backing, DiskBacking::Luns(_))) {
        cmdline.push_str(SCSI_CMDLINE);
    }
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
    if confined {
        // QEMU's own seccomp filter: no exec or fork, no setuid, no scheduler or
        // resource changes, no obsolete syscalls. A guest that breaks into QEMU gets a
        // process that cannot start a shell.
        a.extend([
            "-sandbox".into(),
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny".into(),
        ]);
    }
    if spec.paused {
        a.push("-S".into());
    }
    a.extend(["-smp".into(), spec.cpus.to_string(), "-m".into(), format!("{mem}M")]);
    a.extend(["-object".into(), memory_backend(spec)]);
    a.extend(["-append".into(), cmdline]);
    a.extend(["-device".into(), "virtio-rng-device".into()]);
    for (at, item) in handed::layout(spec).into_iter().enumerate() {
        let fd = PASSED_FD + at as RawFd;
        a.extend(handed_args(spec, item, fd));
    }
    a
}

/// The guest's RAM, as the object `-M ...,memory-backend=mem` names. Always an object of
/// that one id, so that a guest saved over one kind loads over another: the RAM block
/// keeps its name.
fn memory_backend(spec: &VmSpec) -> String {
    let mem = spec.memory_mib;
    match (&spec.memory, handed::number(spec, Handed::Memory)) {
        (GuestMemory::Fills(_) | GuestMemory::CopyOf(_), Some(fd)) => {
            let share = if matches!(spec.memory, GuestMemory::Fills(_)) {
                "on"
            } else {
                "off"
            };
            format!("memory-backend-file,id=mem,size={mem}M,mem-path=/proc/self/fd/{fd},share={share}")
        }
        // vhost-user-fs needs guest RAM shareable with virtiofsd.
        _ if !spec.shares.is_empty() => format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
        // Private anonymous memory: saving and loading a guest reads its untouched pages
        // as the zero page instead of allocating each (8× faster to load here).
        _ => format!("memory-backend-ram,id=mem,size={mem}M"),
    }
}

/// Whether the saved guest `spec` resumes is loaded after launch, through the monitor
/// ([`Monitor::resume_loaded`] with [`VmProcess::deferred_load`]): one saved without its
/// memory can be read only once the monitor has said so, which the command line cannot.
pub(crate) fn loads_deferred(spec: &VmSpec) -> bool {
    spec.resume_from.is_some() && matches!(spec.memory, GuestMemory::CopyOf(_))
}

/// The arguments that tell QEMU what descriptor `fd` is and what to make of it.
fn handed_args(spec: &VmSpec, item: Handed, fd: RawFd) -> Vec<String> {
    match item {
        // The console goes into a pipe the launcher reads (see `VmProcess::take_console`).
        Handed::Console => vec![
            "-chardev".into(),
            format!("file,id=console,path=/dev/fd/{fd}"),
            "-serial".into(),
            "chardev:console".into(),
        ],
        Handed::Network => {
            let mac = spec.net.as_ref().map(|n| n.mac).unwrap_or_default();
            let mac = mac.map(|b| format!("{b:02x}")).join(":");
            vec![
                "-netdev".into(),
                format!("stream,id=net0,server=off,addr.type=fd,addr.str={fd}"),
                "-device".into(),
                // No gratuitous ARP from a guest resumed from a template: its address
                // did not move, and its network stays silent until it speaks itself.
                format!("virtio-net-device,netdev=net0,mac={mac},guest_announce=off"),
            ]
        }
        Handed::Agent => vec![
            "-chardev".into(),
            format!("socket,id=agent,fd={fd}"),
            "-device".into(),
            "virtio-serial-device".into(),
            "-device".into(),
            format!(
                "virtserialport,chardev=agent,name={},id={}",
                msb_protocol::AGENT_PORT_NAME,
                crate::monitor::AGENT_PORT_ID
            ),
        ],
        Handed::Monitor => vec![
            "-chardev".into(),
            format!("socket,id=monitor,fd={fd}"),
            "-mon".into(),
            "chardev=monitor,mode=control".into(),
        ],
        Handed::Saved if loads_deferred(spec) => vec!["-incoming".into(), "defer".into()],
        Handed::Saved => vec!["-incoming".into(), format!("fd:{fd}")],
        // Named in the memory backend's `mem-path`.
        Handed::Memory => Vec::new(),
        Handed::Kernel => vec!["-kernel".into(), format!("/proc/self/fd/{fd}")],
        Handed::Initramfs => vec!["-initrd".into(), format!("/proc/self/fd/{fd}")],
        Handed::Share(i) => {
            let tag = spec.shares.get(i).map(|s| s.tag.as_str()).unwrap_or_default();
            vec![
                "-chardev".into(),
                format!("socket,id=fs{i},fd={fd}"),
                "-device".into(),
                format!("vhost-user-fs-device,chardev=fs{i},tag={tag}"),
            ]
        }
        Handed::Disk(i) => {
            let Some(disk) = spec.disks.get(i) else {
                return Vec::new();
            };
            let DiskBacking::File { format, .. } = &disk.backing else {
                return Vec::new();
            };
            let format = format_name(*format);
            let ro = if disk.readonly { ",readonly=on" } else { "" };
            // cache=unsafe on writable disks: flushes are the guest's business (it syncs
            // before powering off), and skipping host fsyncs keeps writes fast.
            let cache = if disk.readonly { "" } else { ",cache=unsafe" };
            vec![
                "-add-fd".into(),
                format!("fd={fd},set={fd}"),
                "-drive".into(),
                format!("file=/dev/fdset/{fd},format={format},if=none,id=d{i}{ro}{cache}{UNLOCKED}"),
                "-device".into(),
                format!("virtio-blk-device,drive=d{i},serial={}", disk.serial),
            ]
        }
        Handed::DiskReadOnly(i) => {
            let set = handed::number(spec, Handed::Disk(i)).unwrap_or_default();
            vec!["-add-fd".into(), format!("fd={fd},set={set}")]
        }
        Handed::Part(i, lun) => {
            // The controller comes before its first LUN (devices are made in order).
            let controller = (lun == 0).then(|| ["-device".into(), format!("virtio-scsi-device,id=scsi{i}")]);
            let drive = format!("d{i}l{lun}");
            controller
                .into_iter()
                .flatten()
                .chain([
                    "-add-fd".into(),
                    format!("fd={fd},set={fd}"),
                    "-drive".into(),
                    format!("file=/dev/fdset/{fd},format=raw,if=none,id={drive},readonly=on{UNLOCKED}"),
                    "-device".into(),
                    format!("scsi-hd,bus=scsi{i}.0,scsi-id=0,lun={lun},drive={drive}"),
                ])
                .collect()
        }
    }
}

/// QEMU's own image locks are off: msb's sandbox lock already gives each writable disk one
/// VM, and QEMU could not take its locks back after saving a running guest (a save lets
/// go of them; `cont` then fails on the descriptors of an fd set).
const UNLOCKED: &str = ",file.locking=off";

/// virtio-mmio transports QEMU's microvm machine provides.
const VIRTIO_SLOTS: usize = 8;
/// Devices every VM has: virtio-serial (agent channel) and virtio-rng.
const FIXED_DEVICES: usize = 2;
/// LUNs one virtio-scsi controller takes here: all on target 0, which the guest scans
/// with REPORT LUNS. A bound of ours (images have tens of layers), far below what
/// virtio-scsi allows (16384), that keeps a guest's scan short.
const MAX_LUNS: usize = 512;

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
    if spec.memory.file().is_some() && !spec.shares.is_empty() {
        return Err(VmmError::InvalidSpec(
            "a guest whose RAM is a file cannot share directories (virtiofsd needs RAM of its own kind)".into(),
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
        if let DiskBacking::Luns(parts) = &disk.backing {
            if !disk.readonly {
                return Err(VmmError::InvalidSpec(format!(
                    "LUNs disk '{}' must be read-only",
                    disk.serial
                )));
            }
            if parts.is_empty() || parts.len() > MAX_LUNS {
                return Err(VmmError::InvalidSpec(format!(
                    "LUNs disk '{}' has {} LUNs (1 to {MAX_LUNS} are possible)",
                    disk.serial,
                    parts.len()
                )));
            }
        }
    }
    for i in 0..spec.shares.len() {
        share_socket(spec, i)?;
    }
    Ok(())
}

impl Vmm for Qemu {
    fn command_line(&self, spec: &VmSpec) -> Result<Vec<String>, VmmError> {
        check(spec)?;
        Ok(std::iter::once(self.config.binary.display().to_string())
            .chain(args(spec, confined()))
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
        let dir = &spec.runtime_dir;
        std::fs::create_dir_all(dir).map_err(VmmError::io(format!("creating {}", dir.display())))?;
        // virtiofsd's sockets give whoever connects the shared directories: owner only.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(VmmError::io(format!("securing {}", dir.display())))?;
        let mut helpers = Vec::new();
        let mut shares = Vec::new();
        if !spec.shares.is_empty() {
            let binary = self.config.virtiofsd.as_deref().ok_or(VmmError::NotInstalled {
                program: "virtiofsd",
                hint: virtiofsd::HINT,
            })?;
            for (i, share) in spec.shares.iter().enumerate() {
                let log = dir.join(format!("virtiofsd-{i}.log"));
                let (child, connection) = virtiofsd::start(binary, share, &share_socket(spec, i)?, &log).await?;
                helpers.push(child);
                shares.push(OwnedFd::from(connection));
            }
        }
        let stderr_log = dir.join("qemu.log");
        let stderr =
            std::fs::File::create(&stderr_log).map_err(VmmError::io(format!("creating {}", stderr_log.display())))?;
        let confined = confined();
        let args = args(spec, confined);
        tracing::debug!("launching {} {:?}", self.config.binary.display(), args);
        let (console, console_in) = std::io::pipe().map_err(VmmError::io("making the console pipe"))?;
        let console = tokio::net::unix::pipe::Receiver::from_owned_fd(console.into())
            .map_err(VmmError::io("reading the console pipe"))?;
        let (agent, agent_end) = UnixStream::pair().map_err(VmmError::io("making the agent's channel"))?;
        let (monitor, monitor_end) = UnixStream::pair().map_err(VmmError::io("making QEMU's monitor socket"))?;
        let (network, network_end) = match &spec.net {
            Some(_) => {
                let (ours, theirs) = UnixStream::pair().map_err(VmmError::io("making the network socket"))?;
                (Some(ours), Some(OwnedFd::from(theirs)))
            }
            None => (None, None),
        };
        let mut ends = HandedEnds {
            console: Some(console_in.into()),
            network: network_end,
            agent: Some(agent_end.into()),
            monitor: Some(monitor_end.into()),
            shares: shares.into_iter().map(Some).collect(),
        };
        let handed: Vec<OwnedFd> = handed::layout(spec)
            .into_iter()
            .map(|item| ends.open(spec, item))
            .collect::<Result<_, _>>()?;
        let fds: Vec<RawFd> = handed.iter().map(AsRawFd::as_raw_fd).collect();
        // QEMU needs no capability and no file beyond the system's and the two it reopens
        // (`landlock::rules`); under root it runs under ids of its own (`own_ids`).
        let ruleset = if confined {
            crate::landlock::qemu_ruleset(spec)?
        } else {
            None
        };
        let own_ids = if confined && own_ids::available() {
            ids_of_its_own(spec)
        } else {
            None
        };
        let confinement = Confinement {
            drop_caps: confined,
            landlock: ruleset.as_ref().map(|fd| fd.as_raw_fd()),
            address_space: confined.then(|| qemu_address_space(spec.memory_mib)),
            open_files: confined.then_some(QEMU_OPEN_FILES),
            own_ids,
        };
        let mut cmd = Command::new(&self.config.binary);
        cmd.args(&args).stdout(std::process::Stdio::null()).stderr(stderr);
        let spawned = spawn_owned(&mut cmd, "qemu-system-x86_64", &fds, confinement);
        drop(ruleset);
        // Only QEMU holds the console's write end and its ends of the sockets now, so they
        // end when QEMU does.
        drop(handed);
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
            agent: Some(agent),
            monitor: Some(monitor),
            console: Some(console),
            network,
            stderr_log,
            deferred_load: loads_deferred(spec)
                .then(|| handed::number(spec, Handed::Saved).map(|fd| format!("fd:{fd}")))
                .flatten(),
        })
    }
}

/// How QEMU takes ids of its own for `spec` (msb is root); `None`, with a warning that
/// says why, where it could not run under them.
fn ids_of_its_own(spec: &VmSpec) -> Option<OwnIds> {
    if let Some(file) = [&spec.kernel, &spec.initramfs]
        .into_iter()
        .find(|f| !own_ids::readable_by_anyone(f))
    {
        tracing::warn!(
            "{} is not readable by everyone, so QEMU keeps msb's ids (without capabilities)",
            file.display()
        );
        return None;
    }
    let group = match spec.accel {
        Accel::Kvm => match own_ids::kvm_group() {
            Ok(group) => group,
            Err(why) => {
                tracing::warn!("{why}, so QEMU keeps msb's ids (without capabilities)");
                return None;
            }
        },
        Accel::Tcg => None,
    };
    Some(OwnIds {
        group,
        reowned: handed::number(spec, Handed::Console),
    })
}

/// The descriptors made for one launch, each handed to QEMU once.
struct HandedEnds {
    console: Option<OwnedFd>,
    network: Option<OwnedFd>,
    agent: Option<OwnedFd>,
    monitor: Option<OwnedFd>,
    shares: Vec<Option<OwnedFd>>,
}

impl HandedEnds {
    /// The descriptor to hand QEMU as `item`: one made for this launch, or a file opened
    /// for it (read-only, or read-write for a writable disk).
    fn open(&mut self, spec: &VmSpec, item: Handed) -> Result<OwnedFd, VmmError> {
        let made = |end: Option<OwnedFd>| end.ok_or_else(|| VmmError::InvalidSpec(format!("{item:?} handed twice")));
        match item {
            Handed::Console => made(self.console.take()),
            Handed::Network => made(self.network.take()),
            Handed::Agent => made(self.agent.take()),
            Handed::Monitor => made(self.monitor.take()),
            Handed::Saved => match &spec.resume_from {
                Some(saved) => open_file(saved, false),
                None => Err(VmmError::InvalidSpec("no saved guest to resume".into())),
            },
            Handed::Memory => match spec.memory.file() {
                Some(file) => open_file(file, false),
                None => Err(VmmError::InvalidSpec("no file behind the guest's RAM".into())),
            },
            Handed::Share(i) => made(self.shares.get_mut(i).and_then(Option::take)),
            Handed::Kernel => open_file(&spec.kernel, false),
            Handed::Initramfs => open_file(&spec.initramfs, false),
            Handed::Disk(i) | Handed::DiskReadOnly(i) => {
                let disk = spec.disks.get(i);
                let Some((disk, DiskBacking::File { path, .. })) = disk.map(|d| (d, &d.backing)) else {
                    return Err(VmmError::InvalidSpec(format!("no disk file {i}")));
                };
                open_file(path, item == Handed::Disk(i) && !disk.readonly)
            }
            Handed::Part(i, j) => {
                let part = spec.disks.get(i).and_then(|d| match &d.backing {
                    DiskBacking::Luns(parts) => parts.get(j),
                    DiskBacking::File { .. } => None,
                });
                let Some(part) = part else {
                    return Err(VmmError::InvalidSpec(format!("no part {j} of disk {i}")));
                };
                open_file(&part.path, false)
            }
        }
    }
}

/// `path` opened for QEMU (close-on-exec here: the spawn places it in QEMU).
fn open_file(path: &Path, writable: bool) -> Result<OwnedFd, VmmError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map(OwnedFd::from)
        .map_err(VmmError::io(format!("opening {}", path.display())))
}

#[cfg(test)]
mod tests;
