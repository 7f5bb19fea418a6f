//! The name a flow's first bytes carry: a TLS ClientHello's SNI or an HTTP/1 Host header.
//!
//! Hand-written parsing: the crates that parse ClientHellos are whole TLS stacks or HTTP
//! servers, and all this needs is a bounds-checked walk to one field. The bytes come from the
//! guest, so every length is checked against what is there and nothing here can panic.

/// Bytes a name may need before sniffing gives up: a ClientHello or an HTTP header block
/// larger than this is not worth waiting for.
pub const MAX_SNIFF_BYTES: usize = 16 * 1024;

/// TLS record content type of handshake messages.
const TLS_HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// The server_name extension and its host_name entry type (RFC 6066 §3).
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;
/// The largest record fragment TLS allows (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;

/// HTTP/1 methods whose requests are sniffed; any other first word is not HTTP here, so a
/// client-first protocol that is not HTTP is never kept waiting for a header block.
const METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
];

/// What the first bytes of a flow say about its name so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// Not enough bytes yet to tell.
    NeedMore,
    /// The flow is not TLS or HTTP/1, or carries no name.
    NoName,
    /// The name (lower case, no trailing dot, no port).
    Name(String),
}

/// Looks for the flow's name in its first `bytes` (at most a few KiB are ever passed).
pub fn sniff(bytes: &[u8]) -> Sniffed {
    match bytes.first() {
        None => Sniffed::NeedMore,
        Some(&TLS_HANDSHAKE) => tls(bytes),
        Some(_) => http(bytes),
    }
}

/// A bounds-checked reader over untrusted bytes; every read is `None` past the end.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// At most `n` bytes: what is left when fewer have arrived.
    fn take_up_to(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// The next `u8`-length-prefixed block.
    fn block8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// The next `u16`-length-prefixed block.
    fn block16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// A TLS flow: gathers the ClientHello from as many handshake records as it spans (a guest
/// could split it to hide the name), then reads its SNI.
fn tls(bytes: &[u8]) -> Sniffed {
    let mut records = Cursor { rest: bytes };
    let mut handshake = Vec::new();
    loop {
        let record_start = bytes.len() - records.rest.len();
        if record_start >= MAX_SNIFF_BYTES {
            return Sniffed::NoName;
        }
        // A record header is type, version (major 3), length.
        let (Some(kind), Some(version), Some(len)) = (records.u8(), records.u16(), records.u16()) else {
            return match bytes.get(record_start + 1) {
                Some(&major) if major != 3 => Sniffed::NoName,
                _ => Sniffed::NeedMore,
            };
        };
        let len = usize::from(len);
        if kind != TLS_HANDSHAKE || version >> 8 != 3 || len == 0 || len > MAX_RECORD {
            return Sniffed::NoName;
        }
        let fragment = records.take_up_to(len);
        handshake.extend_from_slice(fragment);
        let mut msg = Cursor { rest: &handshake };
        if let (Some(msg_type), Some(msg_len)) = (msg.u8(), msg.u24()) {
            if msg_type != CLIENT_HELLO || 4 + msg_len > MAX_SNIFF_BYTES {
                return Sniffed::NoName;
            }
            if let Some(body) = msg.take(msg_len) {
                return client_hello_name(body).map_or(Sniffed::NoName, Sniffed::Name);
            }
        }
        if fragment.len() < len {
            return needs(record_start + 5 + len);
        }
    }
}

/// `NeedMore` while `total` bytes stay within the cap, else `NoName`.
fn needs(total: usize) -> Sniffed {
    if total > MAX_SNIFF_BYTES {
        Sniffed::NoName
    } else {
        Sniffed::NeedMore
    }
}

/// The host_name of a ClientHello body's server_name extension.
fn client_hello_name(body: &[u8]) -> Option<String> {
    let mut hello = Cursor { rest: body };
    hello.take(2 + 32)?; // legacy_version, random
    hello.block8()?; // legacy_session_id
    hello.block16()?; // cipher_suites
    hello.block8()?; // legacy_compression_methods
    let mut extensions = Cursor { rest: hello.block16()? };
    while !extensions.rest.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.block16()?;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let mut list = Cursor { rest: data };
        let mut names = Cursor { rest: list.block16()? };
        while !names.rest.is_empty() {
            let name_type = names.u8()?;
            let name = names.block16()?;
            if name_type == NAME_TYPE_HOST {
                return hostname(name);
            }
        }
        return None;
    }
    None
}

/// An HTTP/1 request: the Host header of its header block.
fn http(bytes: &[u8]) -> Sniffed {
    let method_len = bytes.iter().position(|&b| b == b' ');
    let method = &bytes[..method_len.unwrap_or(bytes.len())];
    let known = METHODS.iter().any(|m| match method_len {
        Some(_) => *m == method,
        None => m.starts_with(method),
    });
    if !known {
        return Sniffed::NoName;
    }
    let crlf = find(bytes, b"\r\n\r\n");
    let Some(end) = [crlf, find(bytes, b"\n\n")].into_iter().flatten().min() else {
        return needs(bytes.len() + 1);
    };
    if end > MAX_SNIFF_BYTES {
        return Sniffed::NoName;
    }
    let mut lines = bytes[..end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    if !(request_line.ends_with(b" HTTP/1.1") || request_line.ends_with(b" HTTP/1.0")) {
        return Sniffed::NoName;
    }
    host_header(lines).map_or(Sniffed::NoName, Sniffed::Name)
}

/// The name in the only Host header among `lines`; `None` when there is none, more than
/// one (servers disagree on which wins), or it is folded over lines.
fn host_header<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    let mut host = None;
    let mut last_was_host = false;
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if last_was_host {
                return None;
            }
            continue;
        }
        let colon = line.iter().position(|&b| b == b':');
        last_was_host = colon.is_some_and(|c| line[..c].eq_ignore_ascii_case(b"host"));
        if let (true, Some(c)) = (last_was_host, colon) {
            if host.is_some() {
                return None;
            }
            host = Some(line[c + 1..].trim_ascii());
        }
    }
    host_value(host?)
}

/// A Host header value without its port and IPv6 brackets, if it is a valid hostname.
fn host_value(value: &[u8]) -> Option<String> {
    let (name, port) = match value.strip_prefix(b"[") {
        Some(rest) => {
            let close = rest.iter().position(|&b| b == b']')?;
            (&rest[..close], &rest[close + 1..])
        }
        None => match value.iter().rposition(|&b| b == b':') {
            Some(c) => (&value[..c], &value[c..]),
            None => (value, &b""[..]),
        },
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(b":")
            .is_some_and(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    if !port_ok {
        return None;
    }
    hostname(name)
}

/// `name` lower-cased without a trailing dot, if it is a hostname: letters, digits, `-`, `_`
/// in non-empty labels of at most 63, at most 253 in all.
fn hostname(name: &[u8]) -> Option<String> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    // Only ASCII passed the check above, so this conversion cannot lose anything.
    valid.then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// Where `needle` first starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
