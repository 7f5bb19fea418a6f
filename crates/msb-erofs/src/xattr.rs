//! Extended attributes: name prefix indexes and the inline xattr body encoding.

use crate::layout::le16;

/// Known name prefixes and their on-disk indexes. `system.posix_acl_*` are whole
/// names (empty suffix), which is how EROFS stores ACLs.
const PREFIXES: &[(u8, &[u8])] = &[
    (1, b"user."),
    (2, b"system.posix_acl_access"),
    (3, b"system.posix_acl_default"),
    (4, b"trusted."),
    (6, b"security."),
];

/// Largest value EROFS can store (`e_value_size` is 16 bits).
pub const MAX_VALUE: usize = u16::MAX as usize;

/// Splits a full xattr name into (prefix index, suffix), or `None` when EROFS has no
/// short prefix for it (such names cannot be stored without long-prefix support).
pub fn split_name(full: &[u8]) -> Option<(u8, &[u8])> {
    for &(idx, pre) in PREFIXES {
        if idx == 2 || idx == 3 {
            if full == pre {
                return Some((idx, b""));
            }
        } else if let Some(rest) = full.strip_prefix(pre) {
            if !rest.is_empty() && rest.len() <= 255 {
                return Some((idx, rest));
            }
            return None;
        }
    }
    None
}

/// The prefix string for an on-disk index, if known.
pub fn prefix_of(idx: u8) -> Option<&'static [u8]> {
    PREFIXES.iter().find(|(i, _)| *i == idx).map(|(_, p)| *p)
}

/// Size of one entry on disk: 4-byte header, name suffix, value, padded to 4.
fn entry_size(suffix_len: usize, value_len: usize) -> usize {
    (4 + suffix_len + value_len + 3) & !3
}

/// Size of the inline xattr body for these attributes (0 when there are none).
/// The caller has already validated names with `split_name` and value sizes.
pub fn ibody_size(attrs: &[(Vec<u8>, Vec<u8>)]) -> usize {
    if attrs.is_empty() {
        return 0;
    }
    12 + attrs
        .iter()
        .map(|(n, v)| entry_size(split_name(n).map_or(0, |(_, s)| s.len()), v.len()))
        .sum::<usize>()
}

/// `i_xattr_icount` for a body of `size` bytes (`size` is 0 or 12 + 4k).
pub fn icount_for(size: usize) -> Option<u16> {
    if size == 0 {
        return Some(0);
    }
    u16::try_from((size - 12) / 4 + 1).ok()
}

/// Appends the inline xattr body (header with no shared xattrs, then entries).
pub fn encode_ibody(attrs: &[(Vec<u8>, Vec<u8>)], out: &mut Vec<u8>) {
    if attrs.is_empty() {
        return;
    }
    // h_name_filter 0 is fine: the filter is only consulted when the superblock
    // advertises it, which our images do not.
    out.extend_from_slice(&[0u8; 12]);
    for (name, value) in attrs {
        let Some((idx, suffix)) = split_name(name) else {
            continue;
        };
        let start = out.len();
        out.push(suffix.len() as u8);
        out.push(idx);
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(suffix);
        out.extend_from_slice(value);
        out.resize(start + entry_size(suffix.len(), value.len()), 0);
    }
}

/// Parses one xattr entry at the start of `b`: (index, suffix, value, entry size).
/// `None` when `b` is too short for what the header promises.
pub fn decode_entry(b: &[u8]) -> Option<(u8, &[u8], &[u8], usize)> {
    if b.len() < 4 {
        return None;
    }
    let name_len = usize::from(b[0]);
    let idx = b[1];
    let value_len = usize::from(le16(b, 2));
    let name = b.get(4..4 + name_len)?;
    let value = b.get(4 + name_len..4 + name_len + value_len)?;
    Some((idx, name, value, entry_size(name_len, value_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(split_name(b"user.foo"), Some((1, &b"foo"[..])));
        assert_eq!(split_name(b"trusted.overlay.opaque"), Some((4, &b"overlay.opaque"[..])));
        assert_eq!(split_name(b"system.posix_acl_access"), Some((2, &b""[..])));
        assert_eq!(split_name(b"system.other"), None);
        assert_eq!(split_name(b"user."), None);
    }

    #[test]
    fn roundtrip() {
        let attrs = vec![
            (b"user.a".to_vec(), b"xyz".to_vec()),
            (b"security.capability".to_vec(), vec![1, 2, 3, 4, 5]),
        ];
        let mut out = Vec::new();
        encode_ibody(&attrs, &mut out);
        assert_eq!(out.len(), ibody_size(&attrs));
        let (idx, n, v, sz) = decode_entry(&out[12..]).unwrap_or((0, b"", b"", 0));
        assert_eq!((idx, n, v, sz), (1, &b"a"[..], &b"xyz"[..], 8));
    }
}
