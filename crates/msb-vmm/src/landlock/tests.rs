//! The ruleset enforced on a real process: what a VM's QEMU may touch, and what it may not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::child::{spawn_owned_with, Confinement};
use crate::{Accel, Disk};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use tokio::process::Command;

fn spec(dir: &Path) -> VmSpec {
    let kernel = dir.join("vmlinux");
    std::fs::write(&kernel, "the kernel\n").unwrap();
    let upper = dir.join("upper.ext4");
    std::fs::write(&upper, "").unwrap();
    let runtime_dir = dir.join("runtime");
    std::fs::create_dir(&runtime_dir).unwrap();
    VmSpec {
        kernel,
        initramfs: dir.join("absent.cpio"),
        cpus: 1,
        memory_mib: 64,
        shares: vec![],
        disks: vec![Disk {
            backing: DiskBacking::File {
                path: upper,
                format: crate::DiskFormat::Raw,
            },
            readonly: false,
            serial: "upper".into(),
        }],
        runtime_dir,
        accel: Accel::Tcg,
        net: None,
    }
}

#[tokio::test]
async fn a_confined_process_reaches_its_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let Some(ruleset) = qemu_ruleset(&spec).unwrap() else {
        eprintln!("this kernel has no Landlock: nothing to check");
        return;
    };
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "private").unwrap();
    let script = format!(
        "cat {kernel}; echo written > {runtime}/file && echo wrote; echo up > {upper} && echo upper; \
         cat {outside} || echo no-outside; cat /etc/hostname || echo no-etc; ls /root || echo no-root",
        kernel = spec.kernel.display(),
        runtime = spec.runtime_dir.display(),
        upper = dir.path().join("upper.ext4").display(),
        outside = outside.display(),
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script]).stdout(Stdio::piped()).stderr(Stdio::null());
    let confinement = Confinement {
        drop_caps: true,
        landlock: Some(ruleset.as_raw_fd()),
    };
    let out = spawn_owned_with(&mut cmd, "sh", &[], confinement)
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let said = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        ["the kernel", "wrote", "upper", "no-outside", "no-etc", "no-root"],
        "{said}"
    );
}
