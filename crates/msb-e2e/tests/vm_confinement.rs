//! A sandbox's host processes, confined, checked from outside through `/proc`: the
//! supervisor runs under its own seccomp filter once the VM is up, QEMU runs
//! under its own seccomp filter (`-sandbox`: no exec, no fork, no setuid) with no
//! capabilities (even when msb is root), QEMU and virtiofsd can gain no privileges
//! (`PR_SET_NO_NEW_PRIVS`), and virtiofsd serves from inside its namespace sandbox, the
//! share as its root, for root and ordinary users alike. Rlimits bound the memory and
//! descriptors of both.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::{vm_available, Sandbox as World};
use std::os::unix::fs::MetadataExt;

/// The value of `field` in a `/proc/PID/status`.
fn status_field(pid: u64, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_once(':').unwrap().1.trim().to_string()
}

/// The soft and hard values of limit `name` (`Max open files` …) of process `pid`.
fn limit(pid: u64, name: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
    let mut values = line[name.len()..].split_whitespace().map(str::to_string);
    (values.next().unwrap(), values.next().unwrap())
}

/// Asserts that limit `name` of `pid` is `value`, soft and hard.
fn assert_limit(pid: u64, name: &str, value: u64, whose: &str) {
    let value = value.to_string();
    assert_eq!(limit(pid, name), (value.clone(), value), "{whose}'s {name}");
}

/// The pids of the processes whose parent is `parent` and whose name is `comm`, and of
/// theirs, and so on.
fn descendants_named(parent: u64, comm: &str) -> Vec<u64> {
    let mut found = children_named(parent, comm);
    let mut i = 0;
    while i < found.len() {
        let more = children_named(found[i], comm);
        found.extend(more);
        i += 1;
    }
    found
}

/// The namespace `kind` (`mnt`, `net`, `pid` …) process `pid` is in.
fn namespace(pid: u64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
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
    w.create("walled", &["-m", "300"]);
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
    // Under root, QEMU runs under ids of its own (0x70000000 + its pid) in no group (KVM's
    // where it uses KVM), handed every file of its VM as a descriptor.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let own = (0x7000_0000 + qemu).to_string();
        let all_four = [own.as_str(); 4].join("\t");
        assert_eq!(status_field(qemu, "Uid"), all_four, "QEMU's uids");
        assert_eq!(status_field(qemu, "Gid"), all_four, "QEMU's gids");
        let groups = status_field(qemu, "Groups");
        let kvm = std::fs::metadata("/dev/kvm").map(|m| m.gid().to_string());
        assert!(
            groups.is_empty() || kvm.is_ok_and(|kvm| groups == kvm),
            "QEMU's groups: {groups}"
        );
    }
    // Where no cgroup is delegated to us, rlimits bound QEMU: its guest's RAM and 4 GiB
    // of address space, 4096 descriptors.
    assert_limit(qemu, "Max address space", (300 << 20) + (4 << 30), "QEMU");
    assert_limit(qemu, "Max open files", 4096, "QEMU");
    // The directory root is shared by virtiofsd, a child of the supervisor.
    let supervisor = info["supervisor_pid"].as_u64().expect("the supervisor's pid");
    // The supervisor confines itself once the VM is up (`msb-supervisor::syscalls`).
    assert_eq!(status_field(supervisor, "Seccomp"), "2", "the supervisor's filter");
    assert_eq!(status_field(supervisor, "NoNewPrivs"), "1");
    let virtiofsd = descendants_named(supervisor, "virtiofsd");
    assert!(!virtiofsd.is_empty(), "a directory root runs a virtiofsd");
    for pid in &virtiofsd {
        assert_eq!(status_field(*pid, "NoNewPrivs"), "1", "virtiofsd {pid}");
        assert_limit(*pid, "Max address space", 8 << 30, "virtiofsd");
    }
    // The one serving the guest sits in its own mount, pid and net namespaces, and its
    // root is the shared directory.
    let share = std::fs::metadata(&w.rootfs).unwrap();
    let server = virtiofsd
        .iter()
        .copied()
        .find(|pid| namespace(*pid, "pid") != namespace(supervisor, "pid"))
        .expect("a virtiofsd in a pid namespace of its own");
    for kind in ["mnt", "net"] {
        assert_ne!(
            namespace(server, kind),
            namespace(supervisor, kind),
            "virtiofsd's {kind} namespace"
        );
    }
    let root = std::fs::metadata(format!("/proc/{server}/root")).unwrap();
    assert_eq!(
        (root.dev(), root.ino()),
        (share.dev(), share.ino()),
        "virtiofsd's root is the share"
    );
    assert_eq!(w.ok(&["exec", "walled", "--", "echo", "up"]), "up\n");
    w.ok(&["rm", "-f", "walled"]);
    w.assert_no_vm_left();
}
