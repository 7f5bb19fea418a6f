#![allow(clippy::unwrap_used)]

use super::*;
use crate::{plan_with, HostConfig, ResolvedRoot};
use msb_types::{RootSpec, SandboxSpec};
use msb_vmm::{Accel, AccelChoice, AccelSetting, DiskPart};

/// The plan of a sandbox of `layers` layers, its programs the files in `programs`.
fn plan(programs: &Path, layers: usize, memory_mib: u32) -> BootPlan {
    let host = HostConfig {
        kernel: programs.join("vmlinux"),
        initramfs: programs.join("initramfs.cpio"),
        qemu: Some(programs.join("qemu")),
        virtiofsd: None,
        templates: true,
        accel: AccelSetting::Auto,
    };
    let mut spec = SandboxSpec::new("box", RootSpec::Oci("busybox".into()));
    spec.resources.memory_mib = memory_mib;
    let root = ResolvedRoot::Image {
        layers: (0..layers)
            .map(|i| DiskPart {
                path: programs.join(format!("layer{i}.erofs")),
                len: 4096,
            })
            .collect(),
        upper: upper(programs, &format!("upper-{layers}-{memory_mib}.ext4")),
    };
    let accel = AccelChoice {
        accel: Accel::Tcg,
        reason: None,
    };
    plan_with(&spec, programs, root, &host, accel).unwrap()
}

/// A sandbox's upper disk of the default size, at `name` in `dir`.
fn upper(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(4 << 20).unwrap();
    path
}

/// The template of `plan` in `dir`, keyed by QEMU's command line.
fn of(plan: &BootPlan, dir: &Path) -> Option<Template> {
    Template::of(plan, &msb_vmm::Qemu::new(plan.vmm.clone()), dir)
}

fn programs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["vmlinux", "initramfs.cpio", "qemu"] {
        std::fs::write(dir.path().join(file), file).unwrap();
    }
    dir
}

#[test]
fn sandboxes_of_one_make_share_a_template() {
    let programs = programs();
    let dir = programs.path().join("templates");
    let one = of(&plan(programs.path(), 1, 512), &dir).unwrap();
    assert!(one.file().starts_with(&dir));
    assert_eq!(one.disk_sizes, [4096, 4 << 20]);
    // Another sandbox of the same image: its own upper, of the same size.
    let mut same = plan(programs.path(), 1, 512);
    if let DiskBacking::File { path, .. } = &mut same.vm.disks[1].backing {
        *path = upper(programs.path(), "another.ext4");
    }
    assert_eq!(of(&same, &dir).unwrap(), one);
    let other_image = of(&plan(programs.path(), 3, 512), &dir).unwrap();
    assert_eq!(other_image.disk_sizes, [4096, 4096, 4096, 4 << 20]);
    let more_memory = of(&plan(programs.path(), 1, 1024), &dir).unwrap();
    for other in [&other_image, &more_memory] {
        assert_ne!(one.file().parent(), other.file().parent());
    }
    let mut offline = plan(programs.path(), 1, 512);
    offline.vm.net = None;
    assert_ne!(of(&offline, &dir).unwrap(), one);
    let mut other_mac = plan(programs.path(), 1, 512);
    other_mac.vm.net.as_mut().unwrap().mac[5] ^= 1;
    assert_ne!(of(&other_mac, &dir).unwrap(), one);
    let mut two_cpus = plan(programs.path(), 1, 512);
    two_cpus.vm.cpus = 2;
    assert_ne!(of(&two_cpus, &dir).unwrap(), one);
    let mut kvm = plan(programs.path(), 1, 512);
    kvm.vm.accel = Accel::Kvm;
    assert_ne!(
        of(&kvm, &dir).unwrap(),
        one,
        "another -accel, -cpu and kernel command line"
    );
    let mut extra_disk = plan(programs.path(), 1, 512);
    extra_disk.vm.disks.push(extra_disk.vm.disks[1].clone());
    assert_ne!(of(&extra_disk, &dir).unwrap(), one);
}

#[test]
fn a_changed_kernel_agent_or_qemu_is_a_new_build() {
    let programs = programs();
    let dir = programs.path().join("templates");
    let plan = plan(programs.path(), 1, 512);
    let before = of(&plan, &dir).unwrap();
    for file in ["vmlinux", "initramfs.cpio", "qemu"] {
        let was = of(&plan, &dir).unwrap();
        // Rewritten in place, same length: only its change time tells.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(programs.path().join(file), file).unwrap();
        let now = of(&plan, &dir).unwrap();
        assert_ne!(was, now, "{file} rewritten");
        assert_eq!(was.file().parent(), now.file().parent(), "the same make");
    }
    assert_ne!(before, of(&plan, &dir).unwrap());
    std::fs::remove_file(programs.path().join("qemu")).unwrap();
    assert_eq!(of(&plan, &dir), None, "no QEMU to key by: no template");
}

