//! The ruleset enforced on a real process: what a VM's QEMU may touch, and what it may not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::child::{spawn_owned, Confinement};
use crate::{Accel, Disk, DiskBacking};
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
        resume_from: None,
        paused: false,
        memory: Default::default(),
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
        "cat {kernel}; echo written > {runtime}/file || echo no-runtime; echo up > {upper} || echo no-disk; \
         cat {outside} || echo no-outside; cat /etc/hostname || echo no-etc; ls /root || echo no-root",
        kernel = spec.kernel.display(),
        runtime = spec.runtime_dir.display(),
        upper = dir.path().join("upper.ext4").display(),
        outside = outside.display(),
    );
    assert_eq!(
        run_confined(&ruleset, &script, true).await,
        ["the kernel", "no-runtime", "no-disk", "no-outside", "no-etc", "no-root"]
    );
}

/// Runs `script` under `ruleset` (and without capabilities if `drop_caps`) and returns the lines it printed.
async fn run_confined(ruleset: &OwnedFd, script: &str, drop_caps: bool) -> Vec<String> {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]).stdout(Stdio::piped()).stderr(Stdio::null());
    let confinement = Confinement {
        drop_caps,
        landlock: Some(ruleset.as_raw_fd()),
        ..Confinement::default()
    };
    let out = spawn_owned(&mut cmd, "sh", &[], confinement)
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn a_virtiofsd_without_namespaces_reaches_its_share_and_socket_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let share_dir = dir.path().join("share");
    let socket_dir = dir.path().join("run");
    std::fs::create_dir(&share_dir).unwrap();
    std::fs::create_dir(&socket_dir).unwrap();
    std::fs::write(share_dir.join("shared.txt"), "shared\n").unwrap();
    std::fs::write(dir.path().join("beside.txt"), "private").unwrap();
    let mut share = Share {
        tag: "root".into(),
        dir: share_dir.clone(),
        readonly: false,
        cache: crate::ShareCache::Always,
    };
    let Some(ruleset) = virtiofsd_ruleset(&share, &socket_dir).unwrap() else {
        eprintln!("this kernel has no Landlock: nothing to check");
        return;
    };
    let script = format!(
        "cat {share}/shared.txt; echo new > {share}/new && echo wrote; echo s > {run}/sock && echo socket; \
         cat {beside} || echo no-beside; cat /etc/hostname || echo no-etc",
        share = share_dir.display(),
        run = socket_dir.display(),
        beside = dir.path().join("beside.txt").display(),
    );
    assert_eq!(
        run_confined(&ruleset, &script, false).await,
        ["shared", "wrote", "socket", "no-beside", "no-etc"]
    );
    // A read-only share is read-only to virtiofsd itself.
    share.readonly = true;
    let ruleset = virtiofsd_ruleset(&share, &socket_dir).unwrap().unwrap();
    let script = format!(
        "cat {share}/shared.txt; echo again > {share}/new && echo wrote || echo no-write",
        share = share_dir.display()
    );
    assert_eq!(run_confined(&ruleset, &script, false).await, ["shared", "no-write"]);
}
