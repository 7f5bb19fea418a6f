//! Rootfs patches in real VMs: on image roots (baked into the upper before boot) and on
//! directory roots, bad patches refused before anything is written, images deeper than the
//! VM has virtio slots, and the upper surviving a restart of the same sandbox.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{image_world, stdout_of, vm_available, Sandbox};
use std::process::{Output, Stdio};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn patches_shape_an_image_root_before_boot() {
    let Some((sb, image)) = image_world("tricky") else {
        return;
    };
    let tool = sb.home().join("tool.sh");
    std::fs::write(&tool, "#!/bin/sh\necho tool ran\n").unwrap();
    let script = "test -e /tricky/lower-only.txt || echo removed; cat /tricky/del/stays.txt; \
                  stat -c '%a %F' /data /etc/app.conf /opt/tool; readlink /app.link; cat /app.link; \
                  /opt/tool; stat -c '%a %u:%g' /tricky";
    let out = sb.run_output(&[
        "--delete",
        "/tricky/lower-only.txt",
        "--append",
        "/tricky/del/stays.txt=appended\n",
        "--mkdir",
        "/data:0700",
        "--text",
        "/etc/app.conf=hello\n",
        "--symlink",
        "/etc/app.conf:/app.link",
        "--file",
        &format!("{}:/opt/tool:0755", tool.display()),
        &image,
        "--",
        "sh",
        "-c",
        script,
    ]);
    let patched = stdout_of(&out);
    let (patched, tricky_attrs) = patched.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(
        patched,
        "removed\nsurvives\nappended\n700 directory\n644 regular file\n755 regular file\n\
         /etc/app.conf\nhello\ntool ran"
    );
    // The layers are shared and untouched: a sandbox without patches sees the image, and
    // the directory copied up for the patches kept the image's attributes.
    let out = sb.run_output(&[
        &image,
        "--",
        "sh",
        "-c",
        "cat /tricky/lower-only.txt; stat -c '%a %u:%g' /tricky",
    ]);
    assert_eq!(stdout_of(&out), format!("from the lower layer\n{tricky_attrs}\n"));
    sb.assert_no_vm_left();
}

#[test]
fn bad_patches_fail_before_boot_and_leave_nothing_behind() {
    let Some((sb, image)) = image_world("tricky") else {
        return;
    };
    for (flags, fragment) in [
        (vec!["--text", "etc/x=1"], "must be absolute"),
        (vec!["--delete", "/tricky/../../etc"], "'..'"),
        (
            vec!["--mkdir", "/tricky/lower-only.txt"],
            "path exists and is not a directory (regular file)",
        ),
        (
            vec!["--append", "/nope.txt=x"],
            "cannot append to '/nope.txt': file not found in rootfs",
        ),
        (
            vec!["--text", "/tricky/lower-only.txt/x=1"],
            "parent is not a directory: '/tricky/lower-only.txt'",
        ),
    ] {
        let mut args = flags.clone();
        args.extend([image.as_str(), "--", "true"]);
        let out = sb.run_output(&args);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(fragment), "{flags:?}: {}", stderr(&out));
        assert_eq!(sb.sandbox_dirs(), 0, "{flags:?} left a sandbox behind");
    }
    sb.assert_no_vm_left();
}

#[test]
fn patches_on_a_directory_root_stay_inside_it() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let outside = sb.home().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("passwd"), "host secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, sb.rootfs.join("escape")).unwrap();
    let out = sb
        .run(&["--text", "/escape/passwd=pwned"], &["true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("'/escape' (symlink)"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(outside.join("passwd")).unwrap(),
        "host secret\n"
    );
    let out = sb
        .run(
            &["--text", "/etc/motd=patched\n", "--mkdir", "/srv/data:0750"],
            &["sh", "-c", "cat /etc/motd; stat -c %a /srv/data"],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout_of(&out), "patched\n750\n");
    assert_eq!(
        std::fs::read_to_string(sb.rootfs.join("etc/motd")).unwrap(),
        "patched\n"
    );
    sb.assert_no_vm_left();
}

#[test]
fn an_image_deeper_than_the_virtio_slots_boots_with_its_layers_in_order() {
    let Some((sb, image)) = image_world("layers") else {
        return;
    };
    let out = sb.run_output(&[
        &image,
        "--",
        "sh",
        "-c",
        "cat /layers/top.txt; ls /layers | wc -l; test -e /layers/20.txt || echo 20-deleted",
    ]);
    // 23 layers add N.txt; layers 3, 6, … 21 delete the previous one (7 deletions).
    assert_eq!(stdout_of(&out), "layer 23\n17\n20-deleted\n");
    sb.assert_no_vm_left();
}

#[test]
fn a_disk_image_boots_as_the_root_and_refuses_patches() {
    if !vm_available() {
        return;
    }
    let sb = Sandbox::new();
    let disk = sb.home().join("root.ext4");
    let made = std::process::Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-d"])
        .arg(&sb.rootfs)
        .arg(&disk)
        .arg("64M")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let disk_arg = disk.to_str().unwrap();
    let out = sb.run_output(&[
        "--rootfs",
        disk_arg,
        "--",
        "sh",
        "-c",
        "grep ' / ' /proc/mounts | cut -d' ' -f3; echo kept > /written",
    ]);
    assert_eq!(stdout_of(&out), "ext4\n");
    let seen = std::process::Command::new("debugfs")
        .args(["-R", "cat /written"])
        .arg(&disk)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen.stdout),
        "kept\n",
        "the guest wrote into the image file"
    );
    // A filesystem type given is what the guest mounts with; a malformed one is refused.
    let out = sb.run_output(&["--rootfs", disk_arg, "--rootfs-fstype", "nosuchfs", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("mount nosuchfs on /newroot"), "{}", stderr(&out));
    let out = sb.run_output(&["--rootfs", disk_arg, "--rootfs-fstype", "ext4;x", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("is not a filesystem type"), "{}", stderr(&out));
    let out = sb.run_output(&["--rootfs", disk_arg, "--text", "/x=1", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("patches are not compatible with disk image rootfs"),
        "{}",
        stderr(&out)
    );
    sb.assert_no_vm_left();
}
