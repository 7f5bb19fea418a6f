//! GNU sparse files in PAX form (versions 0.0, 0.1 and 1.0). The old GNU `S` type is
//! expanded by the `tar` crate itself; these PAX forms it leaves to us.

use std::io::{self, Read};

/// Where the data segments of a sparse entry are described.
#[derive(Debug)]
pub enum MapSource {
    /// In the PAX header (0.0 / 0.1): (offset, length) pairs.
    Pax(Vec<(u64, u64)>),
    /// In decimal text at the front of the entry data (1.0).
    InData,
}

/// A sparse entry as described by its PAX records.
#[derive(Debug)]
pub struct Sparse {
    /// The file's apparent size.
    pub real_size: u64,
    /// The real name, when the header carries a `GNUSparseFile.N/...` placeholder.
    pub name: Option<Vec<u8>>,
    /// The segment map.
    pub map: MapSource,
}

fn num(v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("bad number {:?} in GNU sparse header", String::from_utf8_lossy(v)))
}

/// Recognises a PAX sparse entry from its records; `Ok(None)` for ordinary entries.
pub fn from_pax(recs: &[(Vec<u8>, Vec<u8>)]) -> Result<Option<Sparse>, String> {
    let get = |k: &str| {
        recs.iter()
            .rev()
            .find(|(rk, _)| rk == k.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let major = get("GNU.sparse.major");
    let map_str = get("GNU.sparse.map");
    let has_00 = get("GNU.sparse.offset").is_some();
    if major.is_none() && map_str.is_none() && !has_00 {
        return Ok(None);
    }
    let name = get("GNU.sparse.name").map(<[u8]>::to_vec);
    let size_key = get("GNU.sparse.realsize").or_else(|| get("GNU.sparse.size"));
    let real_size = num(size_key.ok_or("GNU sparse entry without a real size")?)?;
    let map = if let Some(major) = major {
        let minor = get("GNU.sparse.minor").map(num).transpose()?.unwrap_or(0);
        if num(major)? != 1 || minor != 0 {
            return Err(format!(
                "unsupported GNU sparse version {}.{minor}",
                String::from_utf8_lossy(major)
            ));
        }
        MapSource::InData
    } else if let Some(m) = map_str {
        let nums = m
            .split(|&b| b == b',')
            .filter(|s| !s.is_empty())
            .map(num)
            .collect::<Result<Vec<_>, _>>()?;
        if nums.len() % 2 != 0 {
            return Err("GNU.sparse.map has an odd number of values".into());
        }
        MapSource::Pax(nums.chunks(2).map(|c| (c[0], c[1])).collect())
    } else {
        // 0.0: offset/numbytes pairs repeat, in order.
        let mut pairs = Vec::new();
        let mut off = None;
        for (k, v) in recs {
            if k == b"GNU.sparse.offset" {
                off = Some(num(v)?);
            } else if k == b"GNU.sparse.numbytes" {
                let o = off.take().ok_or("GNU.sparse.numbytes without an offset")?;
                pairs.push((o, num(v)?));
            }
        }
        MapSource::Pax(pairs)
    };
    Ok(Some(Sparse { real_size, name, map }))
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads a 1.0 map from the front of the data: decimal numbers, one per line (count,
/// then offset/length pairs), padded with NULs to a 512-byte boundary. Returns the
/// map and the bytes it took. `avail` bounds how much may be read.
pub fn read_data_map<R: Read>(r: &mut R, avail: u64) -> io::Result<(Vec<(u64, u64)>, u64)> {
    let mut consumed = 0u64;
    let mut block = [0u8; 512];
    let mut nums: Vec<u64> = Vec::new();
    let mut want: Option<u64> = None;
    let mut cur: Option<u64> = None;
    let mut digits = 0;
    loop {
        if want.is_some_and(|w| nums.len() as u64 == 1 + 2 * w) {
            break;
        }
        if consumed + 512 > avail {
            return Err(bad("GNU sparse map runs past the entry data"));
        }
        r.read_exact(&mut block)?;
        consumed += 512;
        for &b in &block {
            if want.is_some_and(|w| nums.len() as u64 == 1 + 2 * w) {
                break;
            }
            match b {
                b'0'..=b'9' => {
                    digits += 1;
                    if digits > 20 {
                        return Err(bad("number too long in GNU sparse map"));
                    }
                    let v = cur
                        .unwrap_or(0)
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')));
                    cur = Some(v.ok_or_else(|| bad("number overflows in GNU sparse map"))?);
                }
                b'\n' => {
                    let v = cur.take().ok_or_else(|| bad("empty line in GNU sparse map"))?;
                    digits = 0;
                    if want.is_none() {
                        // Every pair takes at least 4 bytes of input, so this bounds
                        // the declared count by what the entry can hold.
                        if v.saturating_mul(4) > avail {
                            return Err(bad("GNU sparse map declares more segments than fit"));
                        }
                        want = Some(v);
                    }
                    nums.push(v);
                }
                _ => return Err(bad("unexpected byte in GNU sparse map")),
            }
        }
    }
    let map = nums[1..].chunks(2).map(|c| (c[0], c[1])).collect();
    Ok((map, consumed))
}

/// Checks that segments are ordered, disjoint, inside the file, and account for
/// exactly `stored` bytes of entry data.
pub fn validate(map: &[(u64, u64)], real_size: u64, stored: u64) -> Result<(), String> {
    let mut end = 0u64;
    let mut total = 0u64;
    for &(off, len) in map {
        let e = off.checked_add(len).ok_or("GNU sparse segment overflows")?;
        if off < end || e > real_size {
            return Err(format!(
                "GNU sparse segment {off}+{len} is out of order or past the size {real_size}"
            ));
        }
        end = e;
        total = total.checked_add(len).ok_or("GNU sparse data size overflows")?;
    }
    if total != stored {
        return Err(format!(
            "GNU sparse map covers {total} bytes but the entry stores {stored}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_map() {
        let mut text = b"2\n0\n5\n8192\n3\n".to_vec();
        text.resize(512, 0);
        text.extend_from_slice(b"hellobye");
        let mut r = &text[..];
        let (map, used) = read_data_map(&mut r, text.len() as u64).unwrap_or_default();
        assert_eq!(map, vec![(0, 5), (8192, 3)]);
        assert_eq!(used, 512);
        assert!(validate(&map, 9000, 8).is_ok());
        assert!(validate(&map, 8000, 8).is_err());
        assert!(validate(&[(10, 5), (12, 1)], 100, 6).is_err());
    }

    #[test]
    fn pax_versions() {
        let recs = vec![
            (b"GNU.sparse.size".to_vec(), b"100".to_vec()),
            (b"GNU.sparse.map".to_vec(), b"0,10,90,10".to_vec()),
            (b"GNU.sparse.name".to_vec(), b"real".to_vec()),
        ];
        let s = from_pax(&recs).ok().flatten();
        assert!(matches!(s, Some(Sparse { real_size: 100, map: MapSource::Pax(ref m), .. }) if m.len() == 2));
        assert!(from_pax(&[]).ok().flatten().is_none());
    }
}
