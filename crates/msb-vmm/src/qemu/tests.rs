//! QEMU's command line for a spec, and the specs it would refuse, without launching it.

#![allow(clippy::unwrap_used)]

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
                backing: DiskBacking::Luns(vec![
                    DiskPart {
                        path: "/l/b.erofs".into(),
                        len: 4096,
                    },
                    DiskPart {
                        path: "/l/c.erofs".into(),
                        len: 8192,
                    },
                ]),
                readonly: true,
                serial: "msb-l1".into(),
            },
        ],
        runtime_dir: "/run/x".into(),
        accel,
        net: None,
        resume_from: None,
        paused: false,
        memory: Default::default(),
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
    assert!(tcg.contains("-chardev file,id=console,path=/dev/fd/3 -serial chardev:console"));
    assert!(tcg.contains("-chardev socket,id=agent,fd=4 -device virtio-serial-device"));
    assert!(tcg.contains("-chardev socket,id=monitor,fd=5 -mon chardev=monitor,mode=control"));
    assert!(tcg.contains("-kernel /proc/self/fd/6 -initrd /proc/self/fd/7"));
    assert!(!tcg.contains("-incoming"));
    assert!(tcg.contains("-chardev socket,id=fs0,fd=8 -device vhost-user-fs-device,chardev=fs0,tag=root"));
    assert!(tcg.contains("-smp 2 -m 256M"));
    assert!(tcg.contains(
        "-add-fd fd=9,set=9 -drive file=/dev/fdset/9,format=raw,if=none,id=d0,readonly=on,file.locking=off \
         -device virtio-blk-device,drive=d0,serial=msb-l0"
    ));
    assert!(tcg.contains(
        "-device virtio-scsi-device,id=scsi1 \
         -add-fd fd=10,set=10 -drive file=/dev/fdset/10,format=raw,if=none,id=d1l0,readonly=on,file.locking=off \
         -device scsi-hd,bus=scsi1.0,scsi-id=0,lun=0,drive=d1l0 \
         -add-fd fd=11,set=11 -drive file=/dev/fdset/11,format=raw,if=none,id=d1l1,readonly=on,file.locking=off \
         -device scsi-hd,bus=scsi1.0,scsi-id=0,lun=1,drive=d1l1"
    ));
    assert!(!tcg.contains("/l/"), "QEMU is told no path of a disk: {tcg}");
    assert!(
        tcg.contains("scsi_mod.scan=manual"),
        "the agent scans for the LUNs itself"
    );
    let mut writable = spec(Accel::Tcg);
    writable.disks.truncate(1);
    writable.disks[0].readonly = false;
    writable.shares.clear();
    let rw = qemu().command_line(&writable).unwrap().join(" ");
    assert!(!rw.contains("scsi_mod"), "no controller, no word of it");
    assert!(
        rw.contains(
            "-add-fd fd=8,set=8 -drive file=/dev/fdset/8,format=raw,if=none,id=d0,cache=unsafe,file.locking=off"
        ),
        "{rw}"
    );
    assert!(
        rw.contains("-add-fd fd=9,set=8"),
        "a read-only view in the same set: {rw}"
    );
    assert!(
        rw.contains("-M microvm,acpi=off,x-option-roms=off,memory-backend=mem -accel")
            && rw.contains("-object memory-backend-ram,id=mem,size=256M -append"),
        "without shares, plain private RAM, under the one name every kind has: {rw}"
    );
    assert!(!rw.contains(" -S "));
    writable.paused = true;
    assert!(qemu().command_line(&writable).unwrap().join(" ").contains(" -S -smp"));
    writable.paused = false;
    writable.resume_from = Some("/saved".into());
    let resumed = qemu().command_line(&writable).unwrap().join(" ");
    assert!(
        resumed.contains("-initrd /proc/self/fd/7 -incoming fd:8 -add-fd fd=9,set=9 -drive file=/dev/fdset/9"),
        "{resumed}"
    );
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
        "-netdev stream,id=net0,server=off,addr.type=fd,addr.str=4 -device virtio-net-device,netdev=net0,mac=02:6d:73:62:00:02,guest_announce=off"
    ));
    assert!(net.contains("-chardev socket,id=agent,fd=5"));
}

#[test]
fn a_fork_fills_its_memory_shared_and_its_copies_map_it_private_and_load_later() {
    let mut helper = spec(Accel::Tcg);
    helper.shares.clear();
    helper.resume_from = Some("/saved".into());
    helper.memory = GuestMemory::Fills("/proc/self/fd/40".into());
    let filling = qemu().command_line(&helper).unwrap().join(" ");
    // The whole saved guest loads at once; the memory file comes after it.
    assert!(
        filling.contains("-object memory-backend-file,id=mem,size=256M,mem-path=/proc/self/fd/9,share=on -append")
            && filling.contains("-incoming fd:8"),
        "{filling}"
    );
    let mut copy = helper.clone();
    copy.memory = GuestMemory::CopyOf("/proc/self/fd/40".into());
    let copying = qemu().command_line(&copy).unwrap().join(" ");
    assert!(
        copying.contains("mem-path=/proc/self/fd/9,share=off") && copying.contains("-incoming defer"),
        "{copying}"
    );
    assert!(
        !copying.contains("/proc/self/fd/40"),
        "QEMU reopens the handed descriptor: {copying}"
    );
    copy.shares = spec(Accel::Tcg).shares;
    assert!(matches!(qemu().command_line(&copy), Err(VmmError::InvalidSpec(_))));
}

#[test]
fn long_socket_paths_are_refused() {
    let long = PathBuf::from("/").join("d".repeat(120));
    assert!(matches!(
        socket_path(&long, "fs0.sock"),
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
    let mut writable_luns = spec(Accel::Tcg);
    writable_luns.disks[1].readonly = false;
    assert!(matches!(
        qemu().command_line(&writable_luns),
        Err(VmmError::InvalidSpec(_))
    ));
    let mut comma = spec(Accel::Tcg);
    comma.disks[0].serial = "a,b".into();
    assert!(matches!(qemu().command_line(&comma), Err(VmmError::InvalidSpec(_))));
    let mut empty = spec(Accel::Tcg);
    empty.disks[1].backing = DiskBacking::Luns(Vec::new());
    assert!(matches!(qemu().command_line(&empty), Err(VmmError::InvalidSpec(_))));
}
