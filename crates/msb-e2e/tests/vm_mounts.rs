//! Mounts besides the root: host directories (`-v`, read-only enforced by the host even
//! against a root remount in the guest), tmpfs with size, mode and noexec, and the checks
//! that refuse bad mounts before anything boots.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_host_directory_is_shared_and_a_read_only_one_holds_against_a_root_remount() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let rw = w.home().join("rw");
    let ro = w.home().join("ro");
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(rw.join("in"), "from the host\n").unwrap();
    std::fs::write(ro.join("keep"), "original\n").unwrap();
    let rw_arg = format!("{}:/data", rw.display());
    // A relative-looking but canonical path with a trailing slash on the guest side.
    let ro_arg = format!("{}/../ro:/ro/:ro", rw.display());
    let script = "cat /data/in; echo from the guest > /data/out; \
        echo x > /ro/new 2>/dev/null && echo WROTE-NEW; \
        echo y >> /ro/keep 2>/dev/null && echo WROTE-KEEP; \
        mount -o remount,rw /ro && echo remounted; \
        echo x > /ro/new 2>/dev/null && echo WROTE-NEW-AFTER; \
        rm -f /ro/keep 2>/dev/null && echo REMOVED; \
        grep ' /ro ' /proc/mounts | cut -d' ' -f3";
    let out = w
        .run(&["-v", &rw_arg, "-v", &ro_arg], &["sh", "-c", script])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(stdout.starts_with("from the host\n"), "{stdout}{stderr}");
    assert!(!stdout.contains("WROTE") && !stdout.contains("REMOVED"), "{stdout}");
    assert!(
        stdout.contains("remounted"),
        "the guest's remount itself works: {stdout}{stderr}"
    );
    assert!(stdout.contains("virtiofs"), "{stdout}");
    assert_eq!(std::fs::read_to_string(rw.join("out")).unwrap(), "from the guest\n");
    assert_eq!(std::fs::read_to_string(ro.join("keep")).unwrap(), "original\n");
    assert!(!ro.join("new").exists());
    w.assert_no_vm_left();
}

#[test]
fn a_single_file_is_mounted_without_its_neighbours() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let dir = w.home().join("files");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("app.conf"), "setting=1\n").unwrap();
    std::fs::write(dir.join("log.txt"), "host\n").unwrap();
    std::fs::write(dir.join("secret"), "not for the guest\n").unwrap();
    let conf = format!("{}:/etc/app.conf:ro", dir.join("app.conf").display());
    let log = format!("{}:/var/log/app/log.txt", dir.join("log.txt").display());
    let script = "cat /etc/app.conf; echo x >> /etc/app.conf 2>/dev/null && echo WROTE; \
        mount -o remount,rw /etc/app.conf 2>/dev/null; echo y >> /etc/app.conf 2>/dev/null && echo WROTE-AFTER; \
        echo guest >> /var/log/app/log.txt; \
        ls /run/msb/file-mounts/*; cat /run/msb/file-mounts/*/secret 2>/dev/null && echo LEAKED";
    let out = w
        .run(&["-v", &conf, "-v", &log], &["sh", "-c", script])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(stdout.starts_with("setting=1\n"), "{stdout}{stderr}");
    assert!(!stdout.contains("WROTE") && !stdout.contains("LEAKED"), "{stdout}");
    assert!(
        !stdout.contains("secret"),
        "a neighbour of a mounted file is visible: {stdout}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("app.conf")).unwrap(), "setting=1\n");
    assert_eq!(std::fs::read_to_string(dir.join("log.txt")).unwrap(), "host\nguest\n");
    w.assert_no_vm_left();
}

#[test]
fn a_tmpfs_has_its_size_mode_and_noexec() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let script = "stat -c %a /scratch; \
        dd if=/dev/zero of=/scratch/fill bs=1024 count=4096 2>&1 | grep -o 'No space left' | head -1; \
        rm -f /scratch/fill; \
        for d in /fast /scratch; do printf '#!/bin/sh\\ntrue\\n' > $d/s && chmod +x $d/s; done; \
        /fast/s; echo exec=$?; /scratch/s 2>/dev/null; echo noexec=$?";
    let out = w
        .run(
            &["--tmpfs", "/scratch:size=2m,mode=700,noexec", "--tmpfs", "/fast"],
            &["sh", "-c", script],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"700"), "{stdout}{stderr}");
    assert!(
        stdout.contains("No space left"),
        "a 4 MiB file fit in a 2 MiB tmpfs: {stdout}{stderr}"
    );
    assert!(stdout.contains("exec=0"), "{stdout}{stderr}");
    assert!(stdout.contains("noexec=126"), "{stdout}{stderr}");
    w.assert_no_vm_left();
}

#[test]
fn bad_mounts_are_refused_before_anything_boots() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let here = w.home().display().to_string();
    let missing = format!("{here}/nope:/x");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-v".into(), format!("{here}:relative")], "must be absolute"),
        (vec!["-v".into(), format!("{here}:/")], "over the guest's root"),
        (vec!["-v".into(), format!("{here}:/proc/x")], "on /proc"),
        (vec!["-v".into(), format!("{here}:/dev")], "on /dev"),
        (vec!["-v".into(), format!("{here}:/a/../b")], "cannot contain '..'"),
        (vec!["--tmpfs".into(), "/sys/x".into()], "on /sys"),
        (vec!["--tmpfs".into(), "/t:size=huge".into()], "not a size"),
        (vec!["-v".into(), missing], "No such file"),
        (
            vec!["-v".into(), "/dev/null:/x".into()],
            "neither a directory nor a regular file",
        ),
        (
            vec!["-v".into(), format!("{here}:/d"), "--tmpfs".into(), "/d/".into()],
            "two mounts on '/d'",
        ),
    ];
    for (args, needle) in cases {
        let mut all: Vec<&str> = vec!["run", "--rootfs", w.rootfs.to_str().unwrap()];
        all.extend(args.iter().map(String::as_str));
        all.extend(["--", "true"]);
        w.fails(&all, 125, needle);
        assert_eq!(w.sandbox_dirs(), 0, "{args:?} left a sandbox directory");
        assert!(w.vm_processes().is_empty(), "{args:?} started a VM");
    }
}
