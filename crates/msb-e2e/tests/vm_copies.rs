//! `msb cp` between the host and a running sandbox: trees round-trip exactly, tar streams
//! work both ways, docker's destination rules hold, and a guest's planted links cannot make
//! the host write outside the destination.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Every entry below `dir` with what a faithful copy keeps: kind, mode, owner, mtime,
/// contents or link target, and which entries share an inode.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>, inodes: &mut BTreeMap<u64, String>) {
        let mut items: Vec<_> = std::fs::read_dir(dir).unwrap().map(|i| i.unwrap().path()).collect();
        items.sort();
        for p in items {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                "dir".to_string()
            } else {
                let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
                format!("file {:?} first-name {first}", std::fs::read(&p).unwrap())
            };
            let mode = if m.file_type().is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            out.insert(
                rel,
                format!("{what} mode {mode:o} owner {}:{} mtime {}", m.uid(), m.gid(), m.mtime()),
            );
            if m.is_dir() {
                walk(base, &p, out, inodes);
            }
        }
    }
    walk(dir, dir, &mut out, &mut inodes);
    out
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?}");
}

/// A tree with what copies get wrong: modes, owners, an empty directory, symlinks in and
/// out of it, a hard link, a name with a space, and old mtimes.
fn make_tree(src: &Path) {
    std::fs::create_dir_all(src.join("app/empty")).unwrap();
    std::fs::write(src.join("app/run.sh"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::write(src.join("app/data file"), "some data").unwrap();
    std::fs::hard_link(src.join("app/data file"), src.join("app/same data")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("app/abs")).unwrap();
    std::os::unix::fs::symlink("../app/run.sh", src.join("app/rel")).unwrap();
    let mode = |p: &str, m: u32| std::fs::set_permissions(src.join(p), std::fs::Permissions::from_mode(m)).unwrap();
    mode("app/run.sh", 0o755);
    mode("app/data file", 0o600);
    mode("app/empty", 0o700);
    mode("app", 0o750);
    run(Command::new("chown").arg("1234:5678").arg(src.join("app/data file")));
    run(Command::new("find")
        .arg(src)
        .args(["-exec", "touch", "-h", "-d", "@1500000000", "{}", "+"]));
}

#[test]
fn msb_cp_round_trips_a_tree_exactly_and_streams_tar() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("cp", &[]);
    let src = w.home().join("src");
    make_tree(&src);

    // In: NAME:/work does not exist, so it becomes the copy of src; then back out.
    let src_s = src.to_str().unwrap();
    w.ok(&["cp", "-a", "-H", src_s, "cp:/work"]);
    let guest = w.ok(&[
        "exec",
        "cp",
        "--",
        "stat",
        "-c",
        "%a %u:%g %h %Y",
        "/work/app/data file",
    ]);
    assert_eq!(guest.trim(), "600 1234:5678 2 1500000000");
    let out = w.home().join("out");
    w.ok(&["cp", "-a", "-H", "cp:/work", out.to_str().unwrap()]);
    assert_eq!(snapshot(&out), snapshot(&src));

    // An existing directory destination takes the source inside it; `SRC/.` its contents.
    let into = w.home().join("into");
    std::fs::create_dir(&into).unwrap();
    w.ok(&["cp", "cp:/work/app", into.to_str().unwrap()]);
    assert!(into.join("app/run.sh").is_file());
    w.ok(&["cp", "cp:/work/app/.", into.to_str().unwrap()]);
    assert!(into.join("run.sh").is_file());
    // Docker's usual form: the contents into the current directory.
    let here = w.home().join("here");
    std::fs::create_dir(&here).unwrap();
    let status = w
        .msb()
        .args(["cp", "cp:/work/app/.", "."])
        .current_dir(&here)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(here.join("run.sh").is_file());
    // Without -a the copies are the receiver's; without -H a hard link is a second file.
    let owned = std::fs::metadata(into.join("data file")).unwrap();
    assert_eq!((owned.uid(), owned.nlink()), (0, 1));
    // A single file, to a new name and into a directory.
    w.ok(&["cp", src.join("app/run.sh").to_str().unwrap(), "cp:/bin/"]);
    assert_eq!(w.ok(&["exec", "cp", "--", "run.sh"]), "run\n");

    // Tar streams: out as docker gives them (named by the source's last name), and in.
    let tar = w.home().join("work.tar");
    let out = w
        .msb()
        .args(["cp", "cp:/work", "-"])
        .stdout(std::fs::File::create(&tar).unwrap())
        .status()
        .unwrap();
    assert!(out.success());
    let listed = Command::new("tar").arg("-tvf").arg(&tar).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains("work/app/run.sh"), "{listed}");
    assert!(listed.contains("work/app/abs -> /etc/passwd"), "{listed}");
    let back_in = w
        .msb()
        .args(["cp", "-", "cp:/from-tar"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(back_in.success());
    assert_eq!(
        w.ok(&["exec", "cp", "--", "cat", "/from-tar/work/app/data file"]),
        "some data"
    );

    // Clear errors, nothing done.
    w.fails(
        &["cp", "cp:/missing", w.home().to_str().unwrap()],
        125,
        "no such file or directory in the sandbox",
    );
    w.fails(
        &["cp", src_s, w.home().join("x").to_str().unwrap()],
        125,
        "must be NAME:PATH",
    );
    w.fails(
        &["cp", "cp:/work", src.join("app/run.sh").to_str().unwrap()],
        125,
        "cannot copy a directory onto a file",
    );
    w.ok(&["rm", "-f", "cp"]);
    w.assert_no_vm_left();
}

#[test]
fn a_guest_that_plants_links_cannot_make_the_host_write_outside_the_destination() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("evil", &[]);
    let outside = w.home().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let outside_s = outside.to_str().unwrap();
    // Links to the host's root, up out of the destination, and straight at a host directory.
    let plant = format!(
        "mkdir -p /evil/d && echo x > /evil/d/f && ln -s / /evil/root && ln -s ../../../.. /evil/up && ln -s {outside_s} /evil/x"
    );
    w.ok(&["exec", "evil", "--", "sh", "-c", &plant]);
    let dest = w.home().join("dest");
    w.ok(&["cp", "evil:/evil", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read_link(dest.join("root")).unwrap(), Path::new("/"));
    assert_eq!(std::fs::read_link(dest.join("x")).unwrap(), outside);
    assert_eq!(std::fs::read(dest.join("d/f")).unwrap(), b"x\n");
    // Second round: the guest turns the planted names into directories full of files and
    // asks for a copy over the first. Nothing goes through the links already on the host.
    let swap =
        "rm /evil/x /evil/up && mkdir -p /evil/x /evil/up && echo pwned > /evil/x/owned && echo pwned > /evil/up/owned";
    w.ok(&["exec", "evil", "--", "sh", "-c", swap]);
    let out = w.output(&["cp", "evil:/evil/.", dest.to_str().unwrap()]);
    assert!(!out.status.success(), "copying over the planted links was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not replaced by a directory"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written outside"
    );
    assert!(!w.home().join("owned").exists() && !Path::new("/owned").exists());
    w.ok(&["rm", "-f", "evil"]);
    w.assert_no_vm_left();
}
