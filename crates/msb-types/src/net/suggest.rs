//! "Did you mean …?" for mistyped words of the network syntax.

/// Furthest a word may be from a choice (in single-character edits) to be suggested.
const MAX_DISTANCE: usize = 2;

/// Shortest start of a choice that is taken to mean it (`public` for `public-only`).
const MIN_PREFIX: usize = 3;

/// The choice nearest to `word`, if one is close enough to be what was meant: a few edits
/// away, else beginning with it.
pub(crate) fn nearest<'a>(word: &str, choices: &[&'a str]) -> Option<&'a str> {
    choices
        .iter()
        .map(|&choice| (distance(word, choice), choice))
        // Rewriting every letter of a short word says nothing about what was meant.
        .filter(|&(d, _)| d <= MAX_DISTANCE && d < word.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, choice)| choice)
        .or_else(|| {
            let long_enough = word.chars().count() >= MIN_PREFIX;
            choices
                .iter()
                .copied()
                .find(|choice| long_enough && choice.starts_with(word))
        })
}

/// `" (did you mean X?)"` when a choice is near `word`, else nothing.
pub(crate) fn did_you_mean(word: &str, choices: &[&str]) -> String {
    nearest(word, choices).map_or_else(String::new, |c| format!(" (did you mean '{c}'?)"))
}

/// Levenshtein distance between `a` and `b`, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let replaced = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = replaced.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("pubilc", "public"), 2);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn suggestions_are_close_ones_only() {
        let words = ["public", "private", "loopback"];
        assert_eq!(nearest("pubic", &words), Some("public"));
        assert_eq!(nearest("privat", &words), Some("private"));
        assert_eq!(nearest("elsewhere", &words), None);
        assert_eq!(nearest("x", &["any"]), None);
        assert_eq!(nearest("tpc", &["tcp", "udp"]), Some("tcp"));
        assert_eq!(nearest("public", &["none", "public-only"]), Some("public-only"));
        assert_eq!(nearest("pu", &["public-only"]), None);
        assert_eq!(did_you_mean("loopbak", &words), " (did you mean 'loopback'?)");
        assert_eq!(did_you_mean("zzz", &words), "");
    }
}
