//! Checks on an image record before any of it is written.

use crate::StoreError;
use msb_types::{ImageRecord, Platform};

/// Longest reference string accepted.
const MAX_REFERENCE_LEN: usize = 1024;

/// What [`validate`] worked out: layer sizes as SQLite integers.
pub(crate) struct Checked {
    /// `(compressed, erofs)` per layer.
    pub(crate) sizes: Vec<(i64, i64)>,
}

/// Checks a record before anything is written.
pub(crate) fn validate(image: &ImageRecord) -> Result<Checked, StoreError> {
    let reject = |reason: String| StoreError::InvalidImage {
        reference: image.reference.chars().take(200).collect(),
        reason,
    };
    let r = &image.reference;
    if r.is_empty() || r.len() > MAX_REFERENCE_LEN || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(reject(format!(
            "the reference must be 1-{MAX_REFERENCE_LEN} characters without spaces or control characters"
        )));
    }
    check_digest("manifest digest", &image.manifest_digest).map_err(reject)?;
    check_digest("config digest", &image.config_digest).map_err(reject)?;
    let p = &image.platform;
    Platform::new(&p.os, &p.architecture, p.variant.as_deref()).map_err(|e| reject(e.to_string()))?;
    let mut sizes = Vec::with_capacity(image.layers.len());
    for (i, layer) in image.layers.iter().enumerate() {
        check_digest(&format!("diff_id of layer {i}"), &layer.diff_id).map_err(reject)?;
        check_digest(&format!("blob digest of layer {i}"), &layer.blob_digest).map_err(reject)?;
        if layer.media_type.is_empty() {
            return Err(reject(format!("layer {i} has no media type")));
        }
        let fit =
            |v: u64, what: &str| i64::try_from(v).map_err(|_| reject(format!("layer {i} {what} {v} is too large")));
        sizes.push((
            fit(layer.compressed_size, "compressed size")?,
            fit(layer.erofs_size, "EROFS size")?,
        ));
    }
    Ok(Checked { sizes })
}

/// An OCI digest: `algorithm:encoded`, e.g. `sha256:` and 64 hex digits.
fn check_digest(what: &str, digest: &str) -> Result<(), String> {
    let ok = match digest.split_once(':') {
        Some((alg, enc)) => {
            !alg.is_empty()
                && alg.len() <= 32
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && !enc.is_empty()
                && enc.len() <= 256
                && enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
                && (alg != "sha256" || (enc.len() == 64 && enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the {what} '{}' is not a digest (algorithm:hex, e.g. sha256:<64 hex digits>)",
            digest.chars().take(100).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_digest;

    #[test]
    fn digests_need_an_algorithm_and_a_well_formed_encoding() {
        let hex = "a".repeat(64);
        assert!(check_digest("d", &format!("sha256:{hex}")).is_ok());
        assert!(check_digest("d", "sha512:abcDEF123").is_ok());
        for bad in [
            "",
            "sha256",
            ":abc",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
            "SHA256:ab",
            "sha256:a/b",
        ] {
            assert!(check_digest("d", bad).is_err(), "{bad}");
        }
    }
}
