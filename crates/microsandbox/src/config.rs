//! `$MSB_HOME/config.json`: defaults for new sandboxes, registry settings, and where the
//! host's programs are. A missing file means defaults; an invalid one is an error naming
//! the field (never silent defaults).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name under `$MSB_HOME`.
pub const CONFIG_FILE: &str = "config.json";

/// msb's configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How much sandbox supervisors log into their `supervisor.log` unless a sandbox says
    /// (`error` … `trace`, or `MSB_LOG`-style filters).
    pub log_level: Option<String>,
    /// What new sandboxes get unless asked otherwise.
    #[serde(default)]
    pub sandbox_defaults: SandboxDefaults,
    /// Registries: credentials, plain HTTP, extra CAs.
    #[serde(default)]
    pub registries: Registries,
    /// Where the host's programs and guest artefacts are (the `MSB_*` variables win).
    #[serde(default)]
    pub paths: ConfigPaths,
    /// The E2B-compatible endpoint (`msb serve --e2b-listen`).
    #[serde(default)]
    pub e2b: E2bConfig,
}

/// Settings of the E2B-compatible endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct E2bConfig {
    /// `templateID` aliases → image references (a `templateID` that is none of them is
    /// taken as an image reference). `base`, E2B's default, means `python` unless set here.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
}

impl E2bConfig {
    /// The alias table with E2B's default template filled in.
    pub fn template_aliases(&self) -> BTreeMap<String, String> {
        let mut aliases = self.templates.clone();
        aliases.entry("base".into()).or_insert_with(|| "python".into());
        aliases
    }
}

/// Defaults of new sandboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxDefaults {
    /// Virtual CPUs.
    pub cpus: Option<u32>,
    /// Guest memory, MiB.
    pub memory_mib: Option<u32>,
    /// The shell of `shell` calls.
    pub shell: Option<String>,
    /// Working directory of processes.
    pub workdir: Option<String>,
}

/// Registry settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// PEM files of CAs trusted for every registry.
    #[serde(default)]
    pub ca_certs: Vec<PathBuf>,
    /// Per registry host (`ghcr.io`, `registry.local:5000`).
    #[serde(default)]
    pub hosts: BTreeMap<String, RegistryHost>,
}

/// One registry's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryHost {
    /// How to log in.
    pub auth: Option<RegistryAuthConfig>,
    /// Talk plain HTTP to it.
    #[serde(default)]
    pub insecure: bool,
    /// PEM files of CAs trusted for it.
    #[serde(default)]
    pub ca_certs: Vec<PathBuf>,
}

/// A username and where its password is: an environment variable or a file (exactly one),
/// so the password itself is never in this file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuthConfig {
    /// The username.
    pub username: String,
    /// The variable holding the password.
    pub password_env: Option<String>,
    /// The file holding the password (its first line).
    pub password_file: Option<PathBuf>,
}

/// Overrides of where things are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPaths {
    /// The guest kernel.
    pub kernel: Option<PathBuf>,
    /// The agent initramfs.
    pub initramfs: Option<PathBuf>,
    /// `qemu-system-x86_64`.
    pub qemu: Option<PathBuf>,
    /// virtiofsd.
    pub virtiofsd: Option<PathBuf>,
    /// The `msb` binary that supervises sandboxes.
    pub msb: Option<PathBuf>,
}

impl Config {
    /// The configuration of the home at `home`: defaults when there is no file.
    pub fn load(home: &Path) -> Result<Config, String> {
        let path = home.join(CONFIG_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let config: Config = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&text))
            .map_err(|e| {
                let at = e.path().to_string();
                let at = if at == "." {
                    String::new()
                } else {
                    format!(" at `{at}`")
                };
                format!("{}{at}: {}", path.display(), e.inner())
            })?;
        config
            .check()
            .map_err(|problem| format!("{}: {problem}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        for (host, entry) in &self.registries.hosts {
            if let Some(auth) = &entry.auth {
                if auth.password_env.is_some() == auth.password_file.is_some() {
                    return Err(format!(
                        "`registries.hosts.{host}.auth` needs exactly one of `password_env` and `password_file`"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The settings of registry `host`, if the file names it.
    pub fn registry(&self, host: &str) -> Option<&RegistryHost> {
        self.registries
            .hosts
            .iter()
            .find(|(h, _)| h.as_str() == host)
            .map(|(_, e)| e)
    }
}

impl RegistryAuthConfig {
    /// The username and the password from where the entry says it is.
    pub fn credentials(&self, var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<(String, String), String> {
        let password = match (&self.password_env, &self.password_file) {
            (Some(name), _) => var(name)
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| format!("the variable {name} named by config.json is not set"))?,
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| format!("reading the password file {}: {e}", file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            (None, None) => return Err("no password source".into()),
        };
        Ok((self.username.clone(), password))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), json).unwrap();
        Config::load(dir.path())
    }

    #[test]
    fn a_missing_file_is_defaults_and_a_bad_one_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
        let good = load(
            r#"{"sandbox_defaults": {"cpus": 2, "memory_mib": 1024, "shell": "/bin/bash"},
            "registries": {"hosts": {"ghcr.io": {"auth": {"username": "me", "password_env": "GH"}, "insecure": false}}},
            "paths": {"qemu": "/opt/qemu"}}"#,
        )
        .unwrap();
        assert_eq!(good.sandbox_defaults.cpus, Some(2));
        assert_eq!(
            load(r#"{"log_level": "debug"}"#).unwrap().log_level.as_deref(),
            Some("debug")
        );
        assert_eq!(good.registry("ghcr.io").unwrap().auth.as_ref().unwrap().username, "me");
        let e2b = load(r#"{"e2b": {"templates": {"code": "python:3.12"}}}"#).unwrap();
        let aliases = e2b.e2b.template_aliases();
        assert_eq!(aliases["code"], "python:3.12");
        assert_eq!(aliases["base"], "python");
        let err = load(r#"{"sandbox_defaults": {"cpus": "two"}}"#).unwrap_err();
        assert!(err.contains("sandbox_defaults.cpus"), "{err}");
        let err = load(r#"{"sandbox_defaults": {"cpu": 2}}"#).unwrap_err();
        assert!(err.contains("cpu"), "{err}");
        let err = load(r#"{"registries": {"hosts": {"x.io": {"auth": {"username": "u"}}}}}"#).unwrap_err();
        assert!(err.contains("registries.hosts.x.io.auth"), "{err}");
        assert!(load("{not json").unwrap_err().contains("config.json"));
    }

    #[test]
    fn passwords_come_from_the_variable_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        let from_file = RegistryAuthConfig {
            username: "u".into(),
            password_file: Some(file),
            ..Default::default()
        };
        assert_eq!(from_file.credentials(|_| None).unwrap(), ("u".into(), "s3cret".into()));
        let from_env = RegistryAuthConfig {
            username: "u".into(),
            password_env: Some("PW".into()),
            ..Default::default()
        };
        assert_eq!(
            from_env.credentials(|k| (k == "PW").then(|| "v".into())).unwrap().1,
            "v"
        );
        assert!(from_env.credentials(|_| None).unwrap_err().contains("PW"));
    }
}
