//! Images as the state DB keeps them: reference, manifest, config, platform and layers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The parts of an OCI image config that a sandbox uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// `KEY=VALUE` items, in image order.
    pub env: Vec<String>,
    /// `ENTRYPOINT`, if the image sets one.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`, if the image sets one.
    pub cmd: Option<Vec<String>>,
    /// `WORKDIR`, if set.
    pub working_dir: Option<String>,
    /// `USER`, if set (`name`, `uid`, `uid:gid`, …).
    pub user: Option<String>,
    /// Exposed ports as the image lists them (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`, if set.
    pub stop_signal: Option<String>,
}

/// An OCI platform: `os/architecture[/variant]`, e.g. `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture in OCI spelling (`amd64`, `arm64`).
    pub architecture: String,
    /// Architecture variant (`v8`), if any.
    pub variant: Option<String>,
}

/// Why a platform string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform '{text}': {reason} (use os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8)")]
pub struct PlatformError {
    /// The rejected text (shortened).
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Platform {
    /// A platform from its parts, each checked like [`Platform::from_str`] checks them.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Result<Platform, PlatformError> {
        let parts = [Some(os), Some(architecture), variant];
        if !parts.iter().flatten().all(|p| valid_part(p)) {
            let text = parts.iter().flatten().copied().collect::<Vec<_>>().join("/");
            return Err(PlatformError {
                text: text.chars().take(80).collect(),
                reason: BAD_PART,
            });
        }
        Ok(Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        })
    }
}

const BAD_PART: &str = "each part must be 1-32 characters of lowercase a-z, 0-9, '.', '_' or '-'";

/// A platform part is 1–32 chars of `[a-z0-9._-]`.
fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 32
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| PlatformError {
            text: text.chars().take(80).collect(),
            reason,
        };
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(err("it needs two or three '/'-separated parts"));
        }
        if !parts.iter().all(|p| valid_part(p)) {
            return Err(err(BAD_PART));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// One layer of a manifest, as stored: its OCI descriptor plus the size of its EROFS image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the uncompressed tar (`sha256:…`); names the EROFS file.
    pub diff_id: String,
    /// Digest of the blob as the registry serves it.
    pub blob_digest: String,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob in bytes.
    pub compressed_size: u64,
    /// Size of the EROFS image made from it, in bytes.
    pub erofs_size: u64,
}

/// A pulled image under the reference string it was pulled by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The reference exactly as the user wrote it (no normalisation).
    pub reference: String,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of the image config blob.
    pub config_digest: String,
    /// Platform of the manifest.
    pub platform: Platform,
    /// The image config.
    pub config: ImageConfig,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// When it was stored, in seconds since the Unix epoch.
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_round_trip_and_reject_garbage() {
        for ok in ["linux/amd64", "linux/arm64/v8", "linux/386", "linux/ppc64le"] {
            let p: Platform = ok.parse().unwrap();
            assert_eq!(p.to_string(), ok);
        }
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "Linux/amd64",
            "linux/am d64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        assert!(Platform::new("linux", "amd64", None).is_ok());
        assert!(Platform::new("linux", "a/b", None).is_err());
    }

    #[test]
    fn config_tolerates_missing_fields() {
        let c: ImageConfig = serde_json_free_parse();
        assert_eq!(c, ImageConfig::default());
    }

    /// `ImageConfig` from an empty map, without pulling serde_json into this crate.
    fn serde_json_free_parse() -> ImageConfig {
        use serde::de::value::{Error, MapDeserializer};
        let empty: Vec<(String, String)> = Vec::new();
        ImageConfig::deserialize(MapDeserializer::<_, Error>::new(empty.into_iter())).unwrap()
    }
}
