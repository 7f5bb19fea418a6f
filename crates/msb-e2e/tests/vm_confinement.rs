//! A sandbox's host processes, confined, checked from outside through `/proc`: QEMU runs
//! under its own seccomp filter (`-sandbox`: no exec, no fork, no setuid) with no
//! capabilities (even when msb is root), and QEMU and virtiofsd can gain no privileges
//! (`PR_SET_NO_NEW_PRIVS`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};

/// The value of `field` in a `/proc/PID/status`.
fn status_field(pid: u64, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_once(':').unwrap().1.trim().to_string()
}

/// The pids of the processes whose parent is `parent` and whose name is `comm`.
fn children_named(parent: u64, comm: &str) -> Vec<u64> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
                s.lines()
                    .any(|l| l.strip_prefix("PPid:").is_some_and(|p| p.trim() == parent.to_string()))
            })
        })
        .collect()
}

#[test]
fn qemu_and_virtiofsd_run_confined() {
    if !vm_available() {
        return;
    }
    let w = World::new();
    w.create("walled", &[]);
    let info = w.inspect("walled");
    let qemu = info["vmm_pid"].as_u64().expect("QEMU's pid");
    assert_eq!(status_field(qemu, "Seccomp"), "2", "QEMU runs under a seccomp filter");
    assert_eq!(status_field(qemu, "NoNewPrivs"), "1");
    // Emptying the bounding set takes root; unprivileged, there is nothing in it to use.
    // SAFETY: geteuid has no preconditions.
    let sets: &[&str] = if unsafe { libc::geteuid() } == 0 {
        &["CapEff", "CapPrm", "CapBnd"]
    } else {
        &["CapEff", "CapPrm"]
    };
    for set in sets {
        assert_eq!(status_field(qemu, set), "0000000000000000", "QEMU's {set}");
    }
    // The directory root is shared by virtiofsd, a child of the supervisor.
    let supervisor = info["supervisor_pid"].as_u64().expect("the supervisor's pid");
    let virtiofsd = children_named(supervisor, "virtiofsd");
    assert!(!virtiofsd.is_empty(), "a directory root runs a virtiofsd");
    for pid in virtiofsd {
        assert_eq!(status_field(pid, "NoNewPrivs"), "1", "virtiofsd {pid}");
    }
    assert_eq!(w.ok(&["exec", "walled", "--", "echo", "up"]), "up\n");
    w.ok(&["rm", "-f", "walled"]);
    w.assert_no_vm_left();
}
