//! `msb inspect NAME --boot-plan`: the plan of a directory root, an image root and a
//! disk-image root, shown without booting, is exactly what the supervisor runs.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{image_world, stdout_of, vm_available, Sandbox as World};
use serde_json::Value;

fn plan(w: &World, name: &str) -> Value {
    serde_json::from_str(&stdout_of(&w.output(&["inspect", name, "--boot-plan", "--json"]))).unwrap()
}

/// The argv of the running QEMU of sandbox `name`.
fn running_qemu_argv(w: &World, name: &str) -> Vec<String> {
    let info: Value = serde_json::from_str(&stdout_of(&w.output(&["inspect", name]))).unwrap();
    let pid = info["vmm_pid"].as_u64().expect("a running sandbox has a VMM pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn argv_of(plan: &Value) -> Vec<String> {
    plan["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Creates `name` with `args`, checks that the plan shown is what runs (QEMU's argv), and
/// that the plan of the stopped sandbox is the same; returns the plan.
fn shown_is_run(w: &World, name: &str, args: &[&str]) -> Value {
    stdout_of(&w.output(&[&["create", "-n", name], args].concat()));
    let shown = plan(w, name);
    let mut running = running_qemu_argv(w, name);
    // QEMU's argv[0] is the program as it was started.
    running[0] = argv_of(&shown)[0].clone();
    assert_eq!(argv_of(&shown), running, "the plan shown is not what runs");
    stdout_of(&w.output(&["stop", name]));
    assert_eq!(
        plan(w, name),
        shown,
        "a stopped sandbox's plan differs from its running one"
    );
    let text = stdout_of(&w.output(&["inspect", name, "--boot-plan"]));
    assert!(text.starts_with("VMM command line:\n"), "{text}");
    assert!(text.contains("\nguest:\n"), "{text}");
    shown
}

#[test]
fn the_plan_of_a_directory_root_is_what_runs() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let root = w.rootfs.to_str().unwrap();
    let p = shown_is_run(&w, "dir", &["--rootfs", root, "--cpus", "2", "--memory", "300"]);
    let vm = &p["plan"]["vm"];
    assert_eq!((vm["cpus"].as_u64(), vm["memory_mib"].as_u64()), (Some(2), Some(300)));
    let share = &vm["shares"][0];
    assert_eq!(
        share["dir"],
        std::fs::canonicalize(&w.rootfs).unwrap().to_str().unwrap()
    );
    assert_eq!(p["plan"]["guest"]["root"]["VirtioFs"]["tag"], share["tag"]);
    assert_eq!(p["plan"]["guest"]["hostname"], "dir");
    let out = w.output(&["inspect", "nothing-here", "--boot-plan"]);
    assert_eq!(out.status.code(), Some(125));
    w.assert_no_vm_left();
}

#[test]
fn the_plan_of_an_image_root_is_what_runs() {
    let Some((w, image)) = image_world("layers") else {
        return;
    };
    let p = shown_is_run(&w, "img", &[&image]);
    let disks = p["plan"]["vm"]["disks"].as_array().unwrap();
    let luns = disks[0]["backing"]["Luns"].as_array().unwrap();
    let layers = p["plan"]["guest"]["root"]["Overlay"]["layers"].as_u64().unwrap();
    assert_eq!((luns.len(), layers), (24, 24), "one LUN per layer");
    assert!(disks[1]["backing"]["File"]["path"]
        .as_str()
        .unwrap()
        .ends_with("/upper.ext4"));
    w.assert_no_vm_left();
}

#[test]
fn the_plan_of_a_disk_image_root_is_what_runs() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let disk = w.home().join("root.ext4");
    let made = std::process::Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-d"])
        .arg(&w.rootfs)
        .arg(&disk)
        .arg("64M")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let p = shown_is_run(&w, "disk", &["--rootfs", disk.to_str().unwrap()]);
    let file = &p["plan"]["vm"]["disks"][0]["backing"]["File"];
    assert_eq!(file["path"], disk.to_str().unwrap());
    assert_eq!(file["format"], "Raw");
    w.assert_no_vm_left();
}
