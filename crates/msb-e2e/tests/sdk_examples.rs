//! The SDK's examples, run as a user would run them, against real VMs.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{image_world, msb_bin, stdout_of, vm_available, Sandbox as World};
use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "microsandbox", "--examples"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(status.success(), "building the SDK examples failed");
    });
    root.join("target/debug/examples").join(name)
}

fn run(w: &World, name: &str, arg: &str) -> String {
    let out = Command::new(example(name))
        .arg(arg)
        .env("MSB_HOME", w.home())
        .env("MSB_BIN", msb_bin())
        .output()
        .unwrap();
    stdout_of(&out)
}

#[test]
fn hello_runs_python_from_an_image() {
    let Some((w, image)) = image_world("python") else {
        return;
    };
    let out = run(&w, "hello", &image);
    assert_eq!(out, "hello from linux\nexit status: 0\n");
    assert_eq!(w.sandbox_dirs(), 0, "the ephemeral sandbox is gone");
    w.assert_no_vm_left();
}

#[test]
fn stream_and_persist_run_on_a_directory_root() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let root = w.rootfs.to_str().unwrap();
    let out = run(&w, "stream", root);
    assert!(out.starts_with("[started as pid "), "{out}");
    assert!(out.contains("got: one\ngot: two\ngot: three\n"), "{out}");
    assert!(
        out.contains("[stderr] done\n") && out.ends_with("[exited: Code(0)]\n"),
        "{out}"
    );
    let out = run(&w, "persist", root);
    assert!(
        out.contains(": Stopped\nafter restart: kept across restarts\nmemory used: "),
        "{out}"
    );
    assert!(out.ends_with(": removed\n"), "{out}");
    w.assert_no_vm_left();
}
