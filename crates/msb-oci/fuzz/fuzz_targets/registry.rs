#![no_main]
//! What a registry or a user can hand the image code: an image reference and a registry host
//! as typed, then a manifest or index and a config blob as a registry sends them. The input
//! is split at NUL bytes into those three parts. Nothing panics; a manifest that passes its
//! checks names only sha256 digests (they become file names in the layer store), and a config
//! that passes has exactly one sha256 diff_id per layer.

use libfuzzer_sys::fuzz_target;
use msb_oci::manifest::{check_config_layers, check_manifest, parse_config, parse_manifest, select_platform};
use msb_oci::normalize_reference;
use msb_types::Platform;
use oci_client::manifest::OciManifest;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let typed = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let manifest_bytes = parts.next().unwrap_or_default();
    let config_bytes = parts.next().unwrap_or_default();

    let _ = msb_oci::auth::normalize_host(&typed);
    let image = match normalize_reference(&typed) {
        Ok(image) => {
            assert!(!image.repository().bytes().any(|b| b.is_ascii_uppercase()));
            image
        }
        Err(_) => normalize_reference("busybox").expect("a plain name parses"),
    };
    let want = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    let manifest = match parse_manifest(&image, manifest_bytes) {
        Ok(OciManifest::Image(m)) => m,
        Ok(OciManifest::ImageIndex(index)) => {
            if let Ok(entry) = select_platform(&image, &index, &want) {
                let p = entry.platform.as_ref().expect("a chosen entry has a platform");
                assert_eq!(p.architecture.to_string(), "amd64");
            }
            return;
        }
        Err(_) => return,
    };
    if check_manifest(&image, &manifest).is_err() {
        return;
    }
    for digest in std::iter::once(&manifest.config.digest).chain(manifest.layers.iter().map(|l| &l.digest)) {
        let hex = digest.strip_prefix("sha256:").expect("checked digests are sha256");
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    if let Ok(config) = parse_config(&image, config_bytes, &want) {
        if check_config_layers(&image, &manifest, &config).is_ok() {
            assert_eq!(config.rootfs.diff_ids.len(), manifest.layers.len());
        }
    }
});