#[test]
fn guests_with_shares_or_disks_of_unknown_size_get_no_template() {
    let programs = programs();
    let dir = programs.path().join("templates");
    let mut shared = plan(programs.path(), 1, 512);
    shared.vm.shares.push(msb_vmm::Share::private("data", "/data"));
    assert_eq!(of(&shared, &dir), None);
    let mut qcow2 = plan(programs.path(), 1, 512);
    if let DiskBacking::File { format, .. } = &mut qcow2.vm.disks[1].backing {
        *format = DiskFormat::Qcow2;
    }
    assert_eq!(of(&qcow2, &dir), None);
    let mut gone = plan(programs.path(), 1, 512);
    if let DiskBacking::File { path, .. } = &gone.vm.disks[1].backing {
        std::fs::remove_file(path).unwrap();
    }
    assert_eq!(of(&gone, &dir), None);
    gone.vm.disks.clear();
    assert!(of(&gone, &dir).is_some(), "no disks at all is fine");
}

#[test]
fn a_template_exists_once_recorded_and_a_new_build_replaces_the_old() {
    let programs = programs();
    let dir = programs.path().join("templates");
    let plan = plan(programs.path(), 1, 512);
    let old = of(&plan, &dir).unwrap();
    assert!(!old.exists());
    std::fs::create_dir_all(old.file().parent().unwrap()).unwrap();
    std::fs::write(old.file(), b"").unwrap();
    assert!(!old.exists(), "an empty file is no template");
    std::fs::write(old.file(), b"saved").unwrap();
    assert!(old.exists());
    std::thread::sleep(std::time::Duration::from_millis(10));
    std::fs::write(programs.path().join("vmlinux"), "new").unwrap();
    let new = of(&plan, &dir).unwrap();
    std::fs::write(new.file(), b"saved").unwrap();
    let other = old.file().with_extension("img");
    std::fs::write(&other, b"x").unwrap();
    new.remove_older_builds();
    assert!(!old.exists() && new.exists() && other.exists());
    new.discard();
    assert!(!new.exists());
}

#[test]
fn beyond_the_kept_makes_the_least_recently_used_go() {
    let programs = programs();
    let dir = programs.path().join("templates");
    let made: Vec<Template> = (0..KEPT_MAKES + 2)
        .map(|i| {
            let template = of(&plan(programs.path(), 1, 256 + i as u32), &dir).unwrap();
            std::fs::create_dir_all(template.file().parent().unwrap()).unwrap();
            std::fs::write(template.file(), b"saved").unwrap();
            let age = std::time::Duration::from_secs(1000 - i as u64);
            let when = std::time::SystemTime::now() - age;
            set_modified(template.file(), when).unwrap();
            template
        })
        .collect();
    // The oldest was used just now.
    made[0].used();
    made[KEPT_MAKES + 1].remove_least_used();
    let kept: Vec<bool> = made.iter().map(Template::exists).collect();
    assert!(kept[0], "used last, kept");
    assert!(!kept[1] && !kept[2], "the two least recently used went: {kept:?}");
    assert!(kept[3..].iter().all(|k| *k), "{kept:?}");
}

#[test]
fn a_recording_runs_paused_on_placeholders_and_what_dead_ones_left_goes() {
    let programs = programs();
    let plan = plan(programs.path(), 2, 512);
    let placeholders = [PathBuf::from("/p0"), PathBuf::from("/p1"), PathBuf::from("/p2")];
    let spec = recording_spec(&plan.vm, &placeholders);
    assert!(spec.paused && spec.resume_from.is_none());
    assert!(spec.runtime_dir.ends_with("runtime/template"));
    // The same devices: the layers stay LUNs, each behind a placeholder of its own.
    let DiskBacking::Luns(luns) = &spec.disks[0].backing else {
        panic!("{:?}", spec.disks[0])
    };
    let paths: Vec<&Path> = luns.iter().map(|lun| lun.path.as_path()).collect();
    assert_eq!(paths, [Path::new("/p0"), Path::new("/p1")]);
    assert_eq!(
        spec.disks[1].backing,
        DiskBacking::File {
            path: placeholders[2].clone(),
            format: DiskFormat::Raw
        }
    );
    let make = programs.path().join("make");
    std::fs::create_dir(&make).unwrap();
    let stale = make.join(format!("{PARTIAL}1-0"));
    let fresh = make.join(format!("{PARTIAL}2-0"));
    let template = make.join("build.vm");
    for file in [&stale, &fresh, &template] {
        std::fs::write(file, b"x").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - STALE - Duration::from_secs(60);
    for file in [&stale, &template] {
        set_modified(file, long_ago).unwrap();
    }
    remove_stale(&make);
    assert!(!stale.exists() && fresh.exists() && template.exists());
}
