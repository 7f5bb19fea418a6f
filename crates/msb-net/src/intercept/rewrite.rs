//! The decision for one request, as a pure function: which secrets it may carry, whether it
//! carries a placeholder it may not (a violation), and the request with the placeholders it
//! may carry replaced by their values.

use super::hosts::{any_matches, normalize};
use super::scan::Needles;
use super::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::uri::PathAndQuery;
use http::{HeaderValue, Uri};

/// What is known about the flow a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    /// The TLS server name the guest asked for (normalized).
    pub(crate) sni: &'a str,
    /// Whether our DNS pinned the flow's destination address to `sni`.
    pub(crate) pinned: bool,
}

/// A placeholder of secret `secret` where it may not go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) secret: usize,
}

/// The host part of a Host header or `:authority`: the port dropped (an IPv6 literal keeps
/// its brackets), normalized.
pub(crate) fn host_of(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    normalize(host)
}

/// For each secret, whether a request on `facts` whose Host / `:authority` is `authority`
/// may carry its value: the SNI is allowed for it, pinned to the destination, and equal to
/// the authority's host.
pub(crate) fn allowed(secrets: &[Secret], facts: Facts<'_>, authority: Option<&str>) -> Vec<bool> {
    let host_ok = facts.pinned && authority.is_some_and(|a| host_of(a) == facts.sni);
    secrets
        .iter()
        .map(|s| host_ok && any_matches(&s.hosts, facts.sni))
        .collect()
}

/// Whether a request allowed `allowed` has to have its body buffered for substitution.
pub(crate) fn wants_body(secrets: &[Secret], allowed: &[bool]) -> bool {
    secrets.iter().zip(allowed).any(|(s, ok)| *ok && s.inject.body)
}

/// The Basic credentials in `value`, decoded, if it is `Basic <base64>`.
fn basic(value: &HeaderValue) -> Option<Vec<u8>> {
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    STANDARD.decode(encoded.trim()).ok()
}

/// Checks and rewrites a request head (and its buffered body): `Err` when it carries a
/// placeholder of a secret it may not carry; otherwise the placeholders of secrets it may
/// carry are replaced where their [`Injection`](super::Injection) says.
pub(crate) fn rewrite(
    secrets: &[Secret],
    placeholders: &Needles,
    allowed: &[bool],
    head: &mut http::request::Parts,
    body: Option<&mut Vec<u8>>,
) -> Result<(), Violation> {
    let mut seen = vec![false; secrets.len()];
    for value in head.headers.values() {
        placeholders.mark(value.as_bytes(), &mut seen);
    }
    for value in head.headers.get_all(AUTHORIZATION) {
        if let Some(credentials) = basic(value) {
            placeholders.mark(&credentials, &mut seen);
        }
    }
    placeholders.mark(head.uri.to_string().as_bytes(), &mut seen);
    if let Some(body) = body.as_deref() {
        placeholders.mark(body, &mut seen);
    }
    if let Some(secret) = (0..secrets.len()).find(|&i| seen[i] && !allowed[i]) {
        return Err(Violation { secret });
    }
    if !seen.iter().any(|s| *s) {
        return Ok(());
    }
    let value_if = |pick: fn(&Secret) -> bool| {
        move |i: usize| {
            let secret = &secrets[i];
            (allowed[i] && pick(secret)).then_some(secret.value.as_bytes())
        }
    };
    let basic_auth = value_if(|s| s.inject.basic_auth);
    for (_, value) in head.headers.iter_mut().filter(|(name, _)| **name == AUTHORIZATION) {
        let Some(credentials) = basic(value) else { continue };
        let Some(replaced) = placeholders.replace(&credentials, basic_auth) else {
            continue;
        };
        if let Ok(mut new) = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(replaced))) {
            new.set_sensitive(true);
            *value = new;
        }
    }
    let headers = value_if(|s| s.inject.headers);
    for value in head.headers.values_mut() {
        let Some(replaced) = placeholders.replace(value.as_bytes(), headers) else {
            continue;
        };
        if let Ok(mut new) = HeaderValue::from_bytes(&replaced) {
            new.set_sensitive(true);
            *value = new;
        }
    }
    if let Some(uri) = replace_query(&head.uri, placeholders, &value_if(|s| s.inject.query)) {
        head.uri = uri;
    }
    if let Some(body) = body {
        if let Some(replaced) = placeholders.replace(body, value_if(|s| s.inject.body)) {
            *body = replaced;
        }
    }
    Ok(())
}

/// `uri` with its query's placeholders replaced, when any was (and the result is a URI).
fn replace_query<'a>(uri: &Uri, placeholders: &Needles, with: &impl Fn(usize) -> Option<&'a [u8]>) -> Option<Uri> {
    let query = uri.query()?;
    let replaced = placeholders.replace(query.as_bytes(), with)?;
    let path_and_query = format!("{}?{}", uri.path(), String::from_utf8(replaced).ok()?);
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}
