//! The sandbox's own DNS blocklist: exact names and whole subtrees answered NXDOMAIN.

use msb_types::{domain_matches, normalize_domain, suffix_matches};

/// Names (exact) and suffixes (the name and everything under it) that never resolve.
#[derive(Debug, Default)]
pub(crate) struct Blocklist {
    domains: Vec<String>,
    suffixes: Vec<String>,
}

impl Blocklist {
    /// A blocklist from the spec's lists; entries that are not domain names (a validated
    /// spec has none) are skipped, since they could never match a name anyway.
    pub(crate) fn new(domains: &[String], suffixes: &[String]) -> Blocklist {
        let names = |list: &[String]| list.iter().filter_map(|s| normalize_domain(s).ok()).collect();
        Blocklist {
            domains: names(domains),
            suffixes: names(suffixes),
        }
    }

    /// Whether `name` (lower case, no trailing dot) is blocked.
    pub(crate) fn blocks(&self, name: &str) -> bool {
        self.domains.iter().any(|d| domain_matches(name, d)) || self.suffixes.iter().any(|s| suffix_matches(name, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_suffixes_on_label_boundaries() {
        let list = Blocklist::new(
            &["Ads.Example.com.".into()],
            &["tracker.net".into(), "".into(), "a..b".into()],
        );
        assert!(list.blocks("ads.example.com"));
        assert!(!list.blocks("x.ads.example.com"));
        assert!(!list.blocks("example.com"));
        assert!(list.blocks("tracker.net"));
        assert!(list.blocks("a.b.tracker.net"));
        assert!(!list.blocks("nottracker.net"));
        assert!(!list.blocks(""));
        assert!(!list.blocks("net"));
    }
}
