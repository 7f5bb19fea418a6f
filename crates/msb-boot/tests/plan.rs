//! Planner tests: from spec to plan, and the exact QEMU command line of a few plans,
//! without booting anything.

#![allow(clippy::unwrap_used)]

use msb_boot::{plan_with, BootError, BootPlan, HostConfig, ResolvedRoot};
use msb_protocol::{GuestMount, RootSource};
use msb_types::{DiskImageFormat, Field, Mount, Patch, RootSpec, SandboxSpec};
use msb_vmm::{Accel, AccelChoice, AccelSetting, DiskBacking, DiskPart, Qemu, ShareCache, Vmm};
use std::path::{Path, PathBuf};

const DIR: &str = "/home/u/.microsandbox/sandboxes/box";

fn host() -> HostConfig {
    HostConfig {
        kernel: "/opt/msb/vmlinux".into(),
        initramfs: "/opt/msb/initramfs.cpio".into(),
        qemu: Some("/usr/bin/qemu-system-x86_64".into()),
        virtiofsd: Some("/usr/libexec/virtiofsd".into()),
        templates: true,
        accel: AccelSetting::Auto,
    }
}

fn tcg() -> AccelChoice {
    AccelChoice {
        accel: Accel::Tcg,
        reason: Some("/dev/kvm is missing or not accessible".into()),
    }
}

fn spec(root: RootSpec) -> SandboxSpec {
    SandboxSpec::new("box", root)
}

fn image_root(layers: usize) -> ResolvedRoot {
    ResolvedRoot::Image {
        layers: (0..layers)
            .map(|i| DiskPart {
                path: format!("/home/u/.microsandbox/cache/layers/sha256_{i:064x}.erofs").into(),
                len: 4096 * (i as u64 + 1) + if i % 2 == 0 { 100 } else { 0 },
            })
            .collect(),
        upper: format!("{DIR}/upper.ext4").into(),
    }
}

fn plan(spec: &SandboxSpec, root: ResolvedRoot) -> BootPlan {
    plan_with(spec, Path::new(DIR), root, &host(), tcg()).unwrap()
}

fn argv(plan: &BootPlan) -> String {
    let qemu = Qemu::new(plan.vmm.clone());
    qemu.command_line(&plan.vm).unwrap().join("\n") + "\n"
}

/// Compares `actual` with the golden file `name`; `MSB_BLESS=1` rewrites it instead.
fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("MSB_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with MSB_BLESS=1 to create it)", path.display()));
    assert_eq!(
        actual, expected,
        "{name} differs from the golden file (MSB_BLESS=1 rewrites it)"
    );
}

#[test]
fn bind_root_golden_argv() {
    let mut s = spec(RootSpec::Bind("/srv/root".into()));
    s.resources.cpus = 2;
    s.resources.memory_mib = 1024;
    let p = plan(&s, ResolvedRoot::Dir("/srv/root".into()));
    golden("bind.argv", &argv(&p));
}

#[test]
fn oci_root_with_24_layers_golden_argv() {
    let p = plan(
        &spec(RootSpec::Oci("docker.io/library/python:latest".into())),
        image_root(24),
    );
    golden("oci-24-layers.argv", &argv(&p));
}

#[test]
fn disk_image_root_golden_argv() {
    let root = ResolvedRoot::Disk {
        path: "/images/root.qcow2".into(),
        format: DiskImageFormat::Qcow2,
        fstype: Some("ext4".into()),
    };
    let path = PathBuf::from("/images/root.qcow2");
    let p = plan(
        &spec(RootSpec::DiskImage {
            path,
            format: DiskImageFormat::Qcow2,
            fstype: Some("ext4".into()),
        }),
        root,
    );
    golden("disk-image.argv", &argv(&p));
}

