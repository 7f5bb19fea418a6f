//! Image references the way docker spells them.

use crate::OciError;
use oci_client::Reference;

/// Parses `python`, `ghcr.io/org/app:1.2`, `alpine@sha256:…` into a full reference:
/// registry `docker.io` and `library/` for bare names, tag `latest` when none is given.
pub fn normalize_reference(input: &str) -> Result<Reference, OciError> {
    let invalid = |reason: String| OciError::InvalidReference {
        reference: input.to_string(),
        reason,
    };
    if input.trim().is_empty() || input.chars().any(char::is_whitespace) {
        return Err(invalid("it is empty or contains whitespace".into()));
    }
    let reference = input.parse::<Reference>().map_err(|e| invalid(e.to_string()))?;
    if reference.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("repository names must be lowercase".into()));
    }
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_style_names_get_defaults() {
        let r = normalize_reference("python").unwrap();
        assert_eq!(r.whole(), "docker.io/library/python:latest");
        let r = normalize_reference("ghcr.io/org/app:1.2").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("ghcr.io", "org/app", Some("1.2"))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = normalize_reference(&format!("alpine@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
        let r = normalize_reference("127.0.0.1:5000/msb-test/busybox").unwrap();
        assert_eq!((r.registry(), r.tag()), ("127.0.0.1:5000", Some("latest")));
    }

    #[test]
    fn bad_references_are_errors() {
        for bad in ["", "a b", "UPPER/case", "x@sha256:short", "a:b:c:d"] {
            assert!(normalize_reference(bad).is_err(), "{bad}");
        }
    }
}
