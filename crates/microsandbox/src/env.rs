//! The edge where the process environment is read: `$MSB_HOME`, the `MSB_*` overrides of
//! the host's programs and artefacts, and the search path for them. Everything below the
//! SDK takes these as values.

use crate::config::ConfigPaths;
use msb_boot::HostConfig;
use msb_types::Paths;
use std::ffi::OsString;
use std::path::PathBuf;

/// `$MSB_HOME`, else `~/.microsandbox`.
pub(crate) fn home(var: &impl Fn(&str) -> Option<OsString>) -> PathBuf {
    if let Some(home) = var("MSB_HOME").filter(|h| !h.is_empty()) {
        return home.into();
    }
    var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".microsandbox")
}

/// Where programs (QEMU, virtiofsd) are looked for: the `PATH`, then `~/.cargo/bin`
/// (where `cargo install virtiofsd` puts it) and the distributions' helper directories.
pub(crate) fn search_dirs(var: &impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = var("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = var("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.extend(["/usr/libexec", "/usr/lib/qemu"].map(PathBuf::from));
    dirs
}

/// `config.json`'s `paths` over what is installed.
pub(crate) fn apply_config_paths(host: &mut HostConfig, config: &ConfigPaths) {
    if let Some(kernel) = &config.kernel {
        host.kernel = kernel.clone();
    }
    if let Some(initramfs) = &config.initramfs {
        host.initramfs = initramfs.clone();
    }
    host.qemu = config.qemu.clone().or(host.qemu.take());
    host.virtiofsd = config.virtiofsd.clone().or(host.virtiofsd.take());
}

/// The host settings for `paths`: installed artefacts and programs found on the search
/// path, then `config.json`'s `paths`, then each `MSB_*` variable (`MSB_KERNEL`,
/// `MSB_INITRAMFS`, `MSB_QEMU`, `MSB_VIRTIOFSD`, `MSB_ACCEL`, `MSB_NO_TEMPLATE`).
pub(crate) fn host_config(
    paths: &Paths,
    config: &ConfigPaths,
    var: &impl Fn(&str) -> Option<OsString>,
) -> Result<HostConfig, msb_vmm::accel::UnknownAccel> {
    let mut host = HostConfig::installed(paths, &search_dirs(var));
    apply_config_paths(&mut host, config);
    let path = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    host.kernel = path("MSB_KERNEL").unwrap_or(host.kernel);
    host.initramfs = path("MSB_INITRAMFS").unwrap_or(host.initramfs);
    host.qemu = path("MSB_QEMU").or(host.qemu);
    host.virtiofsd = path("MSB_VIRTIOFSD").or(host.virtiofsd);
    if let Some(accel) = var("MSB_ACCEL") {
        host.accel = accel.to_string_lossy().parse()?;
    }
    // Set to anything but empty or `0`, every VM boots cold.
    host.templates = var("MSB_NO_TEMPLATE").is_none_or(|v| v.is_empty() || v == "0");
    Ok(host)
}

/// The `msb` binary that supervises sandboxes when `$MSB_BIN` names one.
pub(crate) fn supervisor(var: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    var("MSB_BIN").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Docker's `config.json`: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub(crate) fn docker_config(var: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    if let Some(dir) = var("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = var("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".docker/config.json"))
}

/// The process environment, as the functions above read it.
pub(crate) fn process_var(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn home_and_overrides_come_from_the_variables_given() {
        let v = vars(&[("HOME", "/u"), ("PATH", "/nowhere")]);
        assert_eq!(home(&v), PathBuf::from("/u/.microsandbox"));
        let paths = Paths::new(home(&v));
        let host = host_config(&paths, &ConfigPaths::default(), &v).unwrap();
        assert_eq!(host.kernel, PathBuf::from("/u/.microsandbox/lib/vmlinux"));
        assert_eq!(host.accel, msb_vmm::AccelSetting::Auto);
        assert!(host.templates);
        for (value, templates) in [("1", false), ("yes", false), ("0", true), ("", true)] {
            let v = vars(&[("MSB_NO_TEMPLATE", value)]);
            let host = host_config(&paths, &ConfigPaths::default(), &v).unwrap();
            assert_eq!(host.templates, templates, "MSB_NO_TEMPLATE={value}");
        }
        let v = vars(&[
            ("MSB_HOME", "/h"),
            ("MSB_KERNEL", "/k"),
            ("MSB_QEMU", "/q"),
            ("MSB_ACCEL", "tcg"),
            ("MSB_BIN", "/b/msb"),
        ]);
        assert_eq!(home(&v), PathBuf::from("/h"));
        let host = host_config(&Paths::new("/h"), &ConfigPaths::default(), &v).unwrap();
        assert_eq!(host.kernel, PathBuf::from("/k"));
        assert_eq!(host.initramfs, PathBuf::from("/h/lib/initramfs.cpio"));
        assert_eq!(host.qemu, Some(PathBuf::from("/q")));
        assert_eq!(host.accel, msb_vmm::AccelSetting::Tcg);
        assert_eq!(supervisor(&v), Some(PathBuf::from("/b/msb")));
        assert!(host_config(
            &Paths::new("/h"),
            &ConfigPaths::default(),
            &vars(&[("MSB_ACCEL", "kmv")])
        )
        .is_err());
        assert_eq!(
            docker_config(&vars(&[("HOME", "/u")])),
            Some(PathBuf::from("/u/.docker/config.json"))
        );
        let both = vars(&[("HOME", "/u"), ("DOCKER_CONFIG", "/d")]);
        assert_eq!(docker_config(&both), Some(PathBuf::from("/d/config.json")));
        assert_eq!(docker_config(&vars(&[])), None);
    }
}