#[test]
fn each_root_becomes_its_devices_and_guest_mount() {
    let bind = plan(&spec(RootSpec::Bind("/r".into())), ResolvedRoot::Dir("/r".into()));
    assert_eq!(bind.vm.shares.len(), 1);
    assert_eq!(bind.vm.shares[0].dir, PathBuf::from("/r"));
    assert!(bind.vm.disks.is_empty());
    assert_eq!(
        bind.guest.root,
        RootSource::VirtioFs {
            tag: bind.vm.shares[0].tag.clone()
        }
    );

    let oci = plan(&spec(RootSpec::Oci("img".into())), image_root(3));
    assert!(oci.vm.shares.is_empty());
    let [layers, upper] = &oci.vm.disks[..] else {
        panic!("{:?}", oci.vm.disks)
    };
    assert!(layers.readonly && !upper.readonly);
    let DiskBacking::Luns(parts) = &layers.backing else {
        panic!("{layers:?}")
    };
    assert_eq!(parts.len(), 3);
    // The guest finds layer i at LUN i: the parts stay in the image's order, bottom first.
    assert!(parts.windows(2).all(|w| w[0].path < w[1].path), "{parts:?}");
    let RootSource::Overlay {
        layers: count,
        upper: upper_serial,
    } = &oci.guest.root
    else {
        panic!()
    };
    assert_eq!((*count, upper_serial), (3, &upper.serial));

    let disk = plan(
        &spec(RootSpec::DiskImage {
            path: "/d.raw".into(),
            format: DiskImageFormat::Raw,
            fstype: None,
        }),
        ResolvedRoot::Disk {
            path: "/d.raw".into(),
            format: DiskImageFormat::Raw,
            fstype: None,
        },
    );
    assert_eq!(disk.vm.disks.len(), 1);
    assert!(!disk.vm.disks[0].readonly);
    assert!(matches!(disk.guest.root, RootSource::Disk { fstype: None, .. }));
}

#[test]
fn the_spec_and_host_settings_reach_the_plan() {
    let mut s = spec(RootSpec::Bind("/r".into()));
    s.resources.cpus = 3;
    s.resources.memory_mib = 700;
    s.hostname = "web".into();
    let p = plan(&s, ResolvedRoot::Dir("/r".into()));
    assert_eq!((p.vm.cpus, p.vm.memory_mib), (3, 700));
    assert_eq!(p.guest.hostname, "web");
    assert_eq!(p.vm.kernel, host().kernel);
    assert_eq!(p.vm.initramfs, host().initramfs);
    assert_eq!(p.vmm.binary, host().qemu.unwrap());
    assert_eq!(p.vmm.virtiofsd, host().virtiofsd);
    assert_eq!(p.vm.runtime_dir, PathBuf::from(DIR).join("runtime"));
    assert_eq!(p.console_log, PathBuf::from(DIR).join("logs/console.log"));
    assert_eq!(p.vm.accel, Accel::Tcg);
    assert!(p.accel_note.is_some());
    let kvm = plan_with(
        &s,
        Path::new(DIR),
        ResolvedRoot::Dir("/r".into()),
        &host(),
        AccelChoice {
            accel: Accel::Kvm,
            reason: None,
        },
    )
    .unwrap();
    assert_eq!((kvm.vm.accel, kvm.accel_note), (Accel::Kvm, None));
}

#[test]
fn a_plan_survives_json_whole() {
    let p = plan(&spec(RootSpec::Oci("img".into())), image_root(24));
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<BootPlan>(&json).unwrap(), p);
}

#[test]
fn what_cannot_boot_is_refused_by_the_planner() {
    let mut no_qemu = host();
    no_qemu.qemu = None;
    let s = spec(RootSpec::Bind("/r".into()));
    let err = plan_with(&s, Path::new(DIR), ResolvedRoot::Dir("/r".into()), &no_qemu, tcg()).unwrap_err();
    assert!(err.to_string().contains("qemu-system-x86_64"), "{err}");
    let err = plan_with(&s, Path::new(DIR), image_root(0), &host(), tcg()).unwrap_err();
    assert!(matches!(err, BootError::Incomplete { .. }), "{err}");
}

