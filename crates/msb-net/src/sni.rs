//! The name a flow's first bytes carry: a TLS ClientHello's SNI or an HTTP/1 Host header.

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
    let _ = bytes;
    unimplemented!("filled in by the DNS/SNI work")
}
