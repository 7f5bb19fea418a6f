//! Choosing hardware acceleration: KVM only where it can really run our guest.

use std::fmt;

/// How the VM's CPU is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's software emulation (slow, but works everywhere).
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The accelerator and, when it is TCG, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// What to use.
    pub accel: Accel,
    /// Why KVM was not chosen, if it was not.
    pub reason: Option<String>,
}

/// Decides from `MSB_ACCEL` (`kvm`, `tcg`, `auto`/unset), whether /dev/kvm opened read-write,
/// and the CPU flags. Some nested hosts expose a /dev/kvm that cannot boot normal guests and
/// show no `vmx`/`svm` flag, so both must hold for `auto` to pick KVM.
pub fn choose(override_: Option<&str>, kvm_opens: bool, cpuinfo: &str) -> Result<Choice, String> {
    let has_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    match override_.map(str::trim).filter(|s| !s.is_empty()) {
        Some("kvm") => Ok(Choice {
            accel: Accel::Kvm,
            reason: None,
        }),
        Some("tcg") => Ok(Choice {
            accel: Accel::Tcg,
            reason: Some("MSB_ACCEL=tcg".into()),
        }),
        Some("auto") | None => Ok(match (kvm_opens, has_virt) {
            (true, true) => Choice {
                accel: Accel::Kvm,
                reason: None,
            },
            (false, _) => Choice {
                accel: Accel::Tcg,
                reason: Some("/dev/kvm is missing or not accessible".into()),
            },
            (true, false) => Choice {
                accel: Accel::Tcg,
                reason: Some("the CPU shows no vmx/svm flag (nested or emulated host)".into()),
            },
        }),
        Some(other) => Err(format!("MSB_ACCEL={other} is not one of kvm, tcg, auto")),
    }
}

/// [`choose`] with the real environment, /dev/kvm and /proc/cpuinfo.
pub fn detect() -> Result<Choice, String> {
    let kvm_opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    choose(std::env::var("MSB_ACCEL").ok().as_deref(), kvm_opens, &cpuinfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vme vmx sse\n";
    const PLAIN: &str = "processor\t: 0\nflags\t\t: fpu vme sse hypervisor\n";

    #[test]
    fn auto_needs_both_device_and_cpu_flag() {
        assert_eq!(choose(None, true, VMX).unwrap().accel, Accel::Kvm);
        assert_eq!(choose(None, true, PLAIN).unwrap().accel, Accel::Tcg);
        assert_eq!(choose(None, false, VMX).unwrap().accel, Accel::Tcg);
        assert_eq!(choose(Some("auto"), true, "flags : svm\n").unwrap().accel, Accel::Kvm);
        assert!(choose(None, true, PLAIN).unwrap().reason.unwrap().contains("vmx"));
    }

    #[test]
    fn override_wins_and_typos_are_errors() {
        assert_eq!(choose(Some("kvm"), false, PLAIN).unwrap().accel, Accel::Kvm);
        assert_eq!(choose(Some("tcg"), true, VMX).unwrap().accel, Accel::Tcg);
        assert!(choose(Some("kmv"), true, VMX).unwrap_err().contains("kmv"));
    }
}
