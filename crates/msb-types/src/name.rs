//! Sandbox names: DNS-label-like, so they are safe as directory names and hostnames.

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sandbox name '{name}': {reason} (use 1-63 lowercase letters, digits and '-', starting with a letter or digit)")]
pub struct NameError {
    /// The rejected name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks that `name` is 1–63 chars of `[a-z0-9-]`, not starting or ending with `-`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let err = |reason| {
        Err(NameError {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return err("it is empty");
    }
    if name.len() > 63 {
        return err("it is longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return err("it contains characters other than a-z, 0-9 and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return err("it starts or ends with '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_labels_and_rejects_the_rest() {
        for ok in ["a", "web-1", "0abc", &"x".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", "-a", "a-", "Web", "a b", "é", &"x".repeat(200)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
