//! The upper image belongs to the sandbox: what the guest writes survives stopping and
//! booting the same sandbox again (through the SDK calls the lifecycle verbs use), and a
//! new sandbox of the same image starts from the image.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use microsandbox::vm::{prepare, BootedVm};
use microsandbox::{ExecEvent, ExecRequest, Patch, Paths, RootSpec, SandboxSpec};
use msb_e2e::{registry, vm_available, Sandbox};
use std::time::Duration;

async fn sh(vm: &BootedVm, script: &str) -> String {
    let req = ExecRequest {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("PATH".into(), "/bin:/usr/bin:/sbin:/usr/sbin".into())],
        workdir: None,
        user: None,
        tty: None,
    };
    let mut session = vm.exec(req).await.unwrap();
    let mut out = Vec::new();
    while let Some(event) = session.next().await.unwrap() {
        match event {
            ExecEvent::Stdout(b) => out.extend(b),
            ExecEvent::Exited(status) => assert_eq!(status.shell_code(), 0, "{script}"),
            ExecEvent::SpawnFailed(f) => panic!("{f:?}"),
            _ => {}
        }
    }
    String::from_utf8(out).unwrap()
}

fn spec(name: &str, image: &str, patches: Vec<Patch>) -> SandboxSpec {
    SandboxSpec {
        patches,
        upper_size_mib: 256,
        ..SandboxSpec::new(name, RootSpec::Oci(image.into()))
    }
}

#[tokio::test]
async fn guest_writes_survive_a_restart_of_the_same_sandbox() {
    let Some(addr) = registry() else { return };
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let paths = Paths::new(sb.home());
    let reference = format!("{addr}/msb-test/tricky");
    let image = microsandbox::image::pull(&paths, &reference, &Default::default(), &|_| {})
        .await
        .unwrap();
    let keep = spec(
        "keep",
        &image.reference,
        vec![Patch::text("/etc/greeting", "patched\n")],
    );
    prepare(&keep, &paths).unwrap();

    let vm = BootedVm::boot(&keep, &paths).await.unwrap();
    sh(
        &vm,
        "echo written-in-guest > /root/note && rm /tricky/lower-only.txt && mkdir -p /var/new/dir",
    )
    .await;
    vm.shutdown(Duration::from_secs(10)).await;

    let vm = BootedVm::boot(&keep, &paths).await.unwrap();
    let seen = sh(
        &vm,
        "cat /root/note /etc/greeting; test -e /tricky/lower-only.txt || echo still-removed; ls -d /var/new/dir",
    )
    .await;
    assert_eq!(seen, "written-in-guest\npatched\nstill-removed\n/var/new/dir\n");
    vm.shutdown(Duration::from_secs(10)).await;

    let fresh = spec("fresh", &image.reference, Vec::new());
    prepare(&fresh, &paths).unwrap();
    let vm = BootedVm::boot(&fresh, &paths).await.unwrap();
    let seen = sh(&vm, "test -e /root/note || echo no-note; cat /tricky/lower-only.txt").await;
    assert_eq!(seen, "no-note\nfrom the lower layer\n");
    vm.shutdown(Duration::from_secs(10)).await;
    // The upper passes the filesystem checker after the guest used it.
    let upper = paths.sandbox_dir("keep").join("upper.ext4");
    let fsck = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&upper)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    sb.assert_no_vm_left();
}