#[test]
fn an_invalid_spec_is_refused_before_any_lookup() {
    let paths = msb_types::Paths::new("/nonexistent-msb-home");
    let mut s = spec(RootSpec::Bind("/nonexistent".into()));
    s.patches.push(Patch::text("relative", "x"));
    match msb_boot::plan(&s, &paths, &host()) {
        Err(BootError::Spec(e)) => assert_eq!(e.field, Field::Patches),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mounts_become_shares_and_guest_mounts_in_order() {
    let mut s = spec(RootSpec::Oci("img".into()));
    s.mounts = vec![
        Mount::parse_volume("/srv/data:/data/:ro").unwrap(),
        Mount::parse_tmpfs("/scratch:size=64m,noexec").unwrap(),
        Mount::parse_volume("/srv/out:/out").unwrap(),
    ];
    let p = plan(&s, image_root(2));
    let shares: Vec<_> =
        p.vm.shares
            .iter()
            .map(|sh| (sh.tag.as_str(), sh.dir.to_str().unwrap(), sh.readonly, sh.cache))
            .collect();
    assert_eq!(
        shares,
        [
            ("msb-mount-0", "/srv/data", true, ShareCache::Never),
            ("msb-mount-2", "/srv/out", false, ShareCache::Never)
        ]
    );
    assert_eq!(
        p.guest.mounts,
        [
            GuestMount::VirtioFs {
                tag: "msb-mount-0".into(),
                path: "/data".into(),
                readonly: true
            },
            GuestMount::Tmpfs {
                path: "/scratch".into(),
                size_mib: Some(64),
                mode: None,
                noexec: true,
                readonly: false
            },
            GuestMount::VirtioFs {
                tag: "msb-mount-2".into(),
                path: "/out".into(),
                readonly: false
            },
        ]
    );
    // A single file is shared from a directory of its own, holding a link to it.
    let mut one = spec(RootSpec::Oci("img".into()));
    one.mounts = vec![Mount::File {
        host: "/etc/app.conf".into(),
        guest: "/etc/app.conf".into(),
        readonly: true,
    }];
    let p = plan(&one, image_root(1));
    let staging = format!("{DIR}/runtime/file-mounts/0");
    assert_eq!(p.vm.shares[0].dir.to_str(), Some(staging.as_str()));
    assert!(p.vm.shares[0].readonly);
    assert_eq!(
        p.file_links,
        [msb_boot::FileLink {
            source: "/etc/app.conf".into(),
            link: format!("{staging}/app.conf").into()
        }]
    );
    // The read-only share is read-only in virtiofsd's hands, not only in the guest's.
    let root = plan(&spec(RootSpec::Bind("/r".into())), ResolvedRoot::Dir("/r".into()));
    assert_eq!(
        (root.vm.shares[0].readonly, root.vm.shares[0].cache),
        (false, ShareCache::Always)
    );
}

#[test]
fn a_missing_host_directory_is_refused_by_name() {
    let paths = msb_types::Paths::new("/nonexistent-msb-home");
    let mut s = spec(RootSpec::Bind("/nonexistent".into()));
    s.mounts
        .push(Mount::parse_volume("/nonexistent-host-dir:/data").unwrap());
    match msb_boot::plan(&s, &paths, &host()) {
        Err(BootError::Spec(e)) => {
            assert_eq!(e.field, Field::Mounts);
            assert!(e.to_string().contains("/nonexistent-host-dir"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn templates_are_kept_in_the_homes_cache_unless_a_sandbox_boots_cold() {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let paths = msb_types::Paths::new(home.path());
    let mut s = spec(RootSpec::Bind(root));
    let planned = msb_boot::plan(&s, &paths, &host()).unwrap();
    assert_eq!(planned.template, Some(home.path().join("cache/templates")));
    let off = HostConfig {
        templates: false,
        ..host()
    };
    assert_eq!(msb_boot::plan(&s, &paths, &off).unwrap().template, None);
    s.cold_boot = true;
    assert_eq!(msb_boot::plan(&s, &paths, &host()).unwrap().template, None);
    let pure = plan(&spec(RootSpec::Oci("img".into())), image_root(1));
    assert_eq!(pure.template, None, "plan_with reads nothing, templates included");
}
