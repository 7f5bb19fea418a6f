//! The CLI verbs and behaviours of the reference beyond the lifecycle: restart, exec on a
//! stopped sandbox, metrics of all, quiet detached runs, aliases, install/uninstall and
//! shell completion.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{image_world, vm_available, Sandbox as World};
use serde_json::Value;
use std::process::Command;

fn uptime(w: &World, name: &str) -> f64 {
    let out = w.ok(&["exec", name, "--", "cut", "-d ", "-f1", "/proc/uptime"]);
    out.trim().parse().unwrap()
}

#[test]
fn restart_exec_on_stopped_metrics_and_quiet_detached_runs() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    let root = w.rootfs.to_str().unwrap();
    // A name the user gave is not echoed; a generated one is.
    assert_eq!(w.ok(&["run", "-d", "--name", "bg", "--rootfs", root]), "");
    let generated = w.ok(&["run", "-d", "--rootfs", root]);
    assert!(generated.starts_with("msb-"), "{generated}");
    w.ok(&["remove", "-f", generated.trim()]);
    // `create IMAGE|--rootfs` as the reference: the name is optional and printed if generated.
    let created = w.ok(&["create", "--rootfs", root]);
    assert!(created.starts_with("msb-"), "{created}");
    // -q: nothing printed for what succeeded.
    assert_eq!(w.ok(&["rm", "-q", "-f", created.trim()]), "");

    // Metrics of every running sandbox at once.
    let table = w.ok(&["metrics"]);
    assert!(table.starts_with("NAME") && table.contains("\nbg "), "{table}");
    let all: Value = serde_json::from_str(&w.ok(&["metrics", "--format", "json"])).unwrap();
    assert!(all["bg"]["uptime_secs"].is_u64(), "{all}");
    assert!(all["bg"]["timestamp"].as_str().unwrap().ends_with('Z'), "{all}");

    // Restart boots the guest afresh.
    w.ok(&["exec", "bg", "--", "sleep", "2"]);
    let before = uptime(&w, "bg");
    assert_eq!(w.ok(&["restart", "bg"]), "bg\n");
    assert_eq!(w.inspect("bg")["state"], "Running");
    assert!(uptime(&w, "bg") < before, "the guest did not reboot");

    // exec on a stopped sandbox starts it for the command and stops it again.
    assert_eq!(w.ok(&["stop", "-q", "bg"]), "");
    assert_eq!(w.ok(&["exec", "-q", "bg", "--", "echo", "woke"]), "woke\n");
    assert_eq!(w.inspect("bg")["state"], "Stopped");
    w.fails(&["exec", "--no-start", "bg", "--", "true"], 125, "is stopped");
    w.fails(&["exec", "bg"], 125, "a shell needs a terminal");
    w.ok(&["rm", "bg"]);
    w.assert_no_vm_left();
}

#[test]
fn install_puts_a_working_command_on_the_path() {
    let Some((w, busybox)) = image_world("busybox") else {
        return;
    };
    assert!(w.ok(&["image", "pull", "-q", &busybox]).starts_with("sha256:"));
    assert!(w.ok(&["images", "-q"]).contains("msb-test/busybox"));
    assert_eq!(
        w.ok(&["install", "--no-pull", &busybox, "--", "echo", "it's"]),
        "busybox\n"
    );
    let script = w.home().join("bin/busybox");
    let run = |arg: &str| {
        let out = Command::new(&script).arg(arg).env_remove("MSB_HOME").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "-q: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run("alive"), "it's alive\n");
    // The second run reuses the command's sandbox, which stays between runs.
    assert_eq!(run("again"), "it's again\n");
    assert_eq!(w.ok(&["ls", "-a", "-q"]), "busybox\n");
    let listed: Value = serde_json::from_str(&w.ok(&["install", "-l", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "busybox");
    w.fails(&["install", "--no-pull", &busybox], 125, "add --force");
    // --tmp: a fresh sandbox per run, nothing left after.
    w.ok(&["install", "--tmp", "-n", "once", &busybox, "--", "echo"]);
    let out = Command::new(w.home().join("bin/once")).arg("x").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\n");
    // Uninstall removes only what install wrote.
    std::fs::write(w.home().join("bin/mine"), "#!/bin/sh\n").unwrap();
    w.fails(&["uninstall", "mine"], 1, "not written by msb install");
    assert_eq!(w.ok(&["uninstall", "busybox", "once"]), "busybox\nonce\n");
    assert!(!script.exists() && w.home().join("bin/mine").exists());
    w.ok(&["rm", "-f", "busybox"]);
    w.ok(&["rmi", &busybox]);
    w.assert_no_vm_left();
}

#[test]
fn completion_loads_in_bash() {
    let w = World::new();
    let bin = msb_e2e::msb_bin();
    for shell in ["bash", "zsh", "fish"] {
        assert!(w.ok(&["completion", shell]).contains("msb"));
    }
    let out = Command::new("bash")
        .args(["-c", r#"source <("$0" completion bash) && complete -p msb"#])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-F _msb msb"));
}
