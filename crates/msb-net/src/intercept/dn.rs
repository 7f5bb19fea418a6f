//! Reads a certificate's subject name into rcgen's form, for signing with a CA the user gave
//! (rcgen reads existing certificates only with a parser this crate does not pull in). Only
//! what CAs use: one attribute per RDN, PrintableString, UTF8String or IA5String values.

use rcgen::{DistinguishedName, DnType, DnValue};

/// One DER element off the front of `input`: (tag, content, rest).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = (rest.get(..count)?, rest.get(count..)?);
        (bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), rest)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// Decodes a DER object identifier's arcs.
fn oid(bytes: &[u8]) -> Option<Vec<u64>> {
    let (&first, rest) = bytes.split_first()?;
    let mut arcs = vec![u64::from(first / 40), u64::from(first % 40)];
    let mut value = 0u64;
    for &b in rest {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    Some(arcs)
}

/// The subject of the DER certificate `cert`, or `None` when it uses forms not handled.
pub(crate) fn subject(cert: &[u8]) -> Option<DistinguishedName> {
    let (0x30, cert, _) = element(cert)? else { return None };
    let (0x30, mut tbs, _) = element(cert)? else {
        return None;
    };
    // [0] version (optional), serial, signature algorithm, issuer, validity, subject.
    if tbs.first() == Some(&0xa0) {
        tbs = element(tbs)?.2;
    }
    for _ in 0..4 {
        tbs = element(tbs)?.2;
    }
    let (0x30, mut rdns, _) = element(tbs)? else {
        return None;
    };
    let mut name = DistinguishedName::new();
    while !rdns.is_empty() {
        let (0x31, set, rest) = element(rdns)? else { return None };
        rdns = rest;
        let (0x30, attribute, []) = element(set)? else {
            return None;
        };
        let (0x06, kind, value) = element(attribute)? else {
            return None;
        };
        let (tag, text, []) = element(value)? else { return None };
        let text = std::str::from_utf8(text).ok()?.to_string();
        let value = match tag {
            0x13 => DnValue::PrintableString(text.try_into().ok()?),
            0x0c => DnValue::Utf8String(text),
            0x16 => DnValue::Ia5String(text.try_into().ok()?),
            _ => return None,
        };
        name.push(DnType::from_oid(&oid(kind)?), value);
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    #[test]
    fn a_subject_reads_back_as_written() {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CountryName, DnValue::PrintableString("DE".try_into().unwrap()));
        params.distinguished_name.push(DnType::OrganizationName, "Example Org");
        params.distinguished_name.push(DnType::CommonName, "Example CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.clone().self_signed(&key).unwrap();
        assert_eq!(subject(cert.der()), Some(params.distinguished_name));
        assert_eq!(subject(b"\x30\x03\x02\x01"), None);
    }
}
