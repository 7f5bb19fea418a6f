//! The upper image belongs to the sandbox: what the guest writes survives stopping and
//! starting the same sandbox (through the SDK's lifecycle calls), a new sandbox of the same
//! image starts from the image, and removing the sandbox deletes its writes.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use microsandbox::{Microsandbox, Sandbox};
use msb_e2e::image_world;

async fn sh(sb: &Sandbox, script: &str) -> String {
    let out = sb.shell(script).await.unwrap();
    assert!(out.success(), "{script}: {:?} {}", out.status, out.stderr_text());
    out.stdout_text()
}

#[tokio::test]
async fn guest_writes_survive_a_restart_of_the_same_sandbox() {
    let Some((world, image)) = image_world("tricky") else {
        return;
    };
    let msb = Microsandbox::at(world.home());
    let sb = msb
        .builder("keep")
        .image(&image)
        .upper_size(256)
        .patch(|p| p.text("/etc/greeting", "patched\n", None, false))
        .create_detached()
        .await
        .unwrap();
    sh(
        &sb,
        "echo written-in-guest > /root/note && rm /tricky/lower-only.txt && mkdir -p /var/new/dir",
    )
    .await;
    sb.stop().await.unwrap();

    let sb = msb.start_detached("keep").await.unwrap();
    let seen = sh(
        &sb,
        "cat /root/note /etc/greeting; test -e /tricky/lower-only.txt || echo still-removed; ls -d /var/new/dir",
    )
    .await;
    assert_eq!(seen, "written-in-guest\npatched\nstill-removed\n/var/new/dir\n");
    sb.stop().await.unwrap();
    // The upper passes the filesystem checker after the guest used it.
    let upper = msb.paths().sandbox_dir("keep").join("upper.ext4");
    let fsck = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&upper)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));

    let fresh = msb
        .builder("fresh")
        .image(&image)
        .upper_size(256)
        .create()
        .await
        .unwrap();
    assert_eq!(
        sh(&fresh, "test -e /root/note || echo no-note; cat /tricky/lower-only.txt").await,
        "no-note\nfrom the lower layer\n"
    );
    fresh.stop().await.unwrap();

    msb.remove("keep", false).await.unwrap();
    assert!(!msb.paths().sandbox_dir("keep").exists(), "its writes go with it");
    world.assert_no_vm_left();
}
