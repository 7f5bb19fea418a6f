//! What a registry sends about an image, checked before anything is fetched on its word:
//! manifests and indexes, the platform choice in an index, and the config blob. Every byte
//! comes from a registry we do not trust, so each check here gives a clear error naming the
//! image and never panics (`msb-oci/fuzz` target `registry`).

use crate::config::ImageConfigFile;
use crate::pull::is_sha256_digest;
use crate::OciError;
use msb_types::Platform;
use oci_client::manifest::{ImageIndexEntry, OciImageIndex, OciImageManifest, OciManifest};
use oci_client::Reference;

/// Most layers an image may have: overlayfs stacks at most 500 lower directories.
pub const MAX_LAYERS: usize = 500;
/// Largest manifest accepted: what the OCI distribution spec asks registries to accept at
/// least (real ones are a few KiB).
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The manifest kinds asked for: OCI and Docker images and indexes.
pub(crate) const MANIFEST_MEDIA_TYPES: &[&str] = &[
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];
/// Largest config blob accepted (real ones are a few KiB).
const MAX_CONFIG_BYTES: i64 = 8 << 20;

/// Parses a manifest or index of schema version 2 and a media type we asked for; one larger
/// than [`MAX_MANIFEST_BYTES`] is refused.
pub fn parse_manifest(image: &Reference, bytes: &[u8]) -> Result<OciManifest, OciError> {
    let bad = |reason: String| OciError::BadConfig {
        reference: image.whole(),
        reason,
    };
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(bad(format!(
            "its manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES} (4 MiB)",
            bytes.len()
        )));
    }
    #[derive(serde::Deserialize)]
    struct Versioned {
        #[serde(rename = "schemaVersion")]
        schema_version: i64,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let unparsable = |e: serde_json::Error| bad(format!("its manifest does not parse: {e}"));
    let versioned: Versioned = serde_json::from_slice(bytes).map_err(unparsable)?;
    if versioned.schema_version != 2 {
        return Err(bad(format!(
            "its manifest has schema version {} (only 2 is supported)",
            versioned.schema_version
        )));
    }
    if let Some(media_type) = versioned
        .media_type
        .filter(|t| !MANIFEST_MEDIA_TYPES.contains(&t.as_str()))
    {
        return Err(OciError::UnsupportedMediaType {
            reference: image.whole(),
            media_type,
        });
    }
    serde_json::from_slice(bytes).map_err(unparsable)
}

/// The index entry for `want` (os, architecture and, when asked for, variant).
pub fn select_platform<'a>(
    image: &Reference,
    index: &'a OciImageIndex,
    want: &Platform,
) -> Result<&'a ImageIndexEntry, OciError> {
    let matches = |p: &oci_client::manifest::Platform| {
        p.os.to_string() == want.os
            && p.architecture.to_string() == want.architecture
            && want.variant.as_ref().is_none_or(|v| p.variant.as_ref() == Some(v))
    };
    if let Some(entry) = index
        .manifests
        .iter()
        .find(|e| e.platform.as_ref().is_some_and(matches))
    {
        return Ok(entry);
    }
    let available: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .map(|p| format!("{}/{}", p.os, p.architecture))
        .collect();
    Err(OciError::NoMatchingPlatform {
        reference: image.whole(),
        wanted: want.to_string(),
        available: available.join(", "),
    })
}

/// Rejects manifests no VM could boot or that would make us fetch absurd blobs.
pub fn check_manifest(image: &Reference, manifest: &OciImageManifest) -> Result<(), OciError> {
    let bad = |reason: String| {
        Err(OciError::BadConfig {
            reference: image.whole(),
            reason,
        })
    };
    if manifest.layers.len() > MAX_LAYERS {
        return bad(format!(
            "{} layers; at most {MAX_LAYERS} can be stacked",
            manifest.layers.len()
        ));
    }
    if !(0..=MAX_CONFIG_BYTES).contains(&manifest.config.size) {
        return bad(format!(
            "config blob of {} bytes (limit {MAX_CONFIG_BYTES})",
            manifest.config.size
        ));
    }
    let digests = std::iter::once(&manifest.config.digest).chain(manifest.layers.iter().map(|l| &l.digest));
    if let Some(d) = digests.into_iter().find(|d| !is_sha256_digest(d)) {
        return bad(format!("'{d}' is not a sha256 digest"));
    }
    if let Some(l) = manifest.layers.iter().find(|l| l.size < 0) {
        return bad(format!("layer {} has a negative size", l.digest));
    }
    Ok(())
}

/// Parses a (digest-verified) config blob and checks it is for the wanted platform.
pub fn parse_config(image: &Reference, bytes: &[u8], want: &Platform) -> Result<ImageConfigFile, OciError> {
    let config = ImageConfigFile::parse(bytes).map_err(|e| OciError::BadConfig {
        reference: image.whole(),
        reason: e.to_string(),
    })?;
    let os_differs = !config.os.is_empty() && config.os != want.os;
    if os_differs || (!config.architecture.is_empty() && config.architecture != want.architecture) {
        return Err(OciError::NoMatchingPlatform {
            reference: image.whole(),
            wanted: want.to_string(),
            available: format!("{}/{}", config.os, config.architecture),
        });
    }
    Ok(config)
}

/// Checks the config's layer list against the manifest's: one sha256 `diff_id` per layer.
pub fn check_config_layers(
    image: &Reference,
    manifest: &OciImageManifest,
    config: &ImageConfigFile,
) -> Result<(), OciError> {
    let bad = |reason: String| {
        Err(OciError::BadConfig {
            reference: image.whole(),
            reason,
        })
    };
    let diff_ids = &config.rootfs.diff_ids;
    if let Some(d) = diff_ids.iter().find(|d| !is_sha256_digest(d)) {
        return bad(format!("diff_id '{d}' is not a sha256 digest"));
    }
    if diff_ids.len() != manifest.layers.len() {
        return bad(format!(
            "{} diff_ids for {} layers",
            diff_ids.len(),
            manifest.layers.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Reference {
        crate::normalize_reference("busybox").unwrap()
    }

    fn amd64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    #[test]
    fn manifests_of_other_schemas_media_types_or_sizes_are_refused() {
        let too_big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        let wrong = [
            &br#"{"schemaVersion":1}"#[..],
            br#"{"schemaVersion":2,"mediaType":"text/html"}"#,
            b"not json",
            &too_big,
        ];
        for bytes in wrong {
            assert!(parse_manifest(&image(), bytes).is_err());
        }
    }

    #[test]
    fn an_index_gives_the_wanted_platform_or_names_what_it_has() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
                {{"mediaType":"{}","digest":"sha256:{}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}},
                {{"mediaType":"{}","digest":"sha256:{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
            oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
            "1".repeat(64),
            oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
            "2".repeat(64),
        );
        let OciManifest::ImageIndex(index) = parse_manifest(&image(), index.as_bytes()).unwrap() else {
            panic!("an index parses as an index");
        };
        let entry = select_platform(&image(), &index, &amd64()).unwrap();
        assert_eq!(entry.digest, format!("sha256:{}", "2".repeat(64)));
        let riscv = Platform {
            architecture: "riscv64".into(),
            ..amd64()
        };
        let err = select_platform(&image(), &index, &riscv).unwrap_err().to_string();
        assert!(err.contains("linux/arm64, linux/amd64"), "{err}");
    }

    #[test]
    fn a_config_for_another_platform_is_refused() {
        let config = br#"{"os":"linux","architecture":"arm64","rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert!(parse_config(&image(), config, &amd64()).is_err());
        let config = br#"{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert!(parse_config(&image(), config, &amd64()).is_ok());
    }
}
