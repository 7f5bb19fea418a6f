//! The descriptors a QEMU is handed. It opens no file of its VM by path: msb opens the
//! disks, kernel and initramfs, makes the agent's channel and the connections to each
//! virtiofsd and to the network, and QEMU finds each at a number fixed by the spec. So
//! QEMU needs no right to msb's directories: it can run under ids of its own (`own_ids`)
//! and a Landlock ruleset that names none of them.
//!
//! How QEMU takes each: disks through fd sets (`-add-fd`, then `/dev/fdset/N`, which QEMU
//! dups rather than opens); sockets as `fd=N`; the kernel and initramfs, which QEMU's
//! loader only opens by name, as `/proc/self/fd/N` (reopening a file checks its own mode,
//! not the directories above it, and both are world-readable); the console pipe as
//! `/dev/fd/N`, which the child makes its own before it changes ids; a saved guest as the
//! migration stream `-incoming fd:N`.

use crate::child::PASSED_FD;
use crate::{DiskBacking, VmSpec};
use std::os::fd::RawFd;

/// What one handed descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    /// The console pipe's write end.
    Console,
    /// QEMU's end of the network's socket.
    Network,
    /// QEMU's end of the agent's channel.
    Agent,
    /// QEMU's end of its monitor (QMP) socket.
    Monitor,
    /// The saved guest to resume (`VmSpec::resume_from`), read as a migration stream.
    Saved,
    /// The file behind the guest's RAM (`VmSpec::memory`), which QEMU reopens by its
    /// `/proc/self/fd` name.
    Memory,
    /// The guest kernel.
    Kernel,
    /// The initramfs.
    Initramfs,
    /// A connection to the virtiofsd of share `i`.
    Share(usize),
    /// The file of disk `i` (not of a LUNs disk: see `Part`), opened as the disk is
    /// attached: read-only or read-write.
    Disk(usize),
    /// A read-only descriptor of writable disk `i`, in the same fd set: QEMU opens every
    /// image read-only first, and takes from a set only a descriptor of the mode it asks.
    DiskReadOnly(usize),
    /// LUN `j` of LUNs disk `i`.
    Part(usize, usize),
}

/// Every descriptor handed to the QEMU that runs `spec`, in the order it finds them from
/// [`PASSED_FD`] on.
pub(crate) fn layout(spec: &VmSpec) -> Vec<Handed> {
    let mut handed = vec![Handed::Console];
    if spec.net.is_some() {
        handed.push(Handed::Network);
    }
    handed.extend([Handed::Agent, Handed::Monitor, Handed::Kernel, Handed::Initramfs]);
    if spec.resume_from.is_some() {
        handed.push(Handed::Saved);
    }
    if spec.memory.file().is_some() {
        handed.push(Handed::Memory);
    }
    handed.extend((0..spec.shares.len()).map(Handed::Share));
    for (i, disk) in spec.disks.iter().enumerate() {
        match &disk.backing {
            DiskBacking::File { .. } => {
                handed.push(Handed::Disk(i));
                if !disk.readonly {
                    handed.push(Handed::DiskReadOnly(i));
                }
            }
            DiskBacking::Luns(parts) => handed.extend((0..parts.len()).map(|j| Handed::Part(i, j))),
        }
    }
    handed
}

/// The number QEMU finds `item` at, if `spec` hands it one.
pub(crate) fn number(spec: &VmSpec, item: Handed) -> Option<RawFd> {
    let at = layout(spec).iter().position(|h| *h == item)?;
    Some(PASSED_FD + RawFd::try_from(at).ok()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Accel, Disk, DiskFormat, DiskPart, NetDevice, Share};

    #[test]
    fn every_descriptor_has_its_own_number_in_spec_order() {
        let spec = VmSpec {
            kernel: "/k".into(),
            initramfs: "/i".into(),
            cpus: 1,
            memory_mib: 64,
            shares: vec![Share::private("root", "/r")],
            disks: vec![
                Disk {
                    backing: DiskBacking::Luns(vec![
                        DiskPart {
                            path: "/a".into(),
                            len: 1,
                        },
                        DiskPart {
                            path: "/b".into(),
                            len: 1,
                        },
                    ]),
                    readonly: true,
                    serial: "l".into(),
                },
                Disk {
                    backing: DiskBacking::File {
                        path: "/u".into(),
                        format: DiskFormat::Raw,
                    },
                    readonly: false,
                    serial: "u".into(),
                },
            ],
            runtime_dir: "/run".into(),
            accel: Accel::Tcg,
            net: Some(NetDevice {
                mac: [2, 0, 0, 0, 0, 1],
            }),
            resume_from: None,
            paused: false,
            memory: Default::default(),
        };
        let numbers: Vec<Option<RawFd>> = [
            Handed::Console,
            Handed::Network,
            Handed::Agent,
            Handed::Monitor,
            Handed::Kernel,
            Handed::Initramfs,
            Handed::Share(0),
            Handed::Part(0, 0),
            Handed::Part(0, 1),
            Handed::Disk(1),
            Handed::DiskReadOnly(1),
        ]
        .iter()
        .map(|item| number(&spec, *item))
        .collect();
        assert_eq!(numbers, (3..14).map(Some).collect::<Vec<_>>());
        assert_eq!(number(&spec, Handed::Part(1, 0)), None);
        assert_eq!(number(&spec, Handed::Disk(0)), None);
        assert_eq!(number(&spec, Handed::DiskReadOnly(0)), None);
        let offline = VmSpec { net: None, ..spec };
        assert_eq!(number(&offline, Handed::Agent), Some(4));
        assert_eq!(number(&offline, Handed::Saved), None);
        let resumed = VmSpec {
            resume_from: Some("/saved".into()),
            ..offline
        };
        assert_eq!(number(&resumed, Handed::Saved), Some(8));
        assert_eq!(number(&resumed, Handed::Share(0)), Some(9));
    }
}
