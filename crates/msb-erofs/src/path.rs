//! Normalisation of tar entry paths into clean, root-relative components.

use crate::layout::NAME_MAX;

/// Deepest path accepted: far beyond any real layer, but bounds the work a hostile
/// archive can ask of the tree.
pub const MAX_DEPTH: usize = 1024;

/// Splits a tar path into components relative to the layer root.
///
/// Leading `/` and `./` are stripped (layers are always rooted at the image root),
/// `.` and empty components are dropped, and `..` pops the previous component.
/// A `..` that would climb above the root is rejected rather than dropped: such an
/// entry is a sign of a hostile or broken layer, and silently re-rooting it would
/// put content somewhere its author did not ask for.
pub fn normalize(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.contains(&0) {
        return Err("path contains a NUL byte");
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("path escapes the layer root through `..`");
                }
            }
            name => {
                if name.len() > NAME_MAX {
                    return Err("a path component is longer than 255 bytes");
                }
                out.push(name);
                if out.len() > MAX_DEPTH {
                    return Err("path is nested more than 1024 levels deep");
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<Vec<String>, &'static str> {
        normalize(p.as_bytes()).map(|v| v.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect())
    }

    #[test]
    fn strips_and_resolves() {
        assert_eq!(n("./a/b/").unwrap_or_default(), ["a", "b"]);
        assert_eq!(n("/abs//x/./y").unwrap_or_default(), ["abs", "x", "y"]);
        assert_eq!(n("a/../b").unwrap_or_default(), ["b"]);
        assert!(n(".").unwrap_or_default().is_empty());
        assert!(n("../x").is_err());
        assert!(n("a/../../x").is_err());
        assert!(n(&"x".repeat(256)).is_err());
        assert!(n(&"x".repeat(255)).is_ok());
    }
}
