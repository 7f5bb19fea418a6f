//! Output bytes as text for JSON: invalid UTF-8 replaced, and a character split across two
//! chunks kept whole (its first bytes wait for the rest).

/// Decodes one output stream chunk by chunk.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    /// The start of a character whose remaining bytes have not come yet.
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `bytes` after what was pending; an incomplete character at the end waits.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::with_capacity(self.pending.len());
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // Incomplete at the end: keep it for the next chunk.
                        None => {
                            rest = after;
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// What is left at the end of the stream (an unfinished character, replaced).
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_chunks_stays_whole() {
        let mut s = Utf8Stream::default();
        let snow = "☃".as_bytes();
        assert_eq!(s.push(&[b'a', snow[0]]), "a");
        assert_eq!(s.push(&snow[1..2]), "");
        assert_eq!(s.push(&[snow[2], b'b']), "☃b");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn invalid_bytes_are_replaced_and_an_unfinished_end_is_flushed() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(&[b'x', 0xff, b'y']), "x\u{fffd}y");
        assert_eq!(s.push(&[0xe2, 0x98]), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }
}
