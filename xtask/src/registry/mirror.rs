//! Finds the Debian mirror this machine's apt uses, for debootstrap.

use std::fs;
use std::path::PathBuf;

/// Used when no apt source names the suite.
const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";

/// The first http(s)/file URI apt uses for `suite` (sources.list, then sources.list.d in
/// name order), else deb.debian.org.
pub fn debian_mirror(suite: &str) -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else { continue };
        let found = match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => mirror_deb822(&text, suite),
            Some("list") | None => mirror_one_line(&text, suite),
            _ => None,
        };
        if let Some(m) = found {
            return m;
        }
    }
    FALLBACK_MIRROR.to_string()
}

fn usable(uri: &str) -> bool {
    ["http://", "https://", "file:/"].iter().any(|s| uri.starts_with(s))
}

/// First `deb URI SUITE …` line (options in `[…]` skipped) naming `suite`.
fn mirror_one_line(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split('#').next()?.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            while !uri.ends_with(']') {
                uri = words.next()?;
            }
            uri = words.next()?;
        }
        (words.next()? == suite && usable(uri)).then(|| uri.to_string())
    })
}

/// First enabled deb822 stanza of type `deb` whose Suites include `suite`.
fn mirror_deb822(text: &str, suite: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        let is_deb = field("Types")?.split_whitespace().any(|t| t == "deb");
        let has_suite = field("Suites")?.split_whitespace().any(|s| s == suite);
        let uri = field("URIs")?.split_whitespace().find(|u| usable(u))?.to_string();
        (enabled && is_deb && has_suite).then_some(uri)
    })
}

#[cfg(test)]
mod tests {
    use super::{mirror_deb822, mirror_one_line};

    #[test]
    fn one_line_sources() {
        let text = "# c\ndeb-src http://a/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k] http://b/debian bookworm main\n";
        assert_eq!(mirror_one_line(text, "bookworm").as_deref(), Some("http://b/debian"));
        assert_eq!(mirror_one_line(text, "trixie"), None);
    }

    #[test]
    fn deb822_sources() {
        let text = "Types: deb\n# http://snapshot\nURIs: http://deb.debian.org/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://deb.debian.org/debian-security\n\
                    Suites: bookworm-security\n";
        assert_eq!(
            mirror_deb822(text, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(
            mirror_deb822(
                "Types: deb\nEnabled: no\nURIs: http://x\nSuites: bookworm\n",
                "bookworm"
            ),
            None
        );
    }
}
