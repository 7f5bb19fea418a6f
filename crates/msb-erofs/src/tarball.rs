//! A small streaming tar reader (ustar, GNU and PAX).
//!
//! Written here rather than taken from the `tar` crate because that crate splits PAX
//! records on newlines, which breaks on binary xattr values (ACLs, capabilities) that
//! contain a 0x0A byte; and because reading GNU sparse maps ourselves lets holes pass
//! through as holes instead of being expanded into zeros.

use std::io::{self, Read};

/// Largest GNU long name / long link / PAX header body accepted: far beyond real use,
/// small enough that a hostile header cannot make us allocate much.
const MAX_META: u64 = 64 << 20;
/// Most sparse segments one GNU sparse entry may list.
const MAX_SPARSE_SEGMENTS: usize = 1 << 20;

/// Entry type bytes.
pub mod kind {
    /// Regular file.
    pub const REG: u8 = b'0';
    /// Regular file (pre-POSIX).
    pub const AREG: u8 = 0;
    /// Hard link.
    pub const LINK: u8 = b'1';
    /// Symbolic link.
    pub const SYMLINK: u8 = b'2';
    /// Character device.
    pub const CHR: u8 = b'3';
    /// Block device.
    pub const BLK: u8 = b'4';
    /// Directory.
    pub const DIR: u8 = b'5';
    /// FIFO.
    pub const FIFO: u8 = b'6';
    /// Contiguous file (treated as regular).
    pub const CONT: u8 = b'7';
    /// GNU sparse file.
    pub const GNU_SPARSE: u8 = b'S';
}

/// One entry's header, with GNU and PAX extensions already applied.
#[derive(Debug, Default, Clone)]
pub struct Head {
    /// Path as recorded (not normalised).
    pub path: Vec<u8>,
    /// Link target (symlinks and hard links).
    pub link: Vec<u8>,
    /// Type byte.
    pub kind: u8,
    /// Mode bits from the header.
    pub mode: u64,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds (PAX only).
    pub mtime_nsec: u32,
    /// Device major number.
    pub dev_major: u64,
    /// Device minor number.
    pub dev_minor: u64,
    /// Bytes of data stored in the archive for this entry.
    pub size: u64,
    /// PAX records (global then local), for xattrs and PAX sparse keys.
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
    /// Old GNU sparse map: apparent size and (offset, length) data segments.
    pub gnu_sparse: Option<(u64, Vec<(u64, u64)>)>,
    /// A PAX `mtime` record was malformed.
    pub bad_pax_mtime: bool,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses a numeric header field: octal text, or GNU base-256 (high bit set).
fn number(f: &[u8]) -> io::Result<i128> {
    if let Some(&first) = f.first() {
        if first & 0x80 != 0 {
            let neg = first & 0x40 != 0;
            let mut v: i128 = i128::from(first & 0x3f) - if neg { 0x40 } else { 0 };
            for &b in &f[1..] {
                v = v
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(i128::from(b)))
                    .ok_or_else(|| bad("number overflows"))?;
            }
            return Ok(v);
        }
    }
    let s: Vec<u8> = f
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let mut v: i128 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(bad("bad octal number in tar header"));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(|| bad("number overflows"))?;
    }
    Ok(v)
}

fn unsigned(f: &[u8], what: &str) -> io::Result<u64> {
    u64::try_from(number(f)?).map_err(|_| bad(format!("{what} out of range")))
}

fn cstr(f: &[u8]) -> &[u8] {
    &f[..f.iter().position(|b| *b == 0).unwrap_or(f.len())]
}

/// Splits a PAX extended header body into (key, value) records. Records are
/// length-prefixed, so values may hold any bytes, newlines included.
pub fn parse_pax(mut d: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !d.is_empty() {
        if d.iter().all(|b| *b == 0) {
            break; // NUL padding some writers leave at the end
        }
        let sp = d
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad("PAX record without a length"))?;
        let len: usize = std::str::from_utf8(&d[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("PAX record length is not a number"))?;
        if len <= sp + 1 || len > d.len() || d[len - 1] != b'\n' {
            return Err(bad("PAX record length does not match its content"));
        }
        let rec = &d[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| bad("PAX record without '='"))?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        d = &d[len..];
    }
    Ok(out)
}

