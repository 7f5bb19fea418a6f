//! Our EROFS layers, stacked by the kernel's overlayfs, must show exactly the tree that
//! `umoci unpack` makes of the same image: names, types, modes, owners, sizes, contents,
//! link targets and xattrs. Needs root (loop and overlay mounts), as CI has.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{registry, Sandbox};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unmounts what it mounted, innermost first, even when the test fails.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

/// One line per path: type, mode, owner, size, content hash or link target, xattrs.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let ft = meta.file_type();
            let what = if ft.is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if ft.is_file() {
                format!("file {:x}", Sha256::digest(std::fs::read(&path).unwrap()))
            } else if ft.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else {
                format!("special rdev={}", meta.rdev())
            };
            let mut xattrs: Vec<String> = xattr::list(&path)
                .map(|names| {
                    names
                        .filter(|n| !n.to_string_lossy().starts_with("trusted.overlay"))
                        .map(|n| format!("{}={:?}", n.to_string_lossy(), xattr::get(&path, &n).ok().flatten()))
                        .collect()
                })
                .unwrap_or_default();
            xattrs.sort();
            let size = if ft.is_dir() { 0 } else { meta.len() };
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let line = format!(
                "{what} mode={:o} {}:{} size={size} {xattrs:?}",
                meta.mode(),
                meta.uid(),
                meta.gid()
            );
            out.insert(rel, line);
        }
    }
    out
}

fn compare_with_umoci(addr: &str, name: &str) {
    let sb = Sandbox::new();
    let image = format!("{addr}/msb-test/{name}:latest");
    let out = sb.msb().args(["pull", "-q", &image]).output().expect("msb pull");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inspect = sb.msb().args(["image", "inspect", &image]).output().expect("inspect");
    let record: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("json");
    let work = sb.home().join("compare");
    let layout = work.join("layout");
    std::fs::create_dir_all(&work).unwrap();
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", &format!("docker://{image}")])
        .arg(format!("oci:{}:latest", layout.display())));
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(work.join("bundle")));

    let mut mounts = Mounts(Vec::new());
    let mut lowers = Vec::new();
    for (i, layer) in record["layers"].as_array().expect("layers").iter().enumerate() {
        let diff_id = layer["diff_id"].as_str().unwrap().replace(':', "_");
        let file = sb.home().join("cache/layers").join(format!("{diff_id}.erofs"));
        let mnt = work.join(format!("l{i}"));
        std::fs::create_dir_all(&mnt).unwrap();
        run(Command::new("mount")
            .args(["-t", "erofs", "-o", "loop,ro"])
            .arg(&file)
            .arg(&mnt));
        mounts.0.push(mnt.clone());
        lowers.insert(0, mnt.display().to_string());
    }
    let merged = work.join("merged");
    std::fs::create_dir_all(&merged).unwrap();
    // A single lower is not an overlay mount; stacking needs at least two.
    let view = if lowers.len() == 1 {
        PathBuf::from(&lowers[0])
    } else {
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("lowerdir={}", lowers.join(":")))
            .arg(&merged));
        mounts.0.push(merged.clone());
        merged
    };
    let ours = describe(&view);
    let theirs = describe(&work.join("bundle/rootfs"));
    let only_ours: Vec<_> = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(v))
        .take(10)
        .collect();
    let only_theirs: Vec<_> = theirs
        .iter()
        .filter(|(k, v)| ours.get(*k) != Some(v))
        .take(10)
        .collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{name}: ours {only_ours:#?}\numoci {only_theirs:#?}"
    );
    assert!(ours.len() > 10, "suspiciously small tree: {}", ours.len());
}

fn can_mount() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && std::env::var("MSB_REQUIRE_MOUNT").as_deref() == Ok("1") {
        panic!("the layer content check needs root for loop and overlay mounts");
    }
    root
}

#[test]
fn tricky_image_matches_umoci_unpack() {
    let Some(addr) = registry() else { return };
    if can_mount() {
        compare_with_umoci(&addr, "tricky");
    }
}

#[test]
fn python_image_matches_umoci_unpack() {
    let Some(addr) = registry() else { return };
    if can_mount() {
        compare_with_umoci(&addr, "python");
    }
}
