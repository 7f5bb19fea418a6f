//! Extended attributes: name prefixes to `e_name_index`, POSIX ACLs to the ext4 disk
//! format, and the two places they are stored — the inode body after the extra fields,
//! and one external block. Hashes are computed as e2fsprogs and the kernel do
//! (`ext2fs_ext_attr_hash_entry`, `ext2fs_ext_attr_block_rehash`) because e2fsck checks them.

use std::borrow::Cow;

use crate::inode::IBODY_XATTR_SIZE;
use crate::layout::{put16, put32, BLOCK_SIZE};

const MAGIC: u32 = 0xEA02_0000;
const ENTRY_HEADER: usize = 16;
const BLOCK_HEADER: usize = 32;
/// Longest full name the VFS accepts (`XATTR_NAME_MAX`).
const NAME_MAX: usize = 255;

/// Name prefixes in order of decreasing specificity, with their `e_name_index`.
const PREFIXES: &[(&[u8], u8)] = &[
    (b"system.posix_acl_access", 2),
    (b"system.posix_acl_default", 3),
    (b"system.richacl", 8),
    (b"user.", 1),
    (b"trusted.", 4),
    (b"security.", 6),
    (b"system.", 7),
];

/// Why one attribute cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XattrError {
    /// Bad name; the reason says which rule.
    Name(&'static str),
    /// Bad value; the reason says which rule.
    Value(&'static str),
    /// The same name twice.
    Duplicate,
    /// All of them together need more than the inode body and one block: bytes needed.
    TooLarge(usize),
}

/// One attribute ready to be laid out.
#[derive(Debug, Clone)]
struct Entry<'a> {
    index: u8,
    name: &'a [u8],
    value: Cow<'a, [u8]>,
}

impl Entry<'_> {
    fn entry_len(&self) -> usize {
        (ENTRY_HEADER + self.name.len()).next_multiple_of(4)
    }

    fn value_len(&self) -> usize {
        self.value.len().next_multiple_of(4)
    }

    fn space(&self) -> usize {
        self.entry_len() + self.value_len()
    }

    /// `ext2fs_ext_attr_hash_entry` (the unsigned-char variant the kernel uses since 6.2).
    fn hash(&self) -> u32 {
        let mut hash = 0u32;
        for &b in self.name {
            hash = (hash << 5) ^ (hash >> 27) ^ u32::from(b);
        }
        for word in self.value.chunks(4) {
            let mut w = [0u8; 4];
            w[..word.len()].copy_from_slice(word);
            hash = (hash << 16) ^ (hash >> 16) ^ u32::from_le_bytes(w);
        }
        hash
    }
}

/// Encoded attributes of one inode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// The in-inode area (magic, entries, values), `IBODY_XATTR_SIZE` bytes, if any.
    pub ibody: Option<Vec<u8>>,
    /// The external block, if any.
    pub block: Option<Vec<u8>>,
}

/// Splits a full name into its `e_name_index` and the stored suffix.
fn split_name(full: &[u8]) -> Result<(u8, &[u8]), XattrError> {
    if full.len() > NAME_MAX {
        return Err(XattrError::Name("names are at most 255 bytes"));
    }
    if full.contains(&0) {
        return Err(XattrError::Name("names cannot contain NUL"));
    }
    for (prefix, index) in PREFIXES {
        if let Some(rest) = full.strip_prefix(*prefix) {
            let acl = matches!(index, 2 | 3 | 8);
            if acl && !rest.is_empty() {
                continue;
            }
            if !acl && rest.is_empty() {
                return Err(XattrError::Name("the name after the prefix is empty"));
            }
            return Ok((*index, rest));
        }
    }
    Err(XattrError::Name(
        "the namespace is not one of user., trusted., security., system.",
    ))
}

/// Converts a POSIX ACL from the xattr format `getxattr` returns (version 2, 8-byte
/// entries) to the ext4 disk format (version 1, 4-byte entries for the owner, group,
/// mask and other tags); values already in disk format are kept.
fn acl_to_disk(value: &[u8]) -> Result<Cow<'_, [u8]>, XattrError> {
    let bad = XattrError::Value("not a POSIX ACL (version 2 xattr format)");
    let version = value.get(..4).map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
    match version {
        Some(1) => return Ok(Cow::Borrowed(value)),
        Some(2) if value.len() > 4 && (value.len() - 4) % 8 == 0 => {}
        _ => return Err(bad),
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in value[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        out.extend_from_slice(&e[..4]);
        match tag {
            0x01 | 0x04 | 0x10 | 0x20 => {}
            0x02 | 0x08 => out.extend_from_slice(&e[4..8]),
            _ => return Err(bad),
        }
    }
    Ok(Cow::Owned(out))
}

