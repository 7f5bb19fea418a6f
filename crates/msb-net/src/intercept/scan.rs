//! Finding and replacing secrets' placeholders (or real values) in bytes: one Aho-Corasick
//! automaton over all of them, pattern index = secret index. A stream scanner keeps the last
//! `longest - 1` bytes of each chunk, so a placeholder split across chunks is still found.

use aho_corasick::{AhoCorasick, MatchKind};

/// An automaton over a fixed list of needles (placeholders or values), by secret index.
#[derive(Clone)]
pub struct Needles {
    automaton: AhoCorasick,
    longest: usize,
}

impl std::fmt::Debug for Needles {
    /// Never the needles themselves: they may be secret values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Needles")
            .field("count", &self.automaton.patterns_len())
            .finish()
    }
}

impl Needles {
    /// An automaton over `needles` (none may be empty); `None` when there are none.
    pub fn new<I, P>(needles: I) -> Option<Needles>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let needles: Vec<P> = needles.into_iter().collect();
        let longest = needles.iter().map(|n| n.as_ref().len()).max()?;
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&needles)
            .ok()?;
        Some(Needles { automaton, longest })
    }

    /// The length of the longest needle.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// The index of the first needle found in `haystack`.
    pub fn find(&self, haystack: &[u8]) -> Option<usize> {
        self.automaton.find(haystack).map(|m| m.pattern().as_usize())
    }

    /// Sets `seen[i]` for every needle `i` found in `haystack`.
    pub fn mark(&self, haystack: &[u8], seen: &mut [bool]) {
        for m in self.automaton.find_iter(haystack) {
            if let Some(slot) = seen.get_mut(m.pattern().as_usize()) {
                *slot = true;
            }
        }
    }

    /// `haystack` with each needle `i` for which `with(i)` is `Some` replaced by it; `None`
    /// when nothing was replaced.
    pub fn replace<'a>(&self, haystack: &[u8], with: impl Fn(usize) -> Option<&'a [u8]>) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut last = 0;
        let mut replaced = false;
        for m in self.automaton.find_iter(haystack) {
            let Some(replacement) = with(m.pattern().as_usize()) else {
                continue;
            };
            out.extend_from_slice(&haystack[last..m.start()]);
            out.extend_from_slice(replacement);
            last = m.end();
            replaced = true;
        }
        if !replaced {
            return None;
        }
        out.extend_from_slice(&haystack[last..]);
        Some(out)
    }
}

/// Scans a byte stream chunk by chunk for needles, across chunk boundaries.
#[derive(Debug, Default)]
pub struct StreamScan {
    carry: Vec<u8>,
}

impl StreamScan {
    /// Scans the next `chunk`; the index of a needle ending in it (or started in an earlier
    /// chunk and completed in this one).
    pub fn feed(&mut self, needles: &Needles, chunk: &[u8]) -> Option<usize> {
        self.feed_where(needles, chunk, |_| true)
    }

    /// [`StreamScan::feed`] counting only the needles `wanted` picks.
    pub fn feed_where(&mut self, needles: &Needles, chunk: &[u8], wanted: impl Fn(usize) -> bool) -> Option<usize> {
        let keep = needles.longest().saturating_sub(1);
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(chunk);
        let hit = needles
            .automaton
            .find_iter(&window)
            .map(|m| m.pattern().as_usize())
            .find(|i| wanted(*i));
        let from = window.len().saturating_sub(keep);
        window.drain(..from);
        self.carry = window;
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replaces_only_the_chosen_needles() {
        let needles = Needles::new(["PH_A", "PH_B"]).unwrap();
        let out = needles.replace(b"x PH_A y PH_B z", |i| (i == 0).then_some(&b"real"[..]));
        assert_eq!(out.as_deref(), Some(&b"x real y PH_B z"[..]));
        assert_eq!(needles.replace(b"nothing", |_| Some(&b"r"[..])), None);
        assert_eq!(needles.replace(b"PH_B", |i| (i == 0).then_some(&b"r"[..])), None);
        assert!(Needles::new(Vec::<String>::new()).is_none());
    }

    proptest! {
        /// However a stream is cut into chunks, a needle in it is found.
        #[test]
        fn a_needle_split_across_chunks_is_found(
            prefix in proptest::collection::vec(any::<u8>(), 0..64),
            suffix in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let needle = b"msb_sec_0123456789abcdef0123456789abcdef";
            let needles = Needles::new([&needle[..]]).unwrap();
            let mut stream = prefix.clone();
            stream.extend_from_slice(needle);
            stream.extend_from_slice(&suffix);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut scan = StreamScan::default();
            let mut found = false;
            let mut last = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                found |= scan.feed(&needles, &stream[last..cut]).is_some();
                last = cut;
            }
            prop_assert!(found);
        }
    }
}
