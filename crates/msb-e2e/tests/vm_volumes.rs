//! Named volumes: made by `msb volume create` or by the first mount, written by one sandbox
//! and read by the next, shared live between two, refused removal while mounted.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};

#[test]
fn a_volume_outlives_its_sandboxes_and_is_shared_live_between_two() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    assert_eq!(w.ok(&["volume", "create", "data", "--label", "team=ml"]), "data\n");
    w.fails(&["volume", "create", "data"], 125, "already exists");
    w.fails(&["volume", "create", "tiny", "--size", "1M"], 125, "at least 16 MiB");

    // Written by one sandbox, read by the next; read-only there.
    let out = w
        .run(&["-v", "data:/data"], &["sh", "-c", "echo one > /data/f"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = "cat /data/f; echo two > /data/g 2>/dev/null && echo WROTE";
    let out = w.run(&["-v", "data:/data:ro"], &["sh", "-c", script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");
    let listed: serde_json::Value = serde_json::from_str(&w.ok(&["volume", "ls", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "data");
    assert!(listed[0]["used_bytes"].as_u64().unwrap() > 0, "{listed}");
    assert_eq!(listed[0]["labels"]["team"], "ml");

    // A volume named by a mount but never created is made, as docker does.
    let out = w
        .run(&["-v", "fresh:/x"], &["sh", "-c", "echo hi > /x/h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh: serde_json::Value = serde_json::from_str(&w.ok(&["volume", "inspect", "fresh"])).unwrap();
    let path = std::path::PathBuf::from(fresh["path"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(path.join("h")).unwrap(), "hi\n");

    // Two running sandboxes on one volume see each other's writes.
    w.create("a", &["-v", "shared:/s"]);
    w.create("b", &["-v", "shared:/s"]);
    w.ok(&["exec", "a", "--", "sh", "-c", "echo from-a > /s/a"]);
    assert_eq!(w.ok(&["exec", "b", "--", "cat", "/s/a"]), "from-a\n");
    w.ok(&["exec", "b", "--", "sh", "-c", "echo from-b > /s/b"]);
    assert_eq!(w.ok(&["exec", "a", "--", "cat", "/s/b"]), "from-b\n");
    w.ok(&["exec", "b", "--", "sh", "-c", "echo changed > /s/a"]);
    assert_eq!(w.ok(&["exec", "a", "--", "cat", "/s/a"]), "changed\n");

    // Not removed while mounted; prune keeps it too; gone once its sandboxes are.
    w.fails(&["volume", "rm", "shared"], 125, "mounted by sandbox(es) a, b");
    let pruned = w.ok(&["volume", "prune"]);
    assert!(
        !pruned.contains("shared") && pruned.contains("data") && pruned.contains("fresh"),
        "{pruned}"
    );
    w.ok(&["rm", "-f", "a", "b"]);
    w.ok(&["volume", "rm", "shared"]);
    assert_eq!(w.ok(&["volume", "ls", "-q"]), "");
    w.fails(&["volume", "inspect", "shared"], 125, "not found");
    w.assert_no_vm_left();
}

/// `e2fsck -fn` of an image: whether it is clean, and what it said.
fn fsck(image: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn a_sized_volume_fills_up_stays_clean_and_has_one_writer_at_a_time() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    assert_eq!(w.ok(&["volume", "create", "q", "--size", "16M"]), "q\n");
    let script = "echo keep > /q/keep; dd if=/dev/zero of=/q/fill bs=1M count=64 2>&1 | grep -o 'No space left' | head -1; rm /q/fill; cat /q/keep";
    let out = w.run(&["-v", "q:/q"], &["sh", "-c", script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "No space left\nkeep\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_str(&w.ok(&["volume", "inspect", "q"])).unwrap();
    assert_eq!(
        (info["kind"].as_str(), info["size_bytes"].as_u64()),
        (Some("sized"), Some(16 << 20))
    );
    let disk = std::path::PathBuf::from(info["disk"].as_str().unwrap());
    let (clean, said) = fsck(&disk);
    assert!(clean, "the filled volume is not fsck-clean: {said}");
    // What was written is still there for the next sandbox.
    let out = w.run(&["-v", "q:/q:ro"], &["cat", "/q/keep"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "keep\n");
    // A directory volume's guest cannot pass a file of its own (or a link to a host file)
    // off as that volume's disk: disks live apart from the shared directories.
    let plant = format!("ln -s {} /d/disk.ext4; echo fake > /d/q.ext4", disk.display());
    let out = w.run(&["-v", "d:/d"], &["sh", "-c", &plant]).output().unwrap();
    assert!(out.status.success());
    let out = w
        .run(&["-v", "d:/d"], &["sh", "-c", "mount | grep -c ' /d type virtiofs'"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    w.ok(&["volume", "rm", "d"]);

    // One running writer at a time, and no reader beside a writer.
    w.create("a", &["-v", "q:/q"]);
    let root = w.rootfs.to_str().unwrap().to_string();
    let second = w.output(&["create", "-n", "b", "--rootfs", &root, "-v", "q:/q:ro"]);
    assert!(!second.status.success(), "a second sandbox got the volume");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("volume 'q' is mounted by sandbox(es) a"), "{stderr}");
    w.ok(&["rm", "-f", "a"]);
    w.ok(&["create", "-n", "b", "--rootfs", &root, "-v", "q:/q:ro"]);
    w.ok(&["rm", "-f", "b"]);
    assert!(fsck(&disk).0);
    w.assert_no_vm_left();
}

#[test]
fn a_disk_image_mounts_with_its_filesystem_probed() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let src = w.home().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("hello"), "from the image\n").unwrap();
    let image = w.home().join("data.img");
    let made = std::process::Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-d"])
        .arg(&src)
        .arg(&image)
        .arg("8M")
        .status()
        .unwrap();
    assert!(made.success());
    let ro = format!("{}:/mnt/d:ro", image.display());
    let script = "cat /mnt/d/hello; echo x > /mnt/d/new 2>/dev/null && echo WROTE";
    let out = w.run(&["--disk", &ro], &["sh", "-c", script]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from the image\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rw = format!("{}:/mnt/d", image.display());
    let out = w
        .run(&["--disk", &rw], &["sh", "-c", "echo new > /mnt/d/new"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (clean, said) = fsck(&image);
    assert!(clean, "{said}");
    let cat = std::process::Command::new("debugfs")
        .args(["-R", "cat /new"])
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "new\n");
    w.assert_no_vm_left();
}
