//! What this host gives a sandbox's walls, as `msb doctor` shows it: the accelerator, and
//! for each confinement mechanism whether the kernel offers it and whether msb uses it
//! here, and why not when it does not.

use serde::Serialize;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCheck {
    /// What is checked (`kvm`, `landlock` …).
    pub name: &'static str,
    /// What the host offers, in a few words.
    pub found: String,
    /// Whether the protection it stands for is on for sandboxes started here.
    pub on: bool,
    /// What that means, or why it is off.
    pub why: String,
}

/// Everything `msb doctor` reports, probed now.
pub fn host_report() -> Vec<HostCheck> {
    let root = is_root();
    vec![
        accel(),
        qemu_seccomp(),
        no_new_privs(),
        qemu_capabilities(root),
        qemu_ids(root),
        virtiofsd_sandbox(),
        landlock(),
        seccomp_filters(),
        user_namespaces(root),
        cgroups(),
    ]
}

fn check(name: &'static str, found: impl Into<String>, on: bool, why: impl Into<String>) -> HostCheck {
    HostCheck {
        name,
        found: found.into(),
        on,
        why: why.into(),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn accel() -> HostCheck {
    let choice = msb_vmm::accel::detect(msb_vmm::AccelSetting::Auto);
    match choice.reason {
        None => check("kvm", "KVM", true, "VMs run with hardware virtualisation"),
        Some(reason) => check(
            "kvm",
            "TCG (software emulation)",
            false,
            format!("{reason}; sandboxes are still VMs, but boot and run several times slower"),
        ),
    }
}

fn qemu_seccomp() -> HostCheck {
    check(
        "qemu-seccomp",
        "QEMU -sandbox",
        true,
        "QEMU cannot exec, fork, setuid or change scheduling or resource limits",
    )
}

fn no_new_privs() -> HostCheck {
    check(
        "no-new-privs",
        "PR_SET_NO_NEW_PRIVS",
        true,
        "QEMU and virtiofsd gain no privileges through setuid files or file capabilities",
    )
}

fn qemu_capabilities(root: bool) -> HostCheck {
    let found = if root {
        "emptied (msb runs as root)"
    } else {
        "none (msb is not root)"
    };
    check(
        "qemu-capabilities",
        found,
        true,
        "QEMU holds no capability, not even as root",
    )
}

fn qemu_ids(root: bool) -> HostCheck {
    let base = msb_vmm::own_ids::BASE;
    match (root, msb_vmm::own_ids::available()) {
        (_, true) => check(
            "qemu-ids",
            format!("its own ({base:#x} + its pid)"),
            true,
            "QEMU owns no file and no other process, and is handed every file of its VM as a descriptor",
        ),
        (true, false) => check(
            "qemu-ids",
            "root's",
            false,
            format!(
                "msb runs in a pid or user namespace of a container, where pids (and ids made \
                 from them, {base:#x} + pid) are not unique host-wide, so QEMU keeps msb's ids \
                 (without capabilities)"
            ),
        ),
        (false, _) => check(
            "qemu-ids",
            "the user's",
            true,
            "msb is not root: QEMU runs as the user, without capabilities, handed every file of its VM as a descriptor",
        ),
    }
}

fn virtiofsd_sandbox() -> HostCheck {
    let sandbox = msb_vmm::FsSandbox::detect();
    let found = match sandbox {
        msb_vmm::FsSandbox::Namespaces => "namespace sandbox",
        msb_vmm::FsSandbox::UserNamespace => "namespace sandbox in a user namespace",
        msb_vmm::FsSandbox::LandlockOnly => "Landlock only",
    };
    check(
        "virtiofsd-sandbox",
        found,
        sandbox != msb_vmm::FsSandbox::LandlockOnly,
        sandbox.describe(),
    )
}

/// The Landlock ABI version the kernel offers (0: none).
fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the call only
    // returns the ABI version (or fails with ENOSYS/EOPNOTSUPP); it touches no memory.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    version.max(0)
}

fn landlock() -> HostCheck {
    match landlock_abi() {
        0 => check(
            "landlock",
            "not offered by the kernel",
            false,
            "needs Linux 5.13 or later with Landlock enabled; QEMU can open any file its user can",
        ),
        abi => check(
            "landlock",
            format!("ABI {abi}"),
            true,
            "QEMU reaches only the system's programs and libraries and its VM's kernel and initramfs; \
             each supervisor, once its VM is up, only the state store, its sandbox's directory, the \
             system's libraries, /proc and /sys (and virtiofsd, where it has no namespaces, only its share)",
        ),
    }
}

fn proc_status_field(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn seccomp_filters() -> HostCheck {
    match proc_status_field("Seccomp:") {
        None => check(
            "seccomp",
            "not offered by the kernel",
            false,
            "neither QEMU's -sandbox nor the supervisor's allow-list can be installed",
        ),
        Some(_) => check(
            "seccomp",
            "seccomp filters",
            true,
            "QEMU runs under its -sandbox filter, and each supervisor under its own allow-list once its VM is up (no exec, no fork)",
        ),
    }
}

fn user_namespaces(root: bool) -> HostCheck {
    let everyone = msb_vmm::user_namespaces_for_everyone();
    let found = if everyone {
        "available to every user"
    } else {
        "root only"
    };
    let why = match (root, everyone) {
        (true, _) => "msb runs as root: virtiofsd's namespace sandbox needs no user namespace",
        (false, true) => "virtiofsd's namespace sandbox runs in a user namespace of its own",
        (false, false) => "ordinary users may not make user namespaces here, so virtiofsd has Landlock only",
    };
    check("user-namespaces", found, root || everyone, why)
}

/// `statfs`'s magic number of cgroup v2.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn cgroup2_at(path: &str) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c_path` is a valid C string and `stat` is a writable statfs.
    let ok = unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) } == 0;
    // SAFETY: statfs filled `stat` when it returned 0; zeroed memory is a valid statfs.
    ok && unsafe { stat.assume_init() }.f_type == CGROUP2_SUPER_MAGIC
}

fn cgroups() -> HostCheck {
    let found = if cgroup2_at("/sys/fs/cgroup") {
        "cgroup v2 (unified)"
    } else if cgroup2_at("/sys/fs/cgroup/unified") {
        "cgroup v1 hybrid (no delegated v2 hierarchy)"
    } else {
        "cgroup v1"
    };
    check(
        "cgroups",
        found,
        false,
        "not used: per-sandbox cgroups (memory.max, cpu.max, pids.max) are not built; a sandbox's QEMU and virtiofsd are bounded by rlimits instead (address space: the guest's RAM + 4 GiB, and 8 GiB; QEMU 4096 descriptors), and its guest's processes by the agent's workload cgroup",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_a_name_a_finding_and_a_reason() {
        let report = host_report();
        assert_eq!(report.len(), 10);
        for c in &report {
            assert!(!c.name.is_empty() && !c.found.is_empty() && !c.why.is_empty(), "{c:?}");
        }
        let names: std::collections::BTreeSet<_> = report.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), report.len(), "names are unique");
    }
}
