//! Domain names in policies and DNS settings: their canonical form, and matching on label
//! boundaries without allocating (the policy matches names on every flow).

/// Longest domain name, in characters of its text form without the trailing dot.
const MAX_NAME: usize = 253;
/// Longest label.
const MAX_LABEL: usize = 63;

/// `text` in canonical form (lower case, no trailing dot), or what is wrong with it:
/// labels of 1–63 characters of `a-z 0-9 - _`, at most 253 characters in all.
pub fn normalize_domain(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return Err("the domain name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("the domain name is longer than {MAX_NAME} characters"));
    }
    let name = name.to_ascii_lowercase();
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("'{name}' has an empty label (two dots in a row?)"));
        }
        if label.len() > MAX_LABEL {
            return Err(format!("'{name}' has a label longer than {MAX_LABEL} characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
        {
            let hint = if c.is_ascii() {
                ""
            } else {
                "; write international names in their xn-- form"
            };
            return Err(format!(
                "'{name}' holds '{c}': domain names are made of a-z, 0-9, '-' and '_'{hint}"
            ));
        }
    }
    Ok(name)
}

/// Checks that `name` is a valid domain name already in canonical form.
pub(crate) fn check_canonical(name: &str) -> Result<(), String> {
    let canonical = normalize_domain(name)?;
    if canonical != name {
        return Err(format!("write '{name}' as '{canonical}' (lower case, no trailing dot)"));
    }
    Ok(())
}

/// Whether `name` is `domain`, ignoring ASCII case and a trailing dot on either.
pub fn domain_matches(name: &str, domain: &str) -> bool {
    trim_dot(name).eq_ignore_ascii_case(trim_dot(domain))
}

/// Whether `name` is `suffix` or a name under it, on label boundaries (`a.example.com` is
/// under `example.com`, `badexample.com` is not), ignoring ASCII case and trailing dots.
pub fn suffix_matches(name: &str, suffix: &str) -> bool {
    let (name, suffix) = (trim_dot(name), trim_dot(suffix));
    if name.len() < suffix.len() {
        return false;
    }
    let cut = name.len() - suffix.len();
    // `get` instead of slicing: `cut` may fall inside a multi-byte character of a hostile name.
    match (
        name.get(cut..),
        cut.checked_sub(1).and_then(|dot| name.as_bytes().get(dot)),
    ) {
        (Some(tail), None) => tail.eq_ignore_ascii_case(suffix),
        (Some(tail), Some(b'.')) => !suffix.is_empty() && tail.eq_ignore_ascii_case(suffix),
        _ => false,
    }
}

fn trim_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(normalize_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize_domain("_srv.a-b.io").unwrap(), "_srv.a-b.io");
        assert_eq!(normalize_domain("localhost").unwrap(), "localhost");
        for (bad, fragment) in [
            ("", "empty"),
            (".", "empty"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a b.com", "' '"),
            ("bücher.de", "xn--"),
            ("*.example.com", "'*'"),
        ] {
            let err = normalize_domain(bad).unwrap_err();
            assert!(err.contains(fragment), "{bad}: {err}");
        }
        let label = "a".repeat(63);
        assert!(normalize_domain(&format!("{label}.com")).is_ok());
        assert!(normalize_domain(&format!("{label}a.com")).unwrap_err().contains("63"));
        let long = [label.as_str(); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(normalize_domain(&long).unwrap_err().contains("253"));
        assert!(normalize_domain(&long[2..]).is_ok());
    }

    #[test]
    fn canonical_form_is_required_where_stored() {
        assert!(check_canonical("example.com").is_ok());
        assert!(check_canonical("Example.com").unwrap_err().contains("'example.com'"));
        assert!(check_canonical("example.com.").is_err());
    }

    #[test]
    fn matching_is_on_label_boundaries() {
        assert!(domain_matches("Example.com.", "example.com"));
        assert!(!domain_matches("a.example.com", "example.com"));
        assert!(suffix_matches("example.com", "example.com"));
        assert!(suffix_matches("a.b.EXAMPLE.com.", "example.com"));
        assert!(!suffix_matches("badexample.com", "example.com"));
        assert!(!suffix_matches("example.com", "a.example.com"));
        assert!(!suffix_matches("com", "example.com"));
        assert!(!suffix_matches("x.", ""));
        assert!(!suffix_matches("xé", "a"));
    }
}