/// Lays out entries (sorted) and values (from the end down) in `area`, whose first entry
/// sits at `first`; value offsets count from `base`. Returns the entries' hashes.
fn lay_out(area: &mut [u8], first: usize, base: usize, entries: &[&Entry<'_>]) -> Vec<u32> {
    let mut pos = first;
    let mut value_end = area.len();
    let mut hashes = Vec::with_capacity(entries.len());
    for e in entries {
        let offs = if e.value.is_empty() {
            0
        } else {
            value_end -= e.value_len();
            area[value_end..value_end + e.value.len()].copy_from_slice(&e.value);
            value_end - base
        };
        let hash = e.hash();
        area[pos] = e.name.len() as u8;
        area[pos + 1] = e.index;
        put16(area, pos + 2, offs as u16);
        put32(area, pos + 8, e.value.len() as u32);
        put32(area, pos + 12, hash);
        area[pos + ENTRY_HEADER..pos + ENTRY_HEADER + e.name.len()].copy_from_slice(e.name);
        pos += e.entry_len();
        hashes.push(hash);
    }
    hashes
}

fn ibody(entries: &[&Entry<'_>]) -> Vec<u8> {
    let mut area = vec![0u8; IBODY_XATTR_SIZE];
    put32(&mut area, 0, MAGIC);
    lay_out(&mut area, 4, 4, entries);
    area
}

fn block(entries: &[&Entry<'_>]) -> Vec<u8> {
    let mut area = vec![0u8; BLOCK_SIZE];
    put32(&mut area, 0, MAGIC);
    put32(&mut area, 4, 1); // h_refcount
    put32(&mut area, 8, 1); // h_blocks
    let hashes = lay_out(&mut area, BLOCK_HEADER, 0, entries);
    let mut block_hash = 0u32;
    for h in hashes {
        block_hash = (block_hash << 16) ^ (block_hash >> 16) ^ h;
    }
    put32(&mut area, 12, block_hash);
    area
}

/// Bytes a set of entries needs in an area with a `header`-byte header (4-byte end marker included).
fn need(header: usize, entries: &[&Entry<'_>]) -> usize {
    header + 4 + entries.iter().map(|e| e.space()).sum::<usize>()
}

/// Encodes `xattrs`: in the inode when all fit, else in one block, else split with the
/// smallest in the inode. Errors name the attribute at fault.
pub(crate) fn encode(xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<Encoded, (Vec<u8>, XattrError)> {
    if xattrs.is_empty() {
        return Ok(Encoded::default());
    }
    let mut entries = Vec::with_capacity(xattrs.len());
    for (name, value) in xattrs {
        let fail = |e| (name.clone(), e);
        let (index, suffix) = split_name(name).map_err(fail)?;
        let value = if matches!(index, 2 | 3) {
            acl_to_disk(value).map_err(fail)?
        } else {
            Cow::Borrowed(value.as_slice())
        };
        if value.len() > BLOCK_SIZE {
            return Err(fail(XattrError::Value(
                "values are at most 4096 bytes on this filesystem",
            )));
        }
        entries.push(Entry {
            index,
            name: suffix,
            value,
        });
    }
    // The kernel looks entries up in a block assuming this order (index, name length, name).
    entries.sort_by(|a, b| (a.index, a.name.len(), a.name).cmp(&(b.index, b.name.len(), b.name)));
    if let Some(w) = entries
        .windows(2)
        .find(|w| (w[0].index, w[0].name) == (w[1].index, w[1].name))
    {
        let full = xattrs
            .iter()
            .find(|(n, _)| split_name(n).ok() == Some((w[0].index, w[0].name)));
        return Err((full.map(|(n, _)| n.clone()).unwrap_or_default(), XattrError::Duplicate));
    }
    let all: Vec<&Entry<'_>> = entries.iter().collect();
    if need(4, &all) <= IBODY_XATTR_SIZE {
        return Ok(Encoded {
            ibody: Some(ibody(&all)),
            block: None,
        });
    }
    if need(BLOCK_HEADER, &all) <= BLOCK_SIZE {
        return Ok(Encoded {
            ibody: None,
            block: Some(block(&all)),
        });
    }
    // Smallest first into the inode, the rest into the block.
    let mut by_size: Vec<usize> = (0..entries.len()).collect();
    by_size.sort_by_key(|&i| entries[i].space());
    let mut in_inode: Vec<&Entry<'_>> = Vec::new();
    let mut taken = vec![false; entries.len()];
    for i in by_size {
        in_inode.push(&entries[i]);
        if need(4, &in_inode) > IBODY_XATTR_SIZE {
            in_inode.pop();
            break;
        }
        taken[i] = true;
    }
    let rest: Vec<&Entry<'_>> = entries
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .map(|(e, _)| e)
        .collect();
    if need(BLOCK_HEADER, &rest) > BLOCK_SIZE {
        return Err((Vec::new(), XattrError::TooLarge(need(BLOCK_HEADER, &all))));
    }
    in_inode.sort_by(|a, b| (a.index, a.name.len(), a.name).cmp(&(b.index, b.name.len(), b.name)));
    Ok(Encoded {
        ibody: (!in_inode.is_empty()).then(|| ibody(&in_inode)),
        block: Some(block(&rest)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(name: &str, value: &[u8]) -> (Vec<u8>, Vec<u8>) {
        (name.as_bytes().to_vec(), value.to_vec())
    }

    #[test]
    fn small_attributes_go_in_the_inode_sorted() {
        let enc = encode(&[x("user.b", b"2"), x("trusted.overlay.opaque", b"y"), x("user.a", b"1")]).unwrap();
        assert!(enc.block.is_none());
        let area = enc.ibody.unwrap();
        assert_eq!(&area[..4], &MAGIC.to_le_bytes());
        // First entry: user.a (index 1, 1-byte name).
        assert_eq!((area[4], area[5], area[20]), (1, 1, b'a'));
        let offs = usize::from(u16::from_le_bytes([area[6], area[7]]));
        assert_eq!(area[4 + offs], b'1');
    }

    #[test]
    fn large_attributes_go_in_a_block_with_hashes() {
        let big = vec![7u8; 3000];
        let enc = encode(&[x("user.big", &big), x("user.small", b"v")]).unwrap();
        let block = enc.block.unwrap();
        assert!(enc.ibody.is_none());
        assert_eq!(u32::from_le_bytes(block[4..8].try_into().unwrap()), 1);
        let e_hash = u32::from_le_bytes(block[32 + 12..32 + 16].try_into().unwrap());
        let entry = Entry {
            index: 1,
            name: b"big",
            value: Cow::Borrowed(&big),
        };
        assert_eq!(e_hash, entry.hash());
        assert_ne!(u32::from_le_bytes(block[12..16].try_into().unwrap()), 0);
    }

    #[test]
    fn split_between_inode_and_block_when_one_block_is_not_enough() {
        let enc = encode(&[
            x("user.a", &[1u8; 4000]),
            x("user.b", b"small"),
            x("user.c", &[2u8; 40]),
        ])
        .unwrap();
        assert!(enc.ibody.is_some() && enc.block.is_some());
        let err = encode(&[x("user.a", &[1u8; 4000]), x("user.b", &[2u8; 4000])]).unwrap_err();
        assert!(matches!(err.1, XattrError::TooLarge(_)));
    }

    #[test]
    fn names_are_checked() {
        assert!(matches!(
            encode(&[x("bogus.a", b"")]).unwrap_err().1,
            XattrError::Name(_)
        ));
        assert!(matches!(encode(&[x("user.", b"")]).unwrap_err().1, XattrError::Name(_)));
        assert!(matches!(
            encode(&[x("user.a\0b", b"")]).unwrap_err().1,
            XattrError::Name(_)
        ));
        assert_eq!(
            encode(&[x("user.a", b"1"), x("user.a", b"2")]).unwrap_err().1,
            XattrError::Duplicate
        );
        assert_eq!(split_name(b"system.posix_acl_access").unwrap(), (2, &b""[..]));
        assert_eq!(split_name(b"system.data").unwrap(), (7, &b"data"[..]));
    }

    #[test]
    fn acls_are_converted_to_disk_format() {
        // user::rw-, user:1000:r--, group::r--, mask::r--, other::---
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [(1u16, 6u16, 0u32), (2, 4, 1000), (4, 4, 0), (0x10, 4, 0), (0x20, 0, 0)] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        let disk = acl_to_disk(&v).unwrap();
        assert_eq!(disk.len(), 4 + 4 + 8 + 4 + 4 + 4);
        assert_eq!(&disk[..4], &1u32.to_le_bytes());
        assert!(acl_to_disk(b"junk").is_err());
    }
}
