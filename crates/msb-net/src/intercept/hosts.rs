//! Host patterns as users write them: `api.x.com` (that name), `*.x.com` (any subdomain and
//! the apex), `*` (any host). Names are compared lower case without a trailing dot.

use super::InterceptError;

/// One parsed host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// Any host.
    Any,
    /// Exactly this name.
    Exact(String),
    /// This name and every name below it.
    Domain(String),
}

/// A name in the form patterns compare: lower case, no trailing dot.
pub(crate) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Pattern {
    /// Parses `text` with the spec's own host-pattern rules
    /// ([`msb_types::normalize_host_pattern`]): a name, `*.name` or `*`.
    pub(crate) fn parse(text: &str) -> Result<Pattern, InterceptError> {
        let canonical = msb_types::normalize_host_pattern(text.trim())
            .map_err(|_| InterceptError::BadHost(normalize(text.trim())))?;
        Ok(match canonical.strip_prefix("*.") {
            _ if canonical == "*" => Pattern::Any,
            Some(apex) => Pattern::Domain(apex.to_string()),
            None => Pattern::Exact(canonical),
        })
    }

    /// Whether `name` (normalized) is covered.
    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(exact) => name == exact,
            Pattern::Domain(apex) => msb_types::suffix_matches(name, apex),
        }
    }

    /// Whether every name `other` covers is covered by `self`.
    pub(crate) fn covers(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::Any, _) => true,
            (_, Pattern::Any) => false,
            (_, Pattern::Exact(name)) => self.matches(name),
            (Pattern::Domain(_), Pattern::Domain(apex)) => self.matches(apex),
            (Pattern::Exact(_), Pattern::Domain(_)) => false,
        }
    }

    /// The DNS subtree a CA restricted to this pattern may sign for; `None` for `*`.
    pub(crate) fn subtree(&self) -> Option<&str> {
        match self {
            Pattern::Any => None,
            Pattern::Exact(name) | Pattern::Domain(name) => Some(name),
        }
    }
}

/// Parses every pattern in `texts`.
pub(crate) fn parse_all(texts: &[String]) -> Result<Vec<Pattern>, InterceptError> {
    texts.iter().map(|t| Pattern::parse(t)).collect()
}

/// Whether any of `patterns` covers `name`.
pub(crate) fn any_matches(patterns: &[Pattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_documented() {
        let exact = Pattern::parse("API.x.com.").unwrap();
        assert!(exact.matches("api.x.com"));
        assert!(!exact.matches("v1.api.x.com"));
        let domain = Pattern::parse("*.x.com").unwrap();
        assert!(domain.matches("x.com") && domain.matches("a.b.x.com"));
        assert!(!domain.matches("evilx.com") && !domain.matches("x.com.evil"));
        assert!(Pattern::parse("*").unwrap().matches("anything"));
        for bad in ["", "a..b", "*x.com", "a.*.com", "a b"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coverage_between_patterns() {
        let p = |s| Pattern::parse(s).unwrap();
        assert!(p("*.x.com").covers(&p("api.x.com")));
        assert!(p("*.x.com").covers(&p("*.a.x.com")));
        assert!(!p("api.x.com").covers(&p("*.x.com")));
        assert!(!p("*.x.com").covers(&p("*")));
        assert!(p("*").covers(&p("*")));
    }
}
