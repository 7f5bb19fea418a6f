//! The OCI image configuration blob: runtime defaults and the layers' diff_ids.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The parts of an image config msb uses (field names as in the OCI image spec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfigFile {
    /// CPU architecture (`amd64`, `arm64` …).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v8` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Runtime defaults.
    #[serde(default)]
    pub config: RuntimeConfig,
    /// The uncompressed layer digests, bottom first.
    pub rootfs: RootFs,
}

/// Runtime defaults of an image (`config` in the image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// `KEY=VALUE` environment entries.
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Default command.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// User (`name`, `uid`, `uid:gid` …).
    #[serde(default)]
    pub user: Option<String>,
    /// Exposed ports (`80/tcp` → `{}`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// Labels.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Signal to stop the container with.
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// The rootfs section: layer diff_ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Uncompressed layer digests, bottom first.
    pub diff_ids: Vec<String>,
}

/// Docker writes `null` for empty maps and lists; treat it as empty.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl ImageConfigFile {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_with_nulls_parses() {
        let json = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],
            "Labels":null,"ExposedPorts":{"80/tcp":{}},"WorkingDir":"/app","User":"1000"},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let c = ImageConfigFile::parse(json).unwrap();
        assert_eq!(c.config.cmd, Some(vec!["sh".to_string()]));
        assert!(c.config.labels.is_empty());
        assert_eq!(c.config.exposed_ports.keys().collect::<Vec<_>>(), ["80/tcp"]);
        assert_eq!(c.rootfs.diff_ids, ["sha256:aa"]);
        assert!(ImageConfigFile::parse(b"{}").is_err());
        assert!(ImageConfigFile::parse(b"not json").is_err());
    }
}
