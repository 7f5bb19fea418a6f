//! Image references the way docker spells them.
//!
//! Our own parser of the distribution reference grammar rather than `Reference::from_str`:
//! that one compiles a regular expression whose tag part (`\w` taken as Unicode, repeated up
//! to 128 times) costs ~25 ms of CPU the first time, in every `msb run`, `create` and `pull`
//! (measured with perf: the largest single cost of `msb run` before its VM starts). The
//! grammar is small; `tests` check this parser against the library's on generated names.
//! Like docker, and unlike that expression, tags are ASCII only.

use crate::OciError;
use oci_client::Reference;

/// The registry of names without one.
const DOCKER_HUB: &str = "docker.io";
/// The name Docker Hub had before, mapped to [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The tag of references without a tag or a digest.
const DEFAULT_TAG: &str = "latest";
/// The longest repository name.
const REPOSITORY_MAX: usize = 255;
/// The longest tag.
const TAG_MAX: usize = 128;
/// The fewest hex digits of a digest (before the algorithm's own length is checked).
const DIGEST_HEX_MIN: usize = 32;

/// Parses `python`, `ghcr.io/org/app:1.2`, `alpine@sha256:…` into a full reference:
/// registry `docker.io` and `library/` for bare names, tag `latest` when none is given.
pub fn normalize_reference(input: &str) -> Result<Reference, OciError> {
    parse(input).map_err(|reason| OciError::InvalidReference {
        reference: input.to_string(),
        reason: reason.to_string(),
    })
}

fn parse(input: &str) -> Result<Reference, &'static str> {
    if input.trim().is_empty() || input.chars().any(char::is_whitespace) {
        return Err("it is empty or contains whitespace");
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (input, None),
    };
    // A ':' after the last '/' starts the tag; one before it belongs to a registry's port.
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if rest.rfind('/').is_none_or(|slash| slash < colon) => (&rest[..colon], Some(&rest[colon + 1..])),
        _ => (rest, None),
    };
    if !is_name(name) || !tag.is_none_or(is_tag) || !digest.is_none_or(is_digest) {
        return Err("invalid reference format");
    }
    let (registry, repository) = split_registry(name);
    if repository.len() > REPOSITORY_MAX {
        return Err("the repository name is longer than 255 characters");
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository names must be lowercase");
    }
    if let Some(digest) = digest {
        check_digest_length(digest)?;
    }
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag.to_string(), digest.to_string())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.to_string()),
        (tag, None) => Reference::with_tag(registry, repository, tag.unwrap_or(DEFAULT_TAG).to_string()),
    })
}

/// `[registry/]component(/component)*`; the first part is a registry only if it is not a
/// valid path component or the other parts follow it.
fn is_name(name: &str) -> bool {
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    rest.iter().all(|part| is_path_component(part))
        && (is_path_component(first) || (!rest.is_empty() && is_registry(first)))
}

/// Lowercase letters and digits, separated inside by one `.`, one `_`, `__`, or a run of `-`.
fn is_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    bytes
        .split(alnum)
        .filter(|separator| !separator.is_empty())
        .all(|separator| matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|b| *b == b'-'))
}

/// A host name (labels of letters, digits and inner `-`, joined by `.`) and an optional
/// numeric port.
fn is_registry(part: &str) -> bool {
    let (host, port) = match part.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (part, None),
    };
    let is_label = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    };
    host.split('.').all(is_label)
        && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// A word character, then up to 127 word characters, `.` or `-`.
fn is_tag(tag: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    tag.len() <= TAG_MAX
        && tag.as_bytes().first().is_some_and(word)
        && tag.bytes().all(|b| word(&b) || b == b'.' || b == b'-')
}

/// `algorithm:hex`: the algorithm letter-led parts joined by `+`, `.`, `_` or `-`; at least
/// 32 hex digits.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let is_part = |part: &str| {
        part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) && part.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    algorithm.split(['+', '.', '_', '-']).all(is_part)
        && hex.len() >= DIGEST_HEX_MIN
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Digests of the known algorithms, each with its own length.
fn check_digest_length(digest: &str) -> Result<(), &'static str> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or_default();
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    match hex.len() == expected {
        true => Ok(()),
        false => Err("the digest has the wrong length for its algorithm"),
    }
}

/// The registry and repository of a valid name, as docker splits them.
fn split_registry(name: &str) -> (String, String) {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest.to_string()),
        _ => (DOCKER_HUB, name.to_string()),
    };
    let registry = match registry {
        DOCKER_HUB_LEGACY => DOCKER_HUB,
        other => other,
    };
    match registry == DOCKER_HUB && !repository.contains('/') {
        true => (registry.to_string(), format!("library/{repository}")),
        false => (registry.to_string(), repository),
    }
}

#[cfg(test)]
mod tests;