/// Parses a PAX time: `[-]seconds[.fraction]`.
pub fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut ns: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        ns += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    if !neg {
        Some((secs, ns))
    } else if ns == 0 {
        Some((-secs, 0))
    } else {
        // -1.5 is 1.5 s before the epoch: seconds -2, nanoseconds 500000000.
        Some((-secs - 1, 1_000_000_000 - ns))
    }
}

/// Streams entries out of a tar: call `next` for each header, then read its data
/// through the `Read` impl (anything left unread is skipped by the next `next`).
#[derive(Debug)]
pub struct TarReader<R> {
    r: R,
    /// Bytes consumed from the underlying reader.
    pub count: u64,
    remaining: u64,
    pad: u64,
    global: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<R: Read> TarReader<R> {
    /// Starts reading a tar stream.
    pub fn new(r: R) -> Self {
        TarReader {
            r,
            count: 0,
            remaining: 0,
            pad: 0,
            global: Vec::new(),
        }
    }

    fn raw_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.r.read(buf) {
                Ok(n) => {
                    self.count += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.raw_read(&mut buf[got..])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tar stream ends inside a header",
                ));
            }
            got += n;
        }
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            let got = self.raw_read(&mut buf[..k])?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tar stream ends inside entry data",
                ));
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// Reads a whole small entry body (long names, PAX headers).
    fn body(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_META {
            return Err(bad("extension header is unreasonably large"));
        }
        let mut v = vec![0u8; size as usize];
        self.read_full(&mut v)?;
        self.skip(size.wrapping_neg() % 512)?;
        Ok(v)
    }

    /// Reads the next header; `Ok(None)` at the end-of-archive marker (or clean EOF).
    pub fn next(&mut self) -> io::Result<Option<Head>> {
        let left = self.remaining + self.pad;
        self.remaining = 0;
        self.pad = 0;
        self.skip(left)?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut local: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
        loop {
            let mut h = [0u8; 512];
            let first = self.raw_read(&mut h)?;
            if first == 0 && long_name.is_none() && long_link.is_none() && local.is_none() {
                return Ok(None);
            }
            if first < 512 {
                self.read_full(&mut h[first..])?;
            }
            if h.iter().all(|b| *b == 0) {
                if long_name.is_some() || long_link.is_some() || local.is_some() {
                    return Err(bad("extension headers at the end of the archive describe no entry"));
                }
                return Ok(None);
            }
            let want = number(&h[148..156]).ok();
            let unsigned_sum: i128 = h
                .iter()
                .enumerate()
                .map(|(i, b)| if (148..156).contains(&i) { 32 } else { i128::from(*b) })
                .sum();
            let signed_sum: i128 = h
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        i128::from(*b as i8)
                    }
                })
                .sum();
            if want != Some(unsigned_sum) && want != Some(signed_sum) {
                return Err(bad("tar header checksum mismatch (not a tar stream, or corrupt)"));
            }
            let kind = h[156];
            let size = unsigned(&h[124..136], "size")?;
            match kind {
                b'L' => {
                    long_name = Some(cstr(&self.body(size)?).to_vec());
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.body(size)?).to_vec());
                    continue;
                }
                b'x' | b'X' => {
                    let recs = parse_pax(&self.body(size)?)?;
                    local.get_or_insert_with(Vec::new).extend(recs);
                    continue;
                }
                b'g' => {
                    let recs = parse_pax(&self.body(size)?)?;
                    self.global.extend(recs);
                    continue;
                }
                b'V' => {
                    self.skip(size + size.wrapping_neg() % 512)?;
                    continue;
                }
                _ => {}
            }
            let mut head = self.decode(&h, kind, size)?;
            if let Some(n) = long_name {
                head.path = n;
            }
            if let Some(l) = long_link {
                head.link = l;
            }
            let mut pax = self.global.clone();
            pax.extend(local.unwrap_or_default());
            for (k, v) in &pax {
                let num = || std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u64>().ok());
                match &k[..] {
                    b"path" => head.path = v.clone(),
                    b"linkpath" => head.link = v.clone(),
                    b"size" => head.size = num().ok_or_else(|| bad("bad PAX size"))?,
                    b"uid" => head.uid = num().ok_or_else(|| bad("bad PAX uid"))?,
                    b"gid" => head.gid = num().ok_or_else(|| bad("bad PAX gid"))?,
                    b"mtime" => match parse_pax_time(v) {
                        Some((s, ns)) => (head.mtime, head.mtime_nsec) = (s, ns),
                        None => head.bad_pax_mtime = true,
                    },
                    _ => {}
                }
            }
            head.pax = pax;
            if kind == kind::GNU_SPARSE {
                head.gnu_sparse = Some(self.gnu_sparse_map(&h)?);
            }
            self.remaining = head.size;
            self.pad = head.size.wrapping_neg() % 512;
            return Ok(Some(head));
        }
    }

    fn decode(&self, h: &[u8; 512], kind: u8, size: u64) -> io::Result<Head> {
        let mut path = cstr(&h[0..100]).to_vec();
        // POSIX ustar splits long paths into prefix/name; GNU uses that area otherwise.
        if &h[257..263] == b"ustar\0" {
            let prefix = cstr(&h[345..500]);
            if !prefix.is_empty() {
                let mut p = prefix.to_vec();
                p.push(b'/');
                p.extend_from_slice(&path);
                path = p;
            }
        }
        let mtime = number(&h[136..148])?;
        Ok(Head {
            path,
            link: cstr(&h[157..257]).to_vec(),
            kind,
            mode: unsigned(&h[100..108], "mode")?,
            uid: unsigned(&h[108..116], "uid")?,
            gid: unsigned(&h[116..124], "gid")?,
            mtime: i64::try_from(mtime).map_err(|_| bad("mtime out of range"))?,
            dev_major: if matches!(kind, kind::CHR | kind::BLK) {
                unsigned(&h[329..337], "device major")?
            } else {
                0
            },
            dev_minor: if matches!(kind, kind::CHR | kind::BLK) {
                unsigned(&h[337..345], "device minor")?
            } else {
                0
            },
            size,
            ..Head::default()
        })
    }

    /// Reads an old-GNU sparse map: 4 slots in the header, then 21 per extension
    /// block for as long as the "is extended" flag says so.
    fn gnu_sparse_map(&mut self, h: &[u8; 512]) -> io::Result<(u64, Vec<(u64, u64)>)> {
        let real = unsigned(&h[483..495], "sparse real size")?;
        let mut map = Vec::new();
        let slots = |area: &[u8], count: usize, map: &mut Vec<(u64, u64)>| -> io::Result<()> {
            for i in 0..count {
                let s = &area[i * 24..i * 24 + 24];
                if s[0] == 0 {
                    break;
                }
                map.push((
                    unsigned(&s[..12], "sparse offset")?,
                    unsigned(&s[12..], "sparse length")?,
                ));
            }
            Ok(())
        };
        slots(&h[386..482], 4, &mut map)?;
        let mut extended = h[482] != 0;
        while extended {
            let mut e = [0u8; 512];
            self.read_full(&mut e)?;
            slots(&e[..504], 21, &mut map)?;
            extended = e[504] != 0;
            if map.len() > MAX_SPARSE_SEGMENTS {
                return Err(bad("GNU sparse map has too many segments"));
            }
        }
        Ok((real, map))
    }

    /// Reads (and discards) whatever follows in the stream.
    pub fn drain(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 65536];
        while self.raw_read(&mut buf)? > 0 {}
        Ok(())
    }
}

impl<R: Read> Read for TarReader<R> {
    /// Reads the current entry's data; 0 at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let k = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.raw_read(&mut buf[..k])?;
        if n == 0 && k > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar stream ends inside entry data",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_may_hold_newlines() {
        let body = b"29 SCHILY.xattr.user.x=a\nb\x00c\n12 path=foo\n";
        let recs = parse_pax(body).unwrap_or_default();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].1, b"a\nb\x00c");
        assert_eq!(recs[1], (b"path".to_vec(), b"foo".to_vec()));
        assert!(parse_pax(b"99 path=x\n").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0").ok(), Some(0o644));
        assert_eq!(number(b"  12 \0").ok(), Some(0o12));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).ok(), Some(1 << 32));
        assert_eq!(number(&[0xff; 8]).ok(), Some(-1));
        assert!(number(b"9").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000.25"), Some((1700000000, 250_000_000)));
        assert_eq!(parse_pax_time(b"12"), Some((12, 0)));
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
