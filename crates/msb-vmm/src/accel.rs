//! Choosing hardware acceleration: KVM only where it can really run our guest.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the VM's CPU is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// What the user asked for (`MSB_ACCEL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccelSetting {
    /// KVM where it can run our guest, else TCG.
    #[default]
    Auto,
    /// KVM, whatever the host looks like.
    Kvm,
    /// TCG, even where KVM works.
    Tcg,
}

/// An accelerator setting that is none of `kvm`, `tcg`, `auto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("accelerator '{0}' is not one of kvm, tcg, auto")]
pub struct UnknownAccel(pub String);

impl FromStr for AccelSetting {
    type Err = UnknownAccel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "auto" => Ok(AccelSetting::Auto),
            "kvm" => Ok(AccelSetting::Kvm),
            "tcg" => Ok(AccelSetting::Tcg),
            other => Err(UnknownAccel(other.chars().take(40).collect())),
        }
    }
}

/// The accelerator and, when it is TCG, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelChoice {
    /// What to use.
    pub accel: Accel,
    /// Why KVM was not chosen, if it was not.
    pub reason: Option<String>,
}

/// Decides from the setting, whether /dev/kvm opened read-write, and the CPU flags. Some
/// nested hosts expose a /dev/kvm that cannot boot normal guests and show no `vmx`/`svm`
/// flag, so both must hold for `auto` to pick KVM.
pub fn choose(setting: AccelSetting, kvm_opens: bool, cpuinfo: &str) -> AccelChoice {
    let has_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let (accel, reason) = match setting {
        AccelSetting::Kvm => (Accel::Kvm, None),
        AccelSetting::Tcg => (Accel::Tcg, Some("TCG was asked for")),
        AccelSetting::Auto => match (kvm_opens, has_virt) {
            (true, true) => (Accel::Kvm, None),
            (false, _) => (Accel::Tcg, Some("/dev/kvm is missing or not accessible")),
            (true, false) => (
                Accel::Tcg,
                Some("the CPU shows no vmx/svm flag (nested or emulated host)"),
            ),
        },
    };
    AccelChoice {
        accel,
        reason: reason.map(String::from),
    }
}

/// [`choose`] with this host's /dev/kvm and /proc/cpuinfo.
pub fn detect(setting: AccelSetting) -> AccelChoice {
    let kvm_opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    choose(setting, kvm_opens, &cpuinfo)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vme vmx sse\n";
    const PLAIN: &str = "processor\t: 0\nflags\t\t: fpu vme sse hypervisor\n";

    #[test]
    fn auto_needs_both_device_and_cpu_flag() {
        let auto = AccelSetting::Auto;
        assert_eq!(choose(auto, true, VMX).accel, Accel::Kvm);
        assert_eq!(choose(auto, true, PLAIN).accel, Accel::Tcg);
        assert_eq!(choose(auto, false, VMX).accel, Accel::Tcg);
        assert_eq!(choose(auto, true, "flags : svm\n").accel, Accel::Kvm);
        assert!(choose(auto, true, PLAIN).reason.unwrap().contains("vmx"));
    }

    #[test]
    fn setting_wins_and_typos_are_errors() {
        assert_eq!(choose(AccelSetting::Kvm, false, PLAIN).accel, Accel::Kvm);
        assert_eq!(choose(AccelSetting::Tcg, true, VMX).accel, Accel::Tcg);
        assert_eq!("tcg".parse(), Ok(AccelSetting::Tcg));
        assert_eq!("".parse(), Ok(AccelSetting::Auto));
        assert_eq!("kmv".parse::<AccelSetting>(), Err(UnknownAccel("kmv".into())));
    }
}
